"""tf.data pipelines: augmentation, one-hot labels, batching, caching and prefetching.

Augmentations are the paper's (Sec. 3.4 and 4.2):
- "cifar": pad 4 pixels with zeros, take a random crop of the original size, flip horizontally.
- "imagenet": random-resized crop (area fraction `min_crop_area`-1, aspect 3/4-4/3) of the original
  picture, resized with an antialiasing filter, flip.
Evaluation applies the run's evaluation transform (keras_resnet.runtime.preprocessing: the centred
square of a fraction of the shorter side, Pillow's bilinear filter, rounded to 8 bits), the same that
classify.py and the page apply on the device.
Random choices come from stateless ops seeded per example from one seeded stream: the same seed
gives the same augmented epochs.

Training input: decoded pictures kept in memory when they fit (is_cached: the stated rule); else,
for the "imagenet" augmentation, a folder's pictures are read by file, TFRecord shards (tfrecord:,
TFDS's own) by shard, and only each random crop is decoded from a JPEG's bytes (the Model Garden's
and the TPU reference's decode-and-crop), straight into its batch (pictures.decoded_batches: no
stage per picture after the decoding). Under tf.distribute (distribute_datasets_from_function)
each input pipeline reads its own share of the files or shards; a source without them (generated,
TFDS kept decoded) is split by example.
"""

import tensorflow as tf

from keras_resnet.data import records
from keras_resnet.data.pictures import (
    CROP_RANDOM_NUMBERS, RECORD_PICTURES, decode_crop, decode_random_crop, decoded_batches, plain, random_crop_box, random_crop_boxes,
)

AUGMENTATIONS = ("cifar", "imagenet")
# Cache decoded images in memory when they take less than this.
CACHE_LIMIT_BYTES = 2 << 30
_PIPELINE_SEED_STRIDE = 1_000_003
# The graph-level seed of the functions that make an epoch (any but 0: see _shuffled).
_FUNCTION_GRAPH_SEED = 1
# Records in a segment of pictures.decoded_batches (whole batches, at least one): their encoded
# pictures are gathered before the segment's first is decoded.
RECORDS_PER_SEGMENT = 1 << 9
# TFRecord shards read at once (the Model Garden's cycle length for ImageNet's 1,024 shards is 16
# on a TPU host's many cores).
_SHARDS_READ_AT_ONCE = 4
# The error a training example whose label is not one of the dataset's classes raises (tf.one_hot
# would make it an all-zero target and train on it in silence). No quotes in it: TensorFlow escapes
# them in the error's text.
LABEL_OUT_OF_RANGE = "A training example has a label outside the classes of the dataset"


class EmptyShare(ValueError):
    """An input pipeline whose share of the training data is empty (more workers than records)."""


def estimated_bytes(examples, image_size):
    height, width = image_size
    return examples * height * width * 3


def training_dataset(
    source, *, image_size, augmentation, batch_size, seed, min_crop_area=0.08, shuffle_buffer=10_000, input_context=None
):
    """Infinite stream of augmented (float32 image in [0, 255], one-hot label) batches of `batch_size`.

    Args:
        source: The DataSource whose training split is read.
        image_size: The training pictures' height and width in pixels.
        augmentation: "cifar" or "imagenet" (AUGMENTATIONS; see the module's docstring).
        batch_size: The global batch size; the last incomplete batch of the stream is dropped.
        seed: The run's seed: the same seed gives the same augmented epochs.
        min_crop_area: The "imagenet" augmentation's smallest crop, as a share of the picture's area.
        shuffle_buffer: The shuffle buffer's size in examples (for decoded pictures, at most the split's size).
        input_context: tf.distribute's InputContext (from distribute_datasets_from_function): then the
            stream is this input pipeline's share of the data, in batches of one replica's share of
            `batch_size`; None: one pipeline of global batches.

    Returns:
        A tf.data.Dataset. Iterating it raises an InvalidArgumentError for a label outside the
        classes (LABEL_OUT_OF_RANGE) or when no picture decodes (pictures.NOTHING_DECODED): in a
        pass over pictures decoded whole, in a segment of pictures.decoded_batches read by file or record.

    Raises:
        EmptyShare: This input pipeline's share of TFRecord shards holds no record.
    """
    classes = len(source.class_names)
    shards, shard = (input_context.num_input_pipelines, input_context.input_pipeline_id) if input_context else (1, 0)
    if input_context:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    # Each input pipeline draws its own crops and orders (pipeline 0's are a single pipeline's).
    run_seed, seed = seed, seed + shard * _PIPELINE_SEED_STRIDE
    if reads_encoded(source, augmentation) and source.train_records is not None:
        batches = _crops_from_records(
            source.train_records, image_size=image_size, seed=seed, order_seed=run_seed, min_crop_area=min_crop_area, shards=shards,
            shard=shard, shuffle_buffer=shuffle_buffer, batch_size=batch_size,
        )
    elif reads_encoded(source, augmentation):
        batches = _crops_from_files(
            source.train_files, image_size=image_size, seed=seed, min_crop_area=min_crop_area, shards=shards, shard=shard, batch_size=batch_size
        )
    else:
        batches = _augmented(
            _decoded_share(source, shards=shards, shard=shard), image_size=image_size, augmentation=augmentation, seed=seed,
            min_crop_area=min_crop_area, shuffle_buffer=min(shuffle_buffer, source.train_examples), cached=is_cached(source),
        ).batch(batch_size, drop_remainder=True)

    @plain
    def one_hot(images, labels):
        # Per batch: one op for the batch, not a stage that every picture passes through.
        # One Assert of string data (assert_less and assert_non_negative build a dozen ops each).
        in_range = tf.debugging.Assert(tf.reduce_all((labels >= 0) & (labels < classes)), [LABEL_OUT_OF_RANGE])
        with tf.control_dependencies([in_range]):
            return images, tf.one_hot(labels, classes)

    dataset = batches.map(one_hot)
    return with_input_options(dataset.prefetch(tf.data.AUTOTUNE), shard_policy=tf.data.experimental.AutoShardPolicy.OFF if input_context else None)


