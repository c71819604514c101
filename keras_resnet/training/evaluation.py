"""A trained model's figures on a dataset: top-1, top-k, loss, per-class results and the confusion
matrix, written as evaluation-<data>.json beside the model, with its picture confusion-<data>.png.

Training writes them for its validation split when it finishes; train.py --evaluate writes them for
any dataset (keras_resnet.training.evaluate).
"""

import json
import math
import os

import keras
import numpy as np

from keras_resnet import files
from keras_resnet.errors import UsageError
from keras_resnet.run.directory import dataset_slug
from keras_resnet.runtime import confusion

# Top-k is reported for k = TOP_K, where the dataset has more classes than that (with fewer, every
# answer is in the top k).
TOP_K = 5
# Keras' cross-entropy clips probabilities to this before the log; the loss here matches its.
_EPSILON = 1e-7


def top_k_reported(classes):
    """The k of the top-k figure for `classes` classes, or None when it would always be 100 %."""
    return TOP_K if classes > TOP_K else None


def in_float32(model):
    """`model` computing in float32. A model trained in mixed precision keeps float32 weights but
    computes in bfloat16 or float16; what is evaluated here is the model as it is deployed (the
    conversion's Keras column and its float models compute in float32), so the figures agree with
    the report's and the device's instead of differing by a picture or two."""
    from keras_resnet.nets.builder import ResNetModel, from_build_arguments

    if not isinstance(model, ResNetModel) or all(layer.dtype_policy.compute_dtype == "float32" for layer in model.layers):
        return model
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        twin = from_build_arguments(model.build_arguments)
    finally:
        keras.config.set_dtype_policy(previous)
    twin.set_weights(model.get_weights())
    return twin


def predict(model, dataset, *, steps=None, verbose=1):
    """The probabilities, true labels and per-picture losses of a model on a dataset, with a Keras progress bar.

    The losses are Keras' cross-entropy on the model's output, which reads the softmax's logits:
    exact where the probabilities saturate (a confidently wrong answer), as in Keras' val_loss.

    Args:
        model: The Keras model, called with training=False.
        dataset: Batches of (pixels, one-hot labels), read whole.
        steps: The number of batches, for the progress bar only (None: unknown); it does not limit
            how many are read.
        verbose: The progress bar's verbosity (keras.utils.Progbar's: 0 silent, 1 a bar, 2 a line at the end).

    Returns:
        A tuple (probabilities, truth, losses): float64 (N, classes), int64 class indices (N,) and
        float64 (N,).
    """
    import tensorflow as tf

    @tf.function(autograph=False, reduce_retracing=True)
    def step(images, labels):
        outputs = model(images, training=False)
        return outputs, keras.losses.categorical_crossentropy(labels, outputs)

    progress = keras.utils.Progbar(steps, verbose=verbose, unit_name="batch")
    probabilities, truth, losses = [], [], []
    for images, labels in dataset:
        outputs, loss = step(images, labels)
        probabilities.append(np.asarray(outputs, np.float64))
        losses.append(np.asarray(loss, np.float64))
        truth.append(np.argmax(np.asarray(labels), axis=-1))
        progress.add(1)
    if not probabilities:
        return np.zeros((0, model.output_shape[-1])), np.zeros((0,), np.int64), np.zeros((0,))
    return np.concatenate(probabilities), np.concatenate(truth), np.concatenate(losses)


def weight_penalty(model):
    """The weight decay's L2 penalty of `model` (its regularization losses): Keras adds it to every
    loss it reports, val_loss included."""
    return float(sum(float(np.asarray(keras.ops.convert_to_numpy(loss))) for loss in model.losses))


def results(probabilities, truth, class_names, *, losses=None, penalty=0.0):
    """The figures of a model's answers, as a JSON-ready dict.

    Its loss is the mean of `losses` plus `penalty`, as Keras' val_loss.

    Args:
        probabilities: The answers, an array (N, classes).
        truth: The true class index of each picture, an int array (N,).
        class_names: The name of each class, in class index order (their number is the number of classes).
        losses: Each picture's loss, an array (N,); None: the cross-entropy of the probabilities.
        penalty: The weight decay's penalty added to the loss (weight_penalty).

    Returns:
        A dict: "pictures", "top1", "topK" (where top_k_reported gives a k), "loss" (those three None
        without pictures), "classes" (per class: pictures, correct, precision, recall, accuracy),
        "most_confused" and "confusion" (the matrix's counts).
    """
    classes = len(class_names)
    answers = np.argmax(probabilities, axis=-1)
    count = len(truth)
    counts = confusion.matrix(truth, answers, classes)
    shares = confusion.per_class(counts)
    k = top_k_reported(classes)
    figures = {
        "pictures": count,
        "top1": float(np.mean(answers == truth)) if count else None,
    }
    if k:
        top = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
        figures[f"top{k}"] = float(np.mean(np.any(top == truth[:, None], axis=-1))) if count else None
    if losses is None:
        true_probability = probabilities[np.arange(count), truth] if count else np.zeros(0)
        losses = -np.log(np.clip(true_probability, _EPSILON, 1.0))
    figures["loss"] = float(np.mean(losses)) + penalty if count else None
    figures["classes"] = [
        {
            "name": name,
            "pictures": int(counts[index].sum()),
            "correct": int(counts[index, index]),
            "precision": shares["precision"][index],
            "recall": shares["recall"][index],
            # The share of the class's own pictures answered right (its recall, as ImageNet
            # per-class results call it).
            "accuracy": shares["recall"][index],
        }
        for index, name in enumerate(class_names)
    ]
    figures["most_confused"] = most_confused(counts, class_names)
    figures["confusion"] = {"rows": "true class", "columns": "answered", "counts": counts.tolist()}
    return figures


