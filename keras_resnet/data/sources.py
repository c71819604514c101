"""Where images come from: the embedded dataset, any TFDS image-classification dataset, or a folder.

Some TFDS datasets are also installed as their original files by other means — Fashion-MNIST by
Debian's `dataset-fashion-mnist` package and by `keras.datasets` — and are read from those files when
TFDS has no prepared copy (the same images, the same official splits), so they work offline.

`open_dataset(...)` returns a DataSource: the unbatched training and validation examples as (uint8 image, int64
label), with the class names and example counts that the pipeline, the run directory and the
conversion step need.
"""

import dataclasses
import functools
import gzip
import logging
import os
import statistics
import sys
from collections.abc import Callable

import numpy as np

import tensorflow as tf

from keras_resnet import files, internals
from keras_resnet.data import records, synthetic
from keras_resnet.data.pictures import PictureFiles, PictureKinds, shown
from keras_resnet.errors import DatasetError
from keras_resnet.runtime import reason
from keras_resnet.runtime.pictures import TRAINING_EXTENSIONS

FOLDER_PREFIX = "folder:"
# A held-out fraction where a dataset has no validation or test split (tf_flowers, image folders).
VALIDATION_FRACTION = 0.1
# Class folders of a folder dataset's own splits: train/ and the first of these that exists.
FOLDER_VALIDATION_SPLITS = ("val", "validation", "test")
# TFDS retries a failed download 10 times with exponential backoff, over 3 minutes when offline.
_TFDS_DOWNLOAD_RETRIES = 3


@dataclasses.dataclass
class DataSource:
    """A dataset's splits and what is known about them. The splits, unbatched (uint8 image, int64
    label) examples, are made on first use (`train`, `validation`): a folder's decoding graph takes
    a fraction of a second to trace, which training by file (pipeline.reads_encoded) never needs."""

    name: str
    make_train: Callable[[], tf.data.Dataset]
    make_validation: Callable[[], tf.data.Dataset]
    class_names: list
    train_examples: int
    validation_examples: int
    # Size of the stored images when all share one (lets the pipeline decide whether to cache).
    stored_image_size: tuple = None
    # Decoded size of a folder's training pictures, when it was cheap to learn (their headers).
    decoded_train_bytes: int | None = None
    # A folder's validation pictures, (path, label) in the split's order: the original files that
    # classify.py would read (the conversion report runs them through it).
    validation_files: list | None = None
    # The median shorter side of its pictures, when known (None: any size, e.g. generated ones):
    # the default image size does not exceed it (config.RunConfig.fit_to_data).
    picture_side: int | None = None
    # What the validation split is, in words (train.py --evaluate reports it).
    validation_split_name: str = "validation split"
    # A folder's training files that are no readable picture, left out of train_examples.
    unreadable_train_files: list = dataclasses.field(default_factory=list)
    # A folder's training pictures as files (the pipeline can read them by file, not decoded).
    train_files: PictureFiles | None = None
    # TFRecord shards of encoded training pictures (the pipeline reads them by shard, not decoded).
    train_records: records.RecordShards | None = None
    # Every TFRecord file the source reads, training and validation (to name one found damaged),
    # and what to do about one that is.
    record_files: list = dataclasses.field(default_factory=list)
    damaged_records_remedy: str = "Check the dataset's files"

    @functools.cached_property
    def train(self):
        return self.make_train()

    @functools.cached_property
    def validation(self):
        return self.make_validation()

    def damaged_records_line(self, error, *, then):
        """The one line for TensorFlow's DataLossError `error`, met reading a record file of this
        source damaged beyond what opening it read: the file named (records.damaged_shard_message),
        the source's remedy, then `then` (e.g. ". " and what was kept). None for a source without
        record files, whose DataLossError is something else (a picture file cut short as it was read)."""
        if not self.record_files:
            return None
        return records.damaged_shard_message(self.record_files, error, remedy=f"{self.damaged_records_remedy}{then}")

    def train_bytes(self):
        """What the decoded training split takes in memory, when known (None: not known)."""
        if self.decoded_train_bytes is not None:
            return self.decoded_train_bytes
        if self.stored_image_size:
            height, width = self.stored_image_size
            return self.train_examples * height * width * 3
        return None


