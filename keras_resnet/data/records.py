"""TFRecord shards of encoded pictures in the layout of the TensorFlow Model Garden and the TPU
reference's ImageNet (`image/encoded`: the JPEG's bytes, `image/class/label`: an int64), read as
train.py's `--dataset tfrecord:PATTERN`.

PATTERN is a glob of the training shards (`/data/imagenet/train-*`); the validation shards are the
same pattern with `train` in the file name replaced by `validation` (else `val`, else `test`). The
class names are a `labels.txt` beside the shards, one per line in label order (the TPU reference's
shards number ImageNet's classes from 1: a first line `background` keeps their numbering, as its
1001-way classifier does). The shards' records are counted from their framing, without reading the
pictures.
"""

import dataclasses
import glob
import os
import re
import struct

import tensorflow as tf

from keras_resnet.data.pictures import decode_picture, plain
from keras_resnet.errors import RecordsError
from keras_resnet.runtime import labels as labels_lib, reason

PREFIX = "tfrecord:"
LABELS_FILE = labels_lib.LABELS_FILE
VALIDATION_NAMES = ("validation", "val", "test")


# The error when training's shards are no longer all there (a worker without a copy of them),
# followed by ":] [" and their paths in the error's text.
SHARD_MISSING = "A training shard cannot be found"
# The error when a record will not read (its checksum fails, or it ends early): a shard damaged
# or changed after it was counted; and what to do about a shard of one's own.
SHARD_DAMAGED = "A shard of records is damaged"
RECOPY = "Copy it again or write it anew"
# How records whose picture will not decode are counted, after their number.
UNDECODABLE = " hold a picture that cannot be decoded: skipped (counted in the first pass)."


@dataclasses.dataclass(eq=False)
class RecordShards:
    """TFRecord files of (encoded picture, label) records, in a fixed order, and how many records
    each holds."""

    paths: list
    counts: list
    # The records' features holding the encoded picture and its label.
    image_key: str = "image/encoded"
    label_key: str = "image/class/label"

    @classmethod
    def of_tfds_split(cls, builder, split, *, image_key, label_key):
        """A prepared TFDS split's own TFRecord files, read without decoding (what TFDS's SkipDecoding gives).

        Args:
            builder: The TFDS dataset builder, its data prepared.
            split: The split's name, e.g. "train" (a slice such as 'train[:90%]' gives None).
            image_key: The feature holding the encoded picture, e.g. "image".
            label_key: The feature holding the int64 label, e.g. "label".

        Returns:
            The RecordShards of the split's files, or None where TFDS stores them otherwise
            (ArrayRecord) or the split is a slice of one.
        """
        import tensorflow_datasets as tfds

        info = builder.info.splits[split] if split in builder.info.splits else None
        if info is None or info.name != split or builder.info.file_format != tfds.core.FileFormat.TFRECORD:
            return None
        return cls([os.fspath(path) for path in info.filepaths], list(info.shard_lengths), image_key=image_key, label_key=label_key)

    @property
    def examples(self):
        return sum(self.counts)

    def records(self, *, order=None, interleave=1):
        """(encoded bytes, int64 label) of the shards at the indices `order` (default: all, in
        order), `interleave` of them read at once."""
        with tf.init_scope():  # captured by reference, not a constant in the graph of an epoch's function
            paths = tf.constant(self.paths)
        selected = paths if order is None else tf.gather(paths, order)
        # A shard that cannot be opened would fail again on every try: missing ones stop the
        # pipeline here, named, not with TensorFlow's error for the first one read.
        missing = tf.sparse.to_dense(tf.sets.difference(selected[tf.newaxis], tf.io.matching_files(selected)[tf.newaxis]))
        present = tf.debugging.Assert(tf.equal(tf.size(missing), 0), [f"{SHARD_MISSING}:", tf.strings.reduce_join(missing, separator=", ")])
        with tf.control_dependencies([present]):
            files = tf.data.Dataset.from_tensor_slices(tf.identity(selected))
        read = plain(lambda path: tf.data.TFRecordDataset(path, buffer_size=1 << 20))
        if interleave > 1:
            dataset = files.interleave(read, cycle_length=interleave, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        else:
            dataset = files.flat_map(read)
        features = {self.image_key: tf.io.FixedLenFeature([], tf.string), self.label_key: tf.io.FixedLenFeature([], tf.int64)}

        @plain
        def parse(serialized):
            example = tf.io.parse_single_example(serialized, features)
            return example[self.image_key], example[self.label_key]

        return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)

    def decoded(self):
        """(uint8 RGB picture, int64 label), every record in order."""
        decoded = self.records().map(plain(lambda encoded, label: (decode_picture(encoded), label)), num_parallel_calls=tf.data.AUTOTUNE)
        # Counted from the framing: Keras then knows the length of an evaluation pass.
        return decoded.apply(tf.data.experimental.assert_cardinality(self.examples))