def most_confused(counts, class_names, *, limit=10):
    """The largest off-diagonal cells of a confusion matrix: the pairs of classes most often confused.

    Args:
        counts: The confusion matrix, rows the true class, columns the answered one.
        class_names: The name of each class, in class index order.
        limit: The most pairs returned.

    Returns:
        A list of {"true", "answered", "pictures"} dicts, most pictures first; cells of zero are left out.
    """
    off = np.array(counts, copy=True)
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:limit]
    pairs = []
    for flat in order:
        true, answered = divmod(int(flat), off.shape[1])
        if off[true, answered] == 0:
            break
        pairs.append({"true": class_names[true], "answered": class_names[answered], "pictures": int(off[true, answered])})
    return pairs


def paths(directory, dataset):
    """Where the evaluation on `dataset` is written: (evaluation-<data>.json, confusion-<data>.png)."""
    slug = dataset_slug(dataset)
    return os.path.join(directory, f"evaluation-{slug}.json"), os.path.join(directory, f"confusion-{slug}.png")


def write(directory, figures, *, dataset, class_names, title, about):
    """Writes evaluation-<data>.json (`about`, then `figures`) and confusion-<data>.png into a folder.

    Args:
        directory: The folder to write into.
        figures: What `results` returned.
        dataset: The dataset's name, which names the files (run.directory.dataset_slug).
        class_names: The name of each class, for the picture.
        title: The picture's title.
        about: What the JSON file says first (the model, the data, the split, ...), a dict.

    Returns:
        A tuple (the JSON file's path, the picture's path or None when Matplotlib is missing).

    Raises:
        OSError: A file cannot be written.
    """
    json_path, png_path = paths(directory, dataset)
    files.write_text(json_path, json.dumps({**about, **figures}, indent=1) + "\n")
    counts = np.asarray(figures["confusion"]["counts"], np.int64)
    try:
        confusion.draw(counts, list(class_names), png_path, title=title)
    except confusion.ConfusionError:
        png_path = None
    return json_path, png_path


def summary(figures):
    """'top-1 87.50 %, top-5 99.00 %, loss 0.4120' (top-k only where it is reported)."""
    parts = [f"top-1 {percent(figures.get('top1'))}"]
    parts += [f"top-{k} {percent(figures[f'top{k}'])}" for k in (TOP_K,) if f"top{k}" in figures]
    loss = figures.get("loss")
    parts.append("loss n/a" if loss is None or not math.isfinite(loss) else f"loss {loss:.4f}")
    return ", ".join(parts)


def weakest_classes(figures, *, limit=3):
    """'shirt 61.0 %, pullover 78.0 %' — the classes answered right least often."""
    rows = [row for row in figures["classes"] if row["recall"] is not None]
    rows.sort(key=lambda row: row["recall"])
    return ", ".join(f"{row['name']} {100 * row['recall']:.1f} %" for row in rows[:limit])


def percent(value):
    return "n/a" if value is None else f"{100 * value:.2f} %"


def write_for_model(directory, figures, *, model_path, data, class_names, split):
    """Writes evaluation-<data>.json and confusion-<data>.png of a model's figures into a folder.

    Args:
        directory: The folder to write into (the model's).
        figures: What `results` returned.
        model_path: The evaluated .keras file, recorded in the JSON file and the picture's title.
        data: The run.config.DataConfig of the data evaluated on (dataset name, image size, transform).
        class_names: The name of each class, in class index order.
        split: What the evaluated split is, in words (DataSource.validation_split_name).

    Returns:
        The paths written, for the log (the picture's left out when Matplotlib is missing).

    Raises:
        UsageError: The files cannot be written there.
    """
    about = {
        "model": os.path.abspath(model_path),
        "data": data.dataset,
        "split": split,
        "image_size": data.image_size,
        "evaluation_transform": data.preprocessing().describe(),
    }
    title = f"{os.path.basename(model_path)} on {data.dataset} ({figures['pictures']} pictures, top-1 {percent(figures['top1'])})"
    try:
        json_path, png_path = write(directory, figures, dataset=data.dataset, class_names=class_names, title=title, about=about)
    except OSError as error:
        raise UsageError(
            f"Cannot write the evaluation into {directory} ({files.describe_os_error(error)}): make it writable, or "
            "copy the model (or its run directory) somewhere writable and evaluate the copy."
        ) from None
    return [path for path in (json_path, png_path) if path]