def open_configured(data, *, seed, data_dir=None, evaluation=False):
    """The dataset of a run, from its configuration's data section.

    Args:
        data: The run's config.DataConfig (dataset, image size, data_dir, example limits).
        seed: The run's seed, which carves a folder's validation split off reproducibly.
        data_dir: Where TFDS finds the dataset; None: the configuration's `data_dir`.
        evaluation: As open_dataset's: a folder without its own splits is validation data whole.

    Returns:
        The DataSource.

    Raises:
        DatasetError: The dataset cannot be opened.
    """
    return open_dataset(
        data.dataset,
        image_size=data.image_size,
        data_dir=data_dir or data.data_dir,
        seed=seed,
        train_examples=data.train_examples,
        validation_examples=data.validation_examples,
        evaluation=evaluation,
    )


def open_dataset(name, *, image_size, data_dir=None, seed=0, train_examples=None, validation_examples=None, evaluation=False):
    """Opens a dataset by name.

    Args:
        name: "synthetic", a TFDS name ("cifar10", "imagenet2012", …), "folder:PATH" or "tfrecord:PATTERN".
        image_size: The size the synthetic dataset's pictures are generated at (other datasets keep
            their stored sizes).
        data_dir: Where TFDS finds or prepares the dataset; None: TFDS's default (~/tensorflow_datasets).
        seed: The seed that carves a folder's validation split off reproducibly.
        train_examples: Keep only that many training examples (quick experiments); None: all.
        validation_examples: Keep only that many validation examples; None: all.
        evaluation: For train.py --evaluate on other data: a folder of class folders without its own
            splits is validation data whole, no split carved off for training.

    Returns:
        The DataSource.

    Raises:
        DatasetError: The dataset is unknown, cannot be downloaded or prepared, is empty, or is not
            images with labels.
    """
    if name == "synthetic":
        # Generated on the fly, it could be any size; it has the size of its splits, as every dataset
        # (a larger count keeps the whole split, as for the others).
        train_examples = min(train_examples or synthetic.TRAIN_EXAMPLES, synthetic.TRAIN_EXAMPLES)
        validation_examples = min(validation_examples or synthetic.VALIDATION_EXAMPLES, synthetic.VALIDATION_EXAMPLES)
        source = DataSource(
            name="synthetic",
            make_train=lambda: synthetic.dataset("train", image_size=image_size, examples=train_examples),
            make_validation=lambda: synthetic.dataset("validation", image_size=image_size, examples=validation_examples),
            class_names=list(synthetic.CLASS_NAMES),
            train_examples=train_examples,
            validation_examples=validation_examples,
            stored_image_size=(image_size, image_size),
        )
        return source
    if name.startswith(FOLDER_PREFIX):
        source = _open_folder(name[len(FOLDER_PREFIX) :], seed=seed, evaluation=evaluation)
    elif name.startswith(records.PREFIX):
        source = _open_records(name)
    elif name in LOCAL_COPIES and not _tfds_prepared(name, data_dir) and _local_copy_folder(name):
        source = _open_local_copy(name)
    else:
        source = _open_tfds(name, data_dir=data_dir)
    return _limited(source, train_examples, validation_examples)


def _limited(source, train_examples, validation_examples):
    if train_examples:
        make_train = source.make_train
        source.make_train = lambda: make_train().take(train_examples)
        source.train_examples = min(train_examples, source.train_examples)
        if source.train_files is not None:  # the pipeline may read the files themselves
            if source.decoded_train_bytes is not None:  # the pipeline's cache decision: the part's size
                source.decoded_train_bytes = source.decoded_train_bytes * source.train_examples // max(len(source.train_files), 1)
            source.train_files = source.train_files.first(train_examples)
        # The first records, decoded (the shards' own pipeline reads them whole).
        source.train_records = None
        source.__dict__.pop("train", None)  # made before the limit: made again with it
    if validation_examples:
        make_validation = source.make_validation
        source.make_validation = lambda: make_validation().take(validation_examples)
        source.__dict__.pop("validation", None)
        source.validation_examples = min(validation_examples, source.validation_examples)
        if source.validation_files is not None:
            source.validation_files = source.validation_files[:validation_examples]
    return source