def is_cached(source):
    """The rule: decoded training pictures are kept in memory after the first epoch when they are
    known to take less than CACHE_LIMIT_BYTES (a folder's size read from its headers, up to 20,000
    files; stored datasets' from their shape)."""
    train_bytes = source.train_bytes()
    return train_bytes is not None and train_bytes < CACHE_LIMIT_BYTES


def reads_encoded(source, augmentation):
    """Whether training decodes each crop from its file's or record's bytes every epoch (the
    paper's random-resized crop of pictures too large to keep decoded in memory)."""
    stored_encoded = source.train_files is not None or source.train_records is not None
    return stored_encoded and augmentation == "imagenet" and not is_cached(source)


def describe_training_input(source, augmentation, *, workers):
    """The training input in words, for the run's log: how pictures are decoded and shared out.

    Args:
        source: The DataSource whose training split is read.
        augmentation: "cifar" or "imagenet".
        workers: The number of worker processes training together (distribute.worker_count), each with
            its own input pipeline.

    Returns:
        A phrase, without a final full stop.
    """
    if reads_encoded(source, augmentation) and source.train_records is not None:
        shards = len(source.train_records.paths)
        how = (
            f"{shards} TFRecord shard(s), {_SHARDS_READ_AT_ONCE} read at once in a new order each epoch, records shuffled, "
            f"each crop decoded from the picture's bytes (decode_and_crop_jpeg; other formats whole)"
        )
        if workers > 1:
            how += f"; split by shard over {workers} workers" if shards >= workers else f"; split by record over {workers} workers (fewer shards than workers)"
        return how
    if reads_encoded(source, augmentation):
        how = "read by file, each crop decoded from its JPEG's bytes (decode_and_crop_jpeg; other formats whole), reshuffled each epoch"
    elif is_cached(source):
        how = f"decoded once and kept in memory ({source.train_bytes() / 2**20:,.0f} MB, under {CACHE_LIMIT_BYTES / 2**30:g} GiB)"
    else:
        how = "decoded whole each epoch"
    if workers > 1:
        how += f"; split by file over {workers} workers" if source.train_files is not None else f"; split by example over {workers} workers (each reads every example: the source has no files to split)"
    return how


def _decoded_share(source, *, shards, shard):
    """The decoded training examples of input pipeline `shard` of `shards`: by file where the source
    has files (each pipeline decodes only its own), else every `shards`-th example."""
    if shards == 1:
        return source.train
    if source.train_files is not None:
        order = tf.range(shard, len(source.train_files), shards, dtype=tf.int64)
        return source.train_files.decoded_whole(order=order)
    return source.train.shard(shards, shard)


