"""Where images come from: the embedded dataset, any TFDS image-classification dataset, or a folder.

`open_dataset(...)` returns a DataSource: the unbatched training and validation examples as (uint8 image, int64
label), with the class names and example counts that the pipeline, the run directory and the
conversion step need.
"""

import dataclasses
import logging
import os
import sys

import tensorflow as tf

from keras_resnet.data import synthetic

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
FOLDER_PREFIX = "folder:"
# A held-out fraction where a dataset has no validation or test split (tf_flowers, image folders).
VALIDATION_FRACTION = 0.1
# TFDS retries a failed download 10 times with exponential backoff, over 3 minutes when offline.
_TFDS_DOWNLOAD_RETRIES = 3


class DatasetError(ValueError):
    """A dataset that cannot be opened: unknown, unreachable, empty, or not images with labels."""


@dataclasses.dataclass
class DataSource:
    name: str
    train: tf.data.Dataset
    validation: tf.data.Dataset
    class_names: list
    train_examples: int
    validation_examples: int
    # Size of the stored images when all share one (lets the pipeline decide whether to cache).
    stored_image_size: tuple = None


def open_configured(data, *, seed, data_dir=None):
    """The dataset of a run, from its configuration's data section (a config.DataConfig);
    `data_dir` overrides where TFDS finds it."""
    return open_dataset(
        data.dataset,
        image_size=data.image_size,
        data_dir=data_dir or data.data_dir,
        seed=seed,
        train_examples=data.train_examples,
        validation_examples=data.validation_examples,
    )


def open_dataset(name, *, image_size, data_dir=None, seed=0, train_examples=None, validation_examples=None):
    """Opens a dataset by name: "synthetic", a TFDS name ("cifar10", "imagenet2012", …) or
    "folder:PATH". train_examples / validation_examples keep only that many (quick experiments)."""
    if name == "synthetic":
        source = DataSource(
            name="synthetic",
            train=synthetic.dataset("train", image_size=image_size, examples=train_examples),
            validation=synthetic.dataset("validation", image_size=image_size, examples=validation_examples),
            class_names=list(synthetic.CLASS_NAMES),
            train_examples=train_examples or synthetic.TRAIN_EXAMPLES,
            validation_examples=validation_examples or synthetic.VALIDATION_EXAMPLES,
            stored_image_size=(image_size, image_size),
        )
        return source
    if name.startswith(FOLDER_PREFIX):
        source = _open_folder(name[len(FOLDER_PREFIX) :], image_size=image_size, seed=seed)
    else:
        source = _open_tfds(name, data_dir=data_dir)
    return _limited(source, train_examples, validation_examples)


def _limited(source, train_examples, validation_examples):
    if train_examples:
        source.train = source.train.take(train_examples)
        source.train_examples = min(train_examples, source.train_examples)
    if validation_examples:
        source.validation = source.validation.take(validation_examples)
        source.validation_examples = min(validation_examples, source.validation_examples)
    return source


# -- TFDS ------------------------------------------------------------------------------------------