# -- TFRecord shards -------------------------------------------------------------------------------


def _open_records(name):
    """--dataset tfrecord:PATTERN (keras_resnet.data.records)."""
    try:
        train, validation, class_names = records.open_shards(name[len(records.PREFIX) :])
        picture_side = records.median_shorter_side(validation)
    except records.RecordsError as error:
        raise DatasetError(str(error)) from None
    return DataSource(
        name=name,
        make_train=train.decoded,
        make_validation=validation.decoded,
        class_names=class_names,
        train_examples=train.examples,
        validation_examples=validation.examples,
        train_records=train,
        record_files=train.paths + validation.paths,
        damaged_records_remedy=records.RECOPY,
        validation_split_name=f"{len(validation.paths)} validation shard(s)",
        picture_side=picture_side,
    )


# -- TFDS ------------------------------------------------------------------------------------------


def _open_tfds(name, *, data_dir):
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import downloader

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except (tfds.core.registered.DatasetNotFoundError, ValueError) as error:
        if os.path.isdir(os.path.expanduser(name)):
            raise DatasetError(
                f"Unknown dataset {name!r}, but it is a folder: pass --dataset {FOLDER_PREFIX}{name} to read its class folders."
            ) from None
        if not isinstance(error, tfds.core.registered.DatasetNotFoundError):  # not even a valid TFDS name
            raise DatasetError(
                f"Unknown dataset {name!r}: not 'synthetic', not 'folder:PATH' and not a TFDS name "
                f"({' '.join(str(error).split())[:120]})."
            ) from None
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
        # TFDS spreads its reason over several lines (a URL, then what failed): all of them.
        why = " ".join(str(error).split())[:300] or type(error).__name__
        where = data_dir or "~/tensorflow_datasets"
        raise DatasetError(
            f"Could not download or prepare TFDS dataset {name!r} into {where} ({why}). "
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
    # Its training records as they are stored, for the pipeline to decode only each crop (when its
    # pictures are not kept decoded in memory: pipeline.is_cached).
    train_records = records.RecordShards.of_tfds_split(builder, train_split, image_key=image_key, label_key=label_key)
    return DataSource(
        name=name,
        make_train=lambda: train,
        make_validation=lambda: validation,
        class_names=list(features[label_key].names),
        train_examples=_count(builder, train_split, train),
        validation_examples=_count(builder, validation_split, validation),
        stored_image_size=tuple(shape[:2]) if None not in shape[:2] else None,
        picture_side=min(shape[:2]) if None not in shape[:2] else None,
        validation_split_name=f"TFDS split {validation_split}",
        train_records=train_records,
        record_files=_tfds_record_files(builder, (train_split, validation_split)),
        damaged_records_remedy=f"Delete TFDS's prepared copy in {builder.data_dir} and run again: TFDS prepares it anew",
    )


def _tfds_record_files(builder, splits):
    """The files that TFDS reads for `splits` (names, slices) when they are TFRecord files, to name
    one found damaged; [] when TFDS stores them otherwise."""
    import tensorflow_datasets as tfds

    if builder.info.file_format != tfds.core.FileFormat.TFRECORD:
        return []
    paths = {}
    for split in splits:
        try:
            paths.update(dict.fromkeys(os.fspath(path) for path in builder.info.splits[split].filepaths))
        except (KeyError, ValueError):  # not a split TFDS knows, or one without files
            continue
    return list(paths)


def _count(builder, split, dataset):
    try:
        return builder.info.splits[split].num_examples
    except KeyError:  # no split metadata (tfds.testing.mock_data): count the examples
        return int(dataset.reduce(0, lambda count, _: count + 1))


def _as_rgb(image, label):
    if image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    return image, tf.cast(label, tf.int64)


# -- original files installed outside TFDS ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LocalCopy:
    """A dataset's original IDX files (as published, gzipped), where packages other than TFDS install them."""

    folders: tuple  # searched in order; $KERAS_HOME/datasets/... is added at run time
    keras_datasets_folder: str  # where keras.datasets.<name>.load_data() keeps them
    files: dict  # split -> (images file, labels file)
    class_names: tuple  # TFDS' names, so that both routes give a run the same classes
    install_hint: str


LOCAL_COPIES = {
    "fashion_mnist": LocalCopy(
        folders=("/usr/share/datasets/fashion-mnist",),  # Debian's dataset-fashion-mnist
        keras_datasets_folder="fashion-mnist",
        files={
            "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
            "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        },
        class_names=(
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ),
        install_hint="apt-get install dataset-fashion-mnist (Debian/Ubuntu), or run keras.datasets.fashion_mnist.load_data() once",
    ),
}


def _tfds_prepared(name, data_dir):
    """Whether TFDS holds a prepared copy of `name` (then TFDS reads it, as for any dataset)."""
    import tensorflow_datasets as tfds

    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)  # TFDS warns about every unfinished download it finds on the way
    try:
        return tfds.builder(name, data_dir=data_dir).is_prepared()
    except Exception:  # an unreadable data_dir: let the TFDS route report it
        return False
    finally:
        absl_logger.setLevel(level)


def _local_copy_folder(name):
    copy = LOCAL_COPIES[name]
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    for folder in (*copy.folders, os.path.join(keras_home, "datasets", copy.keras_datasets_folder)):
        if all(os.path.isfile(os.path.join(folder, file)) for pair in copy.files.values() for file in pair):
            return folder
    return None


def _open_local_copy(name):
    copy, folder = LOCAL_COPIES[name], _local_copy_folder(name)
    splits = {}
    for split, (images_file, labels_file) in copy.files.items():
        images = read_idx(os.path.join(folder, images_file))
        labels = read_idx(os.path.join(folder, labels_file))
        if images.ndim != 3 or labels.shape != images.shape[:1] or labels.max(initial=0) >= len(copy.class_names):
            raise DatasetError(
                f"{os.path.join(folder, images_file)} and {labels_file} are not {name}'s images and labels "
                f"(shapes {images.shape} and {labels.shape}): reinstall them ({copy.install_hint})."
            )
        splits[split] = (images, labels)

    def dataset(images, labels):
        return tf.data.Dataset.from_tensor_slices((images[..., np.newaxis], labels.astype(np.int64))).map(
            _as_rgb, num_parallel_calls=tf.data.AUTOTUNE
        )

    (train_images, train_labels), (test_images, test_labels) = splits["train"], splits["test"]
    return DataSource(
        name=name,
        make_train=lambda: dataset(train_images, train_labels),
        make_validation=lambda: dataset(test_images, test_labels),  # the official test split, as TFDS gives it
        class_names=list(copy.class_names),
        train_examples=len(train_labels),
        validation_examples=len(test_labels),
        stored_image_size=tuple(train_images.shape[1:3]),
        picture_side=min(train_images.shape[1:3]),
    )


def read_idx(path):
    """The array in an IDX file (gzipped or not), the format of MNIST and Fashion-MNIST."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError) as error:
        raise DatasetError(f"Cannot read {path} ({reason(error)}): reinstall it.") from None
    # Magic: two zero bytes, the element type (0x08: unsigned byte), the number of dimensions.
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise DatasetError(f"{path} is not an IDX file of unsigned bytes: reinstall it.")
    dimensions = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dimensions))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dimensions)
    if body.size != int(np.prod(shape)):
        raise DatasetError(f"{path} is truncated: {body.size} of {int(np.prod(shape))} values. Reinstall it.")
    return body.reshape(shape)


# -- folder ----------------------------------------------------------------------------------------


def _open_folder(path, *, seed, evaluation=False):
    """Class folders in PATH, with a validation split carved off reproducibly; or, when PATH holds
    train/ and val/ (or validation/, test/) class folders, those splits as they are."""

    if not os.path.isdir(path):
        raise DatasetError(f"No such folder: {path!r}. --dataset folder:PATH needs one subfolder of images per class.")
    validation_folder = next(
        (os.path.join(path, split) for split in FOLDER_VALIDATION_SPLITS if os.path.isdir(os.path.join(path, split))), None
    )
    own_splits = os.path.isdir(os.path.join(path, "train")) and validation_folder is not None
    classes = _class_folders(os.path.join(path, "train") if own_splits else path)
    if own_splits:
        validation_classes = _class_folders(validation_folder, need_images=False)
        if validation_classes != classes:
            extra, missing = sorted(set(validation_classes) - set(classes)), sorted(set(classes) - set(validation_classes))
            difference = "; ".join(
                text for text in (
                    f"has class folder(s) that train/ lacks: {', '.join(map(repr, extra))}" if extra else "",
                    f"lacks train/'s class folder(s) {', '.join(map(repr, missing))}" if missing else "",
                ) if text
            )
            raise DatasetError(f"{validation_folder} {difference}. Both splits need the same classes.")

    # Keras indexes the files (and carves a validation split off reproducibly), as
    # image_dataset_from_directory does; the pictures are decoded here, whole and at their own size:
    # the training crop is taken from the original picture, and evaluation applies the run's
    # evaluation transform to it, as the device does.
    try:
        if own_splits:
            train_files = _indexed(os.path.join(path, "train"), classes, shuffle=True, seed=seed)
            validation_files = _indexed(validation_folder, classes, shuffle=False)
        elif evaluation:
            train_files, validation_files = [], _indexed(path, classes, shuffle=False)
        else:
            indexed = _indexed(path, classes, shuffle=True, seed=seed)  # the validation split is carved off reproducibly
            train_files = internals.keras_training_or_validation_split(indexed, validation_split=VALIDATION_FRACTION, subset="training")
            validation_files = internals.keras_training_or_validation_split(indexed, validation_split=VALIDATION_FRACTION, subset="validation")
    except ValueError as error:
        raise DatasetError(f"Cannot read images from folder {path!r}: {error}") from None
    if not train_files and not evaluation:
        raise DatasetError(f"Folder {path!r} has too few images to carve a validation split off ({len(validation_files)} found).")
    undecodable_name = next((file for file, _ in train_files + validation_files if not _utf8(file)), None)
    if undecodable_name:
        raise DatasetError(f"{shown(undecodable_name)} has a file name that is not UTF-8, which TensorFlow cannot read: rename it.")
    if len(validation_files) == 0:
        where = validation_folder if own_splits else path
        raise DatasetError(f"Folder {where!r} has too few images for a validation split ({len(validation_files)} found).")

    # Every validation picture is opened (the evaluation must not fail midway); its header also says
    # which way up it is (EXIF), which classify.py and browsers apply too.
    validation_headers = [_header(file, verify=True) for file, _ in validation_files]
    unreadable = [file for (file, _), header in zip(validation_files, validation_headers) if header is None]
    if unreadable:
        raise DatasetError(
            f"{unreadable[0]} is not a readable image ({len(unreadable)} such file(s) in the validation split): "
            f"repair or remove them."
        )
    # Training pictures' headers are read where that is quick: their decoded size (to cache them)
    # and which way up they are; one Pillow cannot open is left out (and named). Beyond, they are
    # taken as stored, and one that will not decode is skipped when training meets it (and named then).
    train_headers = [_header(file) for file, _ in train_files] if len(train_files) <= _MAX_FILES_TO_MEASURE else None
    left_out = []
    if train_headers is not None:
        left_out = [file for (file, _), header in zip(train_files, train_headers) if header is None]
        train_files = [entry for entry, header in zip(train_files, train_headers) if header is not None]
        train_headers = [header for header in train_headers if header is not None]
        if left_out and not train_files:
            where = os.path.join(path, "train") if own_splits else path
            raise DatasetError(f"None of the {len(left_out)} training pictures in {where!r} is a readable image (e.g. {left_out[0]}).")
    training_pictures = _picture_files(train_files, train_headers, keep_sizes=True)
    validation_pictures = _picture_files(validation_files, validation_headers)
    return DataSource(
        name=f"{FOLDER_PREFIX}{path}",
        # A training image that will not decode is skipped with a warning, not fatal to a long run.
        make_train=training_pictures.decoded_whole,
        make_validation=lambda: validation_pictures.decoded_whole(skip_undecodable=False),
        train_files=training_pictures,
        class_names=classes,
        train_examples=len(train_files),
        validation_examples=len(validation_files),
        decoded_train_bytes=None if train_headers is None else sum(header.decoded_bytes for header in train_headers),
        unreadable_train_files=left_out,
        validation_files=validation_files,
        validation_split_name=(
            f"{os.path.basename(validation_folder)}/" if own_splits else "every picture" if evaluation else "validation split"
        ),
        picture_side=int(statistics.median_low(min(header.size) for header in validation_headers)),
    )


def _indexed(folder, classes, *, shuffle, seed=None):
    """(path, label) of each picture in `folder`'s class folders `classes`, Keras' index."""
    paths, labels = internals.keras_index_image_folder(folder, class_names=classes, shuffle=shuffle, seed=seed)
    return list(zip(paths, labels))


def _utf8(path):
    """Whether `path` is UTF-8 (Python holds other bytes in names as surrogates, which TensorFlow
    cannot take as a string)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _picture_files(files, headers, *, keep_sizes=False):
    """PictureFiles of `files`, (path, label)s, with what their `headers` say (None: not read; the
    pictures are then taken as stored, and their formats and sizes as not known); each picture's
    size kept when `keep_sizes` (training pictures, whose crops are drawn on it)."""
    orientations = [header.orientation for header in headers] if headers is not None else [1] * len(files)
    kinds = PictureKinds(
        only_jpeg=headers is not None and all(header.jpeg for header in headers),
        any_turned=any(orientation != 1 for orientation in orientations),
        largest_shorter_side=max((min(header.size) for header in headers), default=None) if headers is not None else None,
    )
    return PictureFiles(
        paths=[path for path, _ in files], labels=[label for _, label in files], orientations=orientations, kinds=kinds,
        sizes=[header.size for header in headers] if keep_sizes and headers is not None else None,
    )


@dataclasses.dataclass(frozen=True)
class _Header:
    decoded_bytes: int
    orientation: int
    size: tuple  # (height, width) as stored, before any EXIF turn
    jpeg: bool


def _header(path, *, verify=False):
    """What a picture's header says (its decoded RGB size, its EXIF orientation), with `verify`
    running Pillow's checks of the file too (a PNG's checksums); None for a file that is not a
    readable picture."""
    from PIL import Image, ImageFile

    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
            # MPO (a camera's multi-picture file) is JPEG frames: TensorFlow decodes the first.
            jpeg = image.format in ("JPEG", "MPO")
            # verify() checks more than opening did only for a format whose plugin has its own
            # (PNG's, its chunks' checksums, in Pillow 13), and must come straight after opening,
            # before the EXIF read above may have loaded the picture: only those are opened again
            # (ImageNet's 50,000 validation JPEGs are opened once, not twice).
            check_again = verify and type(image).verify is not ImageFile.ImageFile.verify
        if check_again:
            with Image.open(path) as image:
                image.verify()
    except Exception:  # PIL raises many kinds for damaged files
        return None
    return _Header(
        decoded_bytes=width * height * 3, orientation=orientation if orientation in range(1, 9) else 1, size=(height, width), jpeg=jpeg,
    )


def picture_orientation(path):
    """The EXIF orientation of the picture file at `path` (1: as stored), for decode_picture."""
    header = _header(path)
    return header.orientation if header else 1


# Folders larger than this are not cached in memory whatever their pictures' size (reading every
# header would slow the start, and such a set rarely fits anyway).
_MAX_FILES_TO_MEASURE = 20_000


def _listed(folder):
    """The names in `folder`; DatasetError naming it when it cannot be read (permissions, a disk error)."""
    try:
        return os.listdir(folder)
    except OSError as error:
        raise DatasetError(f"Cannot read folder {folder!r} ({files.describe_os_error(error)}): check that it is readable.") from None


def _class_folders(path, *, need_images=True):
    classes = sorted(name for name in _listed(path) if not name.startswith(".") and os.path.isdir(os.path.join(path, name)))
    if need_images and len(classes) < 2:
        raise DatasetError(
            f"Folder {path!r} has {len(classes)} class subfolder(s): --dataset folder:PATH needs one "
            f"subfolder of images per class, at least two (or train/ and val/ folders of them)."
        )
    for class_name in classes if need_images else ():
        folder = os.path.join(path, class_name)
        if not any(name.lower().endswith(TRAINING_EXTENSIONS) for name in _listed(folder)):
            raise DatasetError(f"Class folder {folder!r} holds no images ({', '.join(TRAINING_EXTENSIONS)}).")
    return classes