def _augmented(dataset, *, image_size, augmentation, seed, min_crop_area, shuffle_buffer, cached):
    """Endless epochs of `dataset`'s decoded pictures, each epoch shuffled and augmented with
    randomness drawn from its number alone. The epochs come from Dataset.range, the pipeline's only
    splittable source: on a tf.data service in "distributed_epoch" mode each worker makes whole
    epochs, the same as here (a repeat() of the pictures would hand the workers single files
    instead: one that joined after another took them all would cache nothing and spin). The cache
    belongs to `dataset`, taken into each epoch: one for the run."""
    if cached:
        dataset = dataset.cache()

    @plain
    def epoch(number):
        @plain
        def augment(position, example):
            image, label = example
            random_seed = tf.stack([number + (seed << 20), position])
            image = tf.cast(image, tf.float32)
            if augmentation == "cifar":
                image = _pad_and_crop(image, image_size, random_seed)
            else:
                image = _random_resized_crop(image, image_size, random_seed, min_crop_area)
            image = tf.image.stateless_random_flip_left_right(image, seed=tf.reverse(random_seed, [0]))
            return image, label

        return _shuffled(dataset, shuffle_buffer, number + (seed << 20)).enumerate().map(augment, num_parallel_calls=tf.data.AUTOTUNE)

    return tf.data.Dataset.range(1 << 62).flat_map(epoch)


def _crops_from_records(shards_of_records, *, image_size, seed, order_seed, min_crop_area, shards, shard, shuffle_buffer, batch_size):
    """Endless epochs over this pipeline's share of the TFRecord shards (every `shards`-th shard from
    `shard` when there are enough of them, else every `shards`-th record), each epoch in a new order
    of shards, some read at once, their records through a shuffle buffer, and only each picture's random
    crop decoded, straight into its batch (pictures.decoded_batches; batches run on from one epoch
    into the next); a record whose picture will not decode is skipped and counted. A shard missing
    when an epoch starts stops training (records.SHARD_MISSING). `order_seed`: the same for every pipeline of a run
    (split by record, all must read the records in one order to take every `shards`-th of it)."""
    counts = shards_of_records.counts
    by_file = len(counts) >= shards
    if by_file:
        share_indices = list(range(shard, len(counts), shards))
        examples = sum(counts[index] for index in share_indices)
    else:
        share_indices = list(range(len(counts)))
        examples = len(range(shard, sum(counts), shards))
    if examples == 0:
        raise EmptyShare(
            f"Input pipeline {shard + 1} of {shards} gets no training records (the shards hold {sum(counts)}): "
            f"use fewer workers, or write the records into more shards."
        )
    share = tf.constant(share_indices, tf.int64)

    @plain
    def epoch(number):
        """The epoch's rows: each record numbered in the epoch's order, with the epoch's number."""
        shard_order_seed = tf.constant(seed if by_file else order_seed, tf.int64)
        order = tf.random.experimental.stateless_shuffle(share, seed=tf.stack([shard_order_seed, number]))
        stream = shards_of_records.records(order=order, interleave=_SHARDS_READ_AT_ONCE)
        if not by_file:
            stream = stream.shard(shards, shard)
        numbered = _shuffled(stream, shuffle_buffer, number + (seed << 20)).enumerate()
        return tf.data.Dataset.zip((numbered, tf.data.Dataset.from_tensors(number).repeat()))

    @plain
    def crop(numbered, number):
        position, (encoded, label) = numbered
        random_seed = tf.stack([number + (seed << 20), position])
        return _crop_of_bytes(encoded, 1, random_seed, min_crop_area, image_size, kinds=RECORD_PICTURES), label

    @plain
    def counted(numbered, number):
        # Records have no names, and after interleaving and shuffling not even their shard is
        # known: those of this pipeline's first pass are counted.
        first_pass = tf.reduce_sum(tf.cast(tf.equal(number, 0), tf.int64))
        line = tf.strings.join(["warning: ", tf.strings.as_string(first_pass), f" training record(s){records.UNDECODABLE}"])
        return tf.boolean_mask(line[tf.newaxis], (first_pass > 0)[tf.newaxis])

    rows = tf.data.Dataset.range(1 << 62).flat_map(epoch)
    # Records hold their pictures' bytes (about 110 KB each for ImageNet's): fewer in a segment.
    return decoded_batches(rows, crop, batch_size=batch_size, name_failed=counted, rows_per_segment=RECORDS_PER_SEGMENT)


