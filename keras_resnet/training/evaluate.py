"""train.py --evaluate: a trained model — a run directory's best, or a .keras file — measured on its
run's validation split or on other data, through the evaluation transform it was trained for, and
its figures written beside it (keras_resnet.training.evaluation)."""

import dataclasses
import os
import sys

import keras
import tensorflow as tf

from keras_resnet.data import pipeline, sources
from keras_resnet.errors import DatasetError, UsageError
from keras_resnet.runtime import reason
from keras_resnet.run import directory as run_dir_lib
from keras_resnet.run.directory import RunDirectory
from keras_resnet.run.resolve import for_model
from keras_resnet.training import evaluation


def _check(condition, message):
    if not condition:
        raise UsageError(message)


def evaluate(path, *, dataset=None, batch_size=None, data_dir=None, log=print):
    """Measures a trained model on its run's validation split or on other data, and writes its figures beside it.

    The pictures go through the evaluation transform the model was trained for. Writes
    evaluation-<data>.json and confusion-<data>.png beside the model.

    Args:
        path: A run directory (its best model, else its last) or a .keras file (in its run
            directory, or alone with `dataset`).
        dataset: The data to evaluate on (train.py's --dataset: a folder of class folders is
            evaluated whole); None: the run's validation split.
        batch_size: The evaluation's batch size; None: the run's, at most 128.
        data_dir: Where TFDS finds the dataset; None: the run's own data where its configuration says, other data
            (`dataset`) in TFDS's default folder.
        log: Called with each line to report (the summary, the files written).

    Returns:
        The figures, as evaluation.results returns them.

    Raises:
        UsageError: The path is no run directory or .keras file, the model cannot be loaded, its
            classes do not match the data's, or the figures cannot be written (ConfigFileError for a
            damaged config.json).
        DatasetError: The data cannot be opened, or a record file of it is damaged.
    """
    model_path, config, class_names, in_run = _model_to_evaluate(path, dataset=dataset)
    data = config.data
    # Data other than the run's own (any data, for a .keras file without its run).
    other_data = dataset is not None and (not in_run or dataset != data.dataset)
    if other_data:
        # Another dataset, seen through the run's evaluation transform at its image size; a folder
        # of class folders without splits is evaluated whole. Its own: its validation split.
        data = dataclasses.replace(data, dataset=dataset, data_dir=data_dir, train_examples=None, validation_examples=None)
    source = sources.open_configured(data, seed=config.training.seed, data_dir=data_dir, evaluation=other_data)
    try:
        model = evaluation.in_float32(keras.saving.load_model(model_path, compile=False))
    except Exception as error:  # a damaged or foreign file: Keras raises many kinds
        raise UsageError(f"Cannot load {model_path} as a Keras model ({type(error).__name__}: {reason(error)}).") from None
    classes = model.output_shape[-1]
    _check(
        classes == len(source.class_names),
        f"{model_path} outputs {classes} classes but {data.dataset} has {len(source.class_names)}: evaluate it on data of its own classes.",
    )
    if class_names is not None and list(class_names) != list(source.class_names):
        differ = [f"{ours!r} vs {theirs!r}" for ours, theirs in zip(class_names, source.class_names) if ours != theirs]
        raise UsageError(
            f"{data.dataset}'s classes are not the ones {model_path} was trained on, in the same order "
            f"({'; '.join(differ[:3])}): name its class folders as the training data's."
        )
    class_names = list(source.class_names)
    batch_size = batch_size or min(config.training.batch_size, 128)
    batches = pipeline.evaluation_dataset(source, image_size=data.image_size, preprocessing=data.preprocessing(), batch_size=batch_size)
    steps = -(-source.validation_examples // batch_size)
    try:
        probabilities, truth, losses = evaluation.predict(model, batches, steps=steps, verbose=1 if sys.stdout.isatty() else 2)
    except tf.errors.DataLossError as error:  # a record file damaged beyond what opening the data read
        line = source.damaged_records_line(error, then=".")
        if line is None:
            raise
        raise DatasetError(line) from None
    figures = evaluation.results(probabilities, truth, class_names, losses=losses, penalty=evaluation.weight_penalty(model))
    log(
        f"{model_path} on {figures['pictures']} pictures of {data.dataset} ({source.validation_split_name}): {evaluation.summary(figures)}. "
        f"Least often right: {evaluation.weakest_classes(figures)}."
    )
    directory = os.path.dirname(os.path.abspath(model_path))
    written = evaluation.write_for_model(directory, figures, model_path=model_path, data=data, class_names=class_names, split=source.validation_split_name)
    log(f"Wrote {', '.join(written)}.")
    return figures


def _model_to_evaluate(path, *, dataset):
    """(the .keras file, the RunConfig it trained with, its class names or None, whether it lies in
    its run directory) for --evaluate PATH."""
    if os.path.isdir(path):
        run = RunDirectory(path)
        _check(os.path.exists(run.config), f"{path} is not a run directory (no config.json): pass a run directory or a .keras file.")
        model_path = run.best_model if os.path.exists(run.best_model) else run.last_model
        _check(os.path.exists(model_path), f"Run directory {path} holds no model yet (best.keras or last.keras): train it first.")
    else:
        _check(os.path.exists(path), f"No such run directory or model file: {path}.")
        _check(path.endswith(".keras"), f"{path} is neither a run directory nor a .keras model.")
        model_path = path
    run = RunDirectory(os.path.dirname(os.path.abspath(model_path)))
    if os.path.exists(run.config):
        config = run.read_config()  # its run's (a ConfigFileError names what is wrong with it)
        return model_path, config, config.class_names, True
    # A .keras file without its run: its network says the image size and the family's transform.
    _check(dataset is not None, f"{path} has no config.json beside it: name the data to evaluate it on with --dataset.")
    try:
        own = run_dir_lib.own_model(model_path)
    except UsageError as error:
        raise UsageError(f"--evaluate {path}: {error}") from None
    arguments = own.build_arguments
    size = own.image_size
    _check(size is not None, f"{path} takes pictures of any size: evaluate it from its run directory.")
    config = for_model(arguments, dataset=dataset)
    return model_path, config, None, False