def median_shorter_side(shards, *, sample=200):
    """The median shorter side of the first `sample` pictures of `shards` (from their headers).
    RecordsError when the records are not (picture, label) records of the expected features."""
    try:
        sides = [
            int(min(tf.io.extract_jpeg_shape(encoded)[:2])) if bool(tf.io.is_jpeg(encoded)) else int(min(tf.shape(decode_picture(encoded))[:2]))
            for encoded, _ in shards.records().take(sample)
        ]
    except tf.errors.InvalidArgumentError as error:
        raise RecordsError(
            f"{shards.paths[0]}'s records are not pictures with labels as expected: each needs the features "
            f"{shards.image_key!r} (the encoded picture) and {shards.label_key!r} (an int64) ({reason(error)})."
        ) from None
    except tf.errors.DataLossError as error:
        raise RecordsError(damaged_shard_message(shards.paths, error)) from None
    return int(sorted(sides)[(len(sides) - 1) // 2]) if sides else None


def damaged_shard_message(paths, error, *, remedy=f"{RECOPY}."):
    """SHARD_DAMAGED in one line for TensorFlow's DataLossError `error` met reading the record
    files `paths` (empty: not known), naming the damaged one where damaged_shard finds it, then
    `remedy`: what to do. A Ctrl-C during the search (it reads each candidate file up to a record:
    minutes for many shards on slow storage) ends it, and the line says what is known without it."""
    try:
        shard = damaged_shard(paths, error)
    except KeyboardInterrupt:
        shard = None
    if shard:
        where = shard
    elif paths:  # e.g. a tf.data service worker's own copy, which this machine reads whole
        where = f"one of the {len(paths)} record file(s) in {os.path.dirname(paths[0]) or '.'}, or another machine's copy of one"
    else:
        where = "one of the dataset's record files"
    found = _UNREAD_RECORD.search(str(error))
    what = f"TensorFlow: {found.group(1)} record at byte {found.group(2)}" if found else reason(error)
    return f"{SHARD_DAMAGED}: {where} ({what}). {remedy}"


# TensorFlow's words for a record that will not read, and the byte where the record starts (its
# length's checksum failed, or the file ends inside it) or where its data starts (12 bytes on: the
# data's checksum failed).
_UNREAD_RECORD = re.compile(r"(corrupted|truncated) record at (\d+)")


def damaged_shard(paths, error):
    """The shard among `paths` that holds the record TensorFlow's DataLossError `error` could not
    read, None when none is found. TensorFlow names the byte where that record or its data starts
    ("corrupted record at N", "truncated record at N"), not its file: each shard with a record
    there is read up to that record, which fails to read in the damaged one."""
    found = _UNREAD_RECORD.search(str(error))
    if found is None:
        return None
    for path in paths:
        number = _record_starting_at(path, int(found.group(2)))
        if number is None:
            continue
        try:
            for _ in tf.data.TFRecordDataset(path).skip(number).take(1):
                pass
        except tf.errors.DataLossError:
            return path
        except tf.errors.OpError:  # gone or unreadable since: not the one that read as damaged
            continue
    return None


def _record_starting_at(path, offset):
    """The number of the record of the shard at `path` whose framing (its length and the length's
    checksum, 12 bytes) or data starts at byte `offset`: TensorFlow names the one or the other,
    whichever failed its checksum. None: no record of the shard starts there, or it cannot be read."""
    try:
        with open(path, "rb") as file:
            for number, start in enumerate(_record_starts(file, path)):
                if start in (offset, offset - 12):
                    return number
                if start > offset:
                    return None
    except (OSError, RecordsError):
        return None
    return None


def count_records(path):
    """The records in a TFRecord file, from its framing: seeks over the data instead of reading it."""
    with open(path, "rb") as file:
        return sum(1 for _ in _record_starts(file, path))


def _record_starts(file, path):
    """The byte at which each record of the TFRecord file open as `file` (at `path`) starts, from its
    framing (length, the length's CRC, the data, its CRC), each given before its length is read.
    RecordsError where the file ends inside a record or a length reaches past its end."""
    size = os.fstat(file.fileno()).st_size
    while file.tell() < size:
        yield file.tell()
        header = file.read(8)
        if len(header) < 8:
            raise RecordsError(f"{path} ends inside a record: a damaged or partly copied shard.")
        (length,) = struct.unpack("<Q", header)
        # Checked before seeking: a damaged length can be beyond what a seek takes.
        if 4 + length + 4 > size - file.tell():
            raise RecordsError(f"{path} ends inside a record, or holds a damaged record length: a damaged or partly copied shard.")
        file.seek(4 + length + 4, os.SEEK_CUR)


def validation_pattern(pattern):
    """The validation shards' glob for a training glob, and the word it replaced (None: no 'train')."""
    folder, name = os.path.split(pattern)
    if "train" not in name:
        return None
    for word in VALIDATION_NAMES:
        candidate = os.path.join(folder, name.replace("train", word))
        if glob.glob(candidate):
            return candidate
    return os.path.join(folder, name.replace("train", VALIDATION_NAMES[0]))


def open_shards(pattern):
    """(training RecordShards, validation RecordShards, class names). RecordsError says what is
    missing and where it was looked for."""
    pattern = os.path.expanduser(pattern)
    train = sorted(glob.glob(pattern))
    if not train:
        raise RecordsError(f"No file matches {pattern!r}: --dataset {PREFIX}PATTERN takes a glob of the training shards, e.g. {PREFIX}/data/imagenet/train-*.")
    validation_glob = validation_pattern(pattern)
    validation = sorted(glob.glob(validation_glob)) if validation_glob else []
    if not validation:
        where = f"{validation_glob!r}" if validation_glob else "(the pattern's file name has no 'train' to replace)"
        raise RecordsError(
            f"No validation shards for {pattern!r}: looked for {where}. Name the shards train-* and validation-* (or val-*, test-*)."
        )
    folder = os.path.dirname(train[0])
    labels_path = os.path.join(folder, LABELS_FILE)
    try:
        with open(labels_path, encoding="utf-8") as file:
            class_names = labels_lib.names_in(file)
    except (OSError, UnicodeDecodeError) as error:
        raise RecordsError(
            f"Cannot read the class names {labels_path} ({type(error).__name__}): write one name per line, in label order "
            f"(a first line 'background' when the shards number their classes from 1, as the TPU reference's ImageNet does)."
        ) from None
    if len(class_names) < 2:
        raise RecordsError(f"{labels_path} names {len(class_names)} class(es): a classifier needs at least 2.")
    return RecordShards(train, list(map(count_records, train))), RecordShards(validation, list(map(count_records, validation))), class_names