def _shuffled(dataset, buffer, seed):
    """`dataset` through a shuffle buffer of `buffer` elements whose order comes from `seed` (a
    tensor: the epoch's) and nothing else, so that an epoch is the same whichever tf.data service
    worker makes it. Called while a dataset function is traced: Dataset.shuffle pairs its seed with
    the graph's, which comes from the global seed, and fails on a tensor when that is 0 (TensorFlow
    compares the pair with (0, 0) in Python); the traced function's graph gets a seed of its own."""
    if tf.executing_eagerly():
        raise RuntimeError("_shuffled sets a graph's seed: call it inside a dataset function, not eagerly")
    tf.random.set_seed(_FUNCTION_GRAPH_SEED)  # outside eager execution: this graph's seed only
    return dataset.shuffle(buffer, seed=seed)


def _crops_from_files(files, *, image_size, seed, min_crop_area, shards, shard, batch_size):
    """Endless epochs over this pipeline's share of `files` (every `shards`-th file from `shard`),
    each in a new order (a seeded permutation of the file list: no shuffle buffer of decoded
    pictures), each picture read and only its random crop decoded, resized and flipped, straight
    into its batch (pictures.decoded_batches); batches run on from one epoch into the next.

    Where the folder's headers gave every picture's size and all are JPEGs (files.sizes,
    files.kinds), an epoch's crops and flips are drawn at once when it starts (random_crop_boxes: a
    few dozen operations for the epoch, instead of for each picture, which made a tenth of a
    picture's time); otherwise each picture's are drawn on the size its header gives as it is read."""
    share = tf.range(shard, len(files), shards, dtype=tf.int64)
    drawn_beforehand = files.sizes is not None and files.kinds.only_jpeg
    sizes = files.sizes_tensor() if drawn_beforehand else None
    paths, labels, turns = files._tensors()

    @plain
    def epoch(number):
        """The epoch's rows: each file's index, the epoch's number, its place in the epoch and, drawn
        beforehand, its crop and flip."""
        order = tf.random.experimental.stateless_shuffle(share, seed=tf.stack([tf.constant(seed, tf.int64), number]))
        rows = (order, tf.fill(tf.shape(order), number), tf.range(tf.size(order, out_type=tf.int64)))
        if not drawn_beforehand:
            return rows
        epoch_seed = number + (seed << 20)
        uniform = tf.random.stateless_uniform(tf.concat([tf.shape(order), CROP_RANDOM_NUMBERS], 0), seed=tf.stack([epoch_seed, -1]))
        boxes = random_crop_boxes(tf.gather(sizes, order), uniform, min_crop_area)
        mirrored = tf.random.stateless_uniform(tf.shape(order), seed=tf.stack([epoch_seed, -2])) < 0.5
        return (*rows, boxes, mirrored)

    @plain
    def crop(index, number, position, box=None, mirrored=None):
        """One file's training picture, float32 (image_size, image_size, 3), and its label."""
        encoded, orientation = tf.io.read_file(tf.gather(paths, index)), tf.gather(turns, index)
        if drawn_beforehand:
            image = decode_crop(encoded, orientation, box, image_size, kinds=files.kinds)
            image = tf.cond(mirrored, lambda: tf.image.flip_left_right(image), lambda: image)
        else:
            random_seed = tf.stack([number + (seed << 20), position])
            image = _crop_of_bytes(encoded, orientation, random_seed, min_crop_area, image_size, kinds=files.kinds)
        return image, tf.gather(labels, index)

    @plain
    def named(index, number, *_):
        return files.undecodable_warnings(tf.boolean_mask(index, tf.equal(number, 0)))  # in the first pass only

    rows = tf.data.Dataset.range(1 << 62).map(epoch).unbatch()
    return decoded_batches(rows, crop, batch_size=batch_size, name_failed=named)


def _crop_of_bytes(encoded, orientation, random_seed, min_crop_area, image_size, *, kinds):
    """The training picture of one file's or record's bytes: its random crop, decoded from them,
    then flipped, both drawn from `random_seed` (a pair); `kinds`: what the pictures are known to be."""
    image = decode_random_crop(encoded, orientation, random_seed, min_crop_area, image_size, kinds=kinds)
    return tf.image.stateless_random_flip_left_right(image, seed=tf.reverse(random_seed, [0]))


def evaluation_dataset(source, *, image_size, preprocessing, batch_size):
    """The validation split through an evaluation transform, batched: (float32 pixels, one-hot labels).

    Kept in memory after the first pass when it takes less than CACHE_LIMIT_BYTES.

    Args:
        source: The DataSource whose validation split is read.
        image_size: The pictures' height and width in pixels.
        preprocessing: The evaluation transform (keras_resnet.runtime.preprocessing.Preprocessing).
        batch_size: The batch size; the last batch may be smaller.

    Returns:
        A tf.data.Dataset of (float32 pixels [batch, image_size, image_size, 3] in whole values 0-255,
        one-hot labels) batches, one pass over the split.
    """
    classes = len(source.class_names)

    @plain
    def prepare(image, label):
        return evaluation_transform(image, image_size, preprocessing), tf.one_hot(label, classes)

    dataset = source.validation.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    if estimated_bytes(source.validation_examples, (image_size, image_size)) * 4 < CACHE_LIMIT_BYTES:
        dataset = dataset.cache()
    return with_input_options(dataset.prefetch(tf.data.AUTOTUNE))