def _open_tfds(name, *, data_dir):
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import downloader

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise DatasetError(
            f"Unknown dataset {name!r}: not 'synthetic', not 'folder:PATH' and not a TFDS dataset "
            f"(see https://www.tensorflow.org/datasets/catalog)."
        ) from None
    image_key, label_key = builder.info.supervised_keys or (None, None)
    features = builder.info.features
    if (
        image_key is None
        or not isinstance(features[image_key], tfds.features.Image)
        or not isinstance(features[label_key], tfds.features.ClassLabel)
    ):
        raise DatasetError(f"TFDS dataset {name!r} is not an image classification dataset (image, label).")

    downloader.MAX_RETRIES = _TFDS_DOWNLOAD_RETRIES
    if not sys.stderr.isatty():
        tfds.disable_progress_bar()  # progress bars are for terminals; in logs they are noise
    # Each retry logs a warning; a failure ends in one DatasetError that says why.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    try:
        builder.download_and_prepare()  # nothing to do when data_dir holds a prepared copy
    except Exception as error:  # network, manual-download and extraction failures alike
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        where = data_dir or "~/tensorflow_datasets"
        raise DatasetError(
            f"Could not download or prepare TFDS dataset {name!r} into {where} ({reason}). "
            f"Offline? Use --data-dir with a prepared copy of it, or --dataset synthetic."
        ) from None

    splits = list(builder.info.splits)
    validation_split = next((split for split in ("validation", "test") if split in splits), None)
    if validation_split is None and splits:
        # Held out reproducibly: TFDS slices by example order, the same on every run.
        percent = round(100 * (1 - VALIDATION_FRACTION))
        train_split, validation_split = f"train[:{percent}%]", f"train[{percent}%:]"
    else:
        train_split, validation_split = "train", validation_split or "test"

    def read(split):
        dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
        return dataset.map(_as_rgb, num_parallel_calls=tf.data.AUTOTUNE)

    train, validation = read(train_split), read(validation_split)
    shape = features[image_key].shape
    return DataSource(
        name=name,
        train=train,
        validation=validation,
        class_names=list(features[label_key].names),
        train_examples=_count(builder, train_split, train),
        validation_examples=_count(builder, validation_split, validation),
        stored_image_size=tuple(shape[:2]) if None not in shape[:2] else None,
    )


def _count(builder, split, dataset):
    try:
        return builder.info.splits[split].num_examples
    except KeyError:  # no split metadata (tfds.testing.mock_data): count the examples
        return int(dataset.reduce(0, lambda count, _: count + 1))


def _as_rgb(image, label):
    if image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    return image, tf.cast(label, tf.int64)


# -- folder ----------------------------------------------------------------------------------------


def _open_folder(path, *, image_size, seed):
    import keras

    if not os.path.isdir(path):
        raise DatasetError(f"No such folder: {path!r}. --dataset folder:PATH needs one subfolder of images per class.")
    classes = sorted(entry.name for entry in os.scandir(path) if entry.is_dir() and not entry.name.startswith("."))
    if len(classes) < 2:
        raise DatasetError(
            f"Folder {path!r} has {len(classes)} class subfolder(s): --dataset folder:PATH needs one "
            f"subfolder of images per class, at least two."
        )
    for class_name in classes:
        folder = os.path.join(path, class_name)
        if not any(name.lower().endswith(IMAGE_EXTENSIONS) for name in os.listdir(folder)):
            raise DatasetError(f"Class folder {folder!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")

    # Loaded a little larger than the training size, so that crops have something to take.
    load_size = max(image_size, round(image_size / 0.875))
    try:
        train, validation = keras.utils.image_dataset_from_directory(
            path,
            labels="inferred",
            label_mode="int",
            class_names=classes,
            batch_size=None,
            image_size=(load_size, load_size),
            crop_to_aspect_ratio=True,
            shuffle=True,
            seed=seed,  # the validation split is carved off reproducibly
            validation_split=VALIDATION_FRACTION,
            subset="both",
            verbose=False,
        )
    except ValueError as error:
        raise DatasetError(f"Cannot read images from folder {path!r}: {error}") from None
    if len(validation.file_paths) == 0:
        raise DatasetError(
            f"Folder {path!r} has too few images to hold out a validation split ({len(train.file_paths)} found)."
        )

    unreadable = [file for file in validation.file_paths if not _readable_image(file)]
    if unreadable:
        raise DatasetError(
            f"{unreadable[0]} is not a readable image ({len(unreadable)} such file(s) in the validation split): "
            f"repair or remove them."
        )

    def to_uint8(image, label):
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), tf.cast(label, tf.int64)

    return DataSource(
        name=f"{FOLDER_PREFIX}{path}",
        # A training image that will not decode is skipped with a warning, not fatal to a long run.
        train=train.map(to_uint8, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors(log_warning=True),
        validation=validation.map(to_uint8, num_parallel_calls=tf.data.AUTOTUNE),
        class_names=classes,
        train_examples=len(train.file_paths),
        validation_examples=len(validation.file_paths),
        stored_image_size=(load_size, load_size),
    )


def _readable_image(path):
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except Exception:  # PIL raises many kinds for damaged files
        return False
