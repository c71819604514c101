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
"""

import tensorflow as tf

AUGMENTATIONS = ("cifar", "imagenet")
# Cache decoded images in memory when they take less than this.
CACHE_LIMIT_BYTES = 2 << 30


def estimated_bytes(examples, image_size):
    height, width = image_size
    return examples * height * width * 3


def training_dataset(
    source, *, image_size, augmentation, batch_size, seed, min_crop_area=0.08, shuffle_buffer=10_000
):
    """Infinite stream of augmented (float32 image in [0, 255], one-hot label) batches."""
    classes = len(source.class_names)
    dataset = source.train
    train_bytes = source.train_bytes()
    if train_bytes is not None and train_bytes < CACHE_LIMIT_BYTES:
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


def evaluation_dataset(source, *, image_size, preprocessing, batch_size):
    """The validation split through the evaluation transform `preprocessing`
    (keras_resnet.runtime.preprocessing.Preprocessing), batched: (float32 pixels, one-hot labels)."""
    classes = len(source.class_names)

    def prepare(image, label):
        return evaluation_transform(image, image_size, preprocessing), tf.one_hot(label, classes)

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


def evaluation_transform(image, image_size, preprocessing):
    """One picture (H, W, 3) → float32 (image_size, image_size, 3) in whole values 0-255: what
    `preprocessing.apply` gives in Pillow, within one 8-bit step (Pillow rounds between its two passes)."""
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
    # Antialiased, as the evaluation transform: a large crop is averaged down, not sampled.
    return tf.image.resize(crop, (image_size, image_size), antialias=True)