def with_input_options(dataset, *, shard_policy=None):
    """`dataset` with the tf.data options of every input pipeline here (what the comments say why);
    `shard_policy`: how tf.distribute shares it out (None: by batch; OFF when it shares itself out)."""
    options = tf.data.Options()
    # Unless the pipeline shares itself out (shard_policy OFF): under multi-worker training each
    # worker reads every n-th batch, which works for any source.
    options.experimental_distribute.auto_shard_policy = shard_policy or tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    # Parallelism comes from tf.data running many elements at once; an op that also splits its own
    # work over threads (resize) only contends for the same cores (the Model Garden's setting too).
    options.threading.max_intra_op_parallelism = 1
    # No autotuning model: its thread can hold up the release of an iterator by as long as its
    # optimisation period (which doubles up to a minute). It re-checks cancellation before the
    # cancellation is marked done, and goes back to sleep (TensorFlow 2.21, model.cc's
    # OptimizeLoop). Measured here: 3 of 12 validation passes of 0.7 s were followed by 0.4-0.6 s
    # of it, 1 in 3 passes of training input by 1-2.5 s, and 8.5 s after 12 s of training input.
    # Keras makes a new validation iterator every epoch, and drops the training one at the end.
    # Without the model, each AUTOTUNE map runs as many calls at once as the machine that runs the
    # pipeline has cores (a tf.data service worker included), and each AUTOTUNE prefetch grows its
    # buffer on its own: the same throughput on this machine.
    options.autotune.enabled = False
    options.autotune.initial_parallelism = 1 << 16  # AUTOTUNE's parallelism: min(this, the cores)
    return dataset.with_options(options)


def evaluation_transform(image, image_size, preprocessing):
    """One picture (H, W, 3) → float32 (image_size, image_size, 3) in whole values 0-255.

    What `preprocessing.apply` gives in Pillow, within one 8-bit step (Pillow rounds between its two passes).

    Args:
        image: The picture, a numeric tensor (H, W, 3) of pixels in [0, 255] (uint8 as decoded).
        image_size: The output's height and width in pixels.
        preprocessing: The evaluation transform (its `crop_fraction`: the centred square's share of
            the shorter side).

    Returns:
        A float32 tensor (image_size, image_size, 3).
    """
    return tf.clip_by_value(tf.round(_resized_box(image, image_size, preprocessing.crop_fraction)), 0.0, 255.0)


def _resized_box(image, image_size, crop_fraction):
    """The centred square of `crop_fraction` of the shorter side, resized as Pillow's BILINEAR with a
    float box: ScaleAndTranslate's triangle kernel, widened when downscaling (antialias), samples the
    output pixel x at input (x + 0.5) / scale - translation / scale, Pillow's box[0] + (x + 0.5) * box
    width / size."""
    image = tf.cast(image, tf.float32)
    height, width = tf.unstack(tf.cast(tf.shape(image)[:2], tf.float32))
    side = tf.minimum(height, width) * crop_fraction
    scale = image_size / side
    resized = tf.raw_ops.ScaleAndTranslate(
        images=image[tf.newaxis],
        size=tf.constant([image_size, image_size]),
        scale=tf.stack([scale, scale]),
        translation=tf.stack([-(height - side) / 2 * scale, -(width - side) / 2 * scale]),
        kernel_type="triangle",
        antialias=True,
    )
    return tf.ensure_shape(resized[0], (image_size, image_size, 3))


def _pad_and_crop(image, image_size, seed):
    if image.shape[0] != image_size or image.shape[1] != image_size:
        image = _resized_box(image, image_size, crop_fraction=1.0)
    padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
    return tf.image.stateless_random_crop(padded, (image_size, image_size, 3), seed=seed)


def _random_resized_crop(image, image_size, seed, min_crop_area):
    begin, size = random_crop_box(tf.shape(image), seed, min_crop_area)
    crop = tf.slice(image, begin, size)
    # Antialiased, as the evaluation transform: a large crop is averaged down, not sampled.
    return tf.image.resize(crop, (image_size, image_size), antialias=True)
