"""tf.data pipelines: augmentation, one-hot labels, batching, caching and prefetching.

Augmentations are the paper's (Sec. 3.4 and 4.2):
- "cifar": pad 4 pixels with zeros, take a random crop of the original size, flip horizontally.
- "imagenet": random-resized crop (area fraction `min_crop_area`-1, aspect 3/4-4/3), flip. Evaluation
  resizes the shorter side to size/0.875 and takes the central crop.
Random choices come from stateless ops seeded per example from one seeded stream: the same seed
gives the same augmented epochs.
"""

import tensorflow as tf

AUGMENTATIONS = ("cifar", "imagenet")
# Cache decoded images in memory when they take less than this.
CACHE_LIMIT_BYTES = 2 << 30
EVALUATION_CROP = 0.875


def estimated_bytes(examples, image_size):
    height, width = image_size
    return examples * height * width * 3


def training_dataset(
    source, *, image_size, augmentation, batch_size, seed, min_crop_area=0.08, shuffle_buffer=10_000
):
    """Infinite stream of augmented (float32 image in [0, 255], one-hot label) batches."""
    classes = len(source.class_names)
    dataset = source.train
    if source.stored_image_size and estimated_bytes(source.train_examples, source.stored_image_size) < CACHE_LIMIT_BYTES:
        dataset = dataset.cache()
    dataset = dataset.shuffle(min(shuffle_buffer, source.train_examples), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat()
    # One seed pair per example for the stateless random ops.
    randomness = tf.data.Dataset.random(seed=seed).batch(2)
    dataset = tf.data.Dataset.zip((dataset, randomness))

    def augment(example, random_seed):
        image, label = example
        image = tf.cast(image, tf.float32)
        if augmentation == "cifar":
            image = _pad_and_crop(image, image_size, random_seed)
        else:
            image = _random_resized_crop(image, image_size, random_seed, min_crop_area)
        image = tf.image.stateless_random_flip_left_right(image, seed=random_seed[::-1])
        return image, tf.one_hot(label, classes)

    dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return _with_options(dataset.prefetch(tf.data.AUTOTUNE))


def evaluation_dataset(source, *, image_size, augmentation, batch_size):
    """The validation split, resized (and for "imagenet" centre-cropped), batched."""
    classes = len(source.class_names)

    def prepare(image, label):
        image = tf.cast(image, tf.float32)
        if augmentation == "cifar":
            image = tf.image.resize(image, (image_size, image_size))
        else:
            image = _centre_crop(image, image_size)
        return image, tf.one_hot(label, classes)

    dataset = source.validation.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    if estimated_bytes(source.validation_examples, (image_size, image_size)) * 4 < CACHE_LIMIT_BYTES:
        dataset = dataset.cache()
    return _with_options(dataset.prefetch(tf.data.AUTOTUNE))


def _with_options(dataset):
    options = tf.data.Options()
    # Under multi-worker training each worker reads every n-th batch: works for any source.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return dataset.with_options(options)


def _pad_and_crop(image, image_size, seed):
    if image.shape[0] != image_size or image.shape[1] != image_size:
        image = tf.image.resize(image, (image_size, image_size))
    padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
    return tf.image.stateless_random_crop(padded, (image_size, image_size, 3), seed=seed)


def _random_resized_crop(image, image_size, seed, min_crop_area):
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(min_crop_area, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.slice(image, begin, size)
    return tf.image.resize(crop, (image_size, image_size))


def _centre_crop(image, image_size):
    height, width = tf.unstack(tf.cast(tf.shape(image)[:2], tf.float32))
    scale = image_size / EVALUATION_CROP / tf.minimum(height, width)
    resized = tf.image.resize(
        image, tf.cast(tf.round(tf.stack([height * scale, width * scale])), tf.int32)
    )
    return tf.image.resize_with_crop_or_pad(resized, image_size, image_size)
