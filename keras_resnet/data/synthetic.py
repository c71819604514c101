"""The embedded dataset: ten classes of shapes and textures, generated on the fly at any image size.

Each example is a pure function of (dataset seed, index): no download, identical on every machine.
An object of the class (random colour, size, position, rotation and shading) lies on a cluttered
background (colour gradient, low-frequency blotches, stray lines) with pixel noise. Position,
rotation and colours vary independently of the class, so a linear classifier on pixels does poorly,
while a small ResNet learns the task in a few epochs.
"""

import math

import tensorflow as tf

CLASS_NAMES = (
    "circle",
    "square",
    "triangle",
    "star",
    "ring",
    "cross",
    "crescent",
    "stripes",
    "checkerboard",
    "dots",
)
TRAIN_EXAMPLES = 10_000
VALIDATION_EXAMPLES = 2_000
DATASET_SEED = 2016
# Validation indices start far from the training ones, so the two splits never share an example.
_VALIDATION_OFFSET = 1 << 30


def dataset(split, *, image_size, examples=None, seed=DATASET_SEED):
    """One split of the embedded dataset, generated on the fly.

    Args:
        split: "train" or "validation" (examples of their own, never shared).
        image_size: The pictures' height and width in pixels.
        examples: How many examples; None: the split's size (TRAIN_EXAMPLES or VALIDATION_EXAMPLES).
        seed: The dataset's seed: the same seed gives the same examples.

    Returns:
        An unbatched tf.data.Dataset of (uint8 image [image_size, image_size, 3], int64 label), in a fixed order.

    Raises:
        ValueError: An unknown split.
    """
    if split not in ("train", "validation"):
        raise ValueError(f"Unknown split. Received: {split!r}. Valid: 'train', 'validation'.")
    default = TRAIN_EXAMPLES if split == "train" else VALIDATION_EXAMPLES
    examples = default if examples is None else examples
    start = 0 if split == "train" else _VALIDATION_OFFSET
    indices = tf.data.Dataset.range(start, start + examples)
    return indices.map(
        lambda index: render(index, image_size=image_size, seed=seed),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def render(index, *, image_size, seed=DATASET_SEED):
    """One example of the embedded dataset, a pure function of (seed, index).

    Args:
        index: The example's index (an int or an integer tensor): validation examples start at 2**30.
        image_size: The picture's height and width in pixels.
        seed: The dataset's seed.

    Returns:
        A tuple (uint8 image tensor [image_size, image_size, 3], int64 label tensor).
    """
    index = tf.cast(index, tf.int64)
    key = tf.stack([tf.constant(seed, tf.int64), index])
    p = tf.random.stateless_uniform([40], seed=key)  # every random choice of this example
    label = tf.minimum(tf.cast(p[0] * len(CLASS_NAMES), tf.int64), len(CLASS_NAMES) - 1)

    # Pixel-centre coordinates in [-1, 1].
    axis = (tf.range(image_size, dtype=tf.float32) + 0.5) / image_size * 2.0 - 1.0
    y, x = tf.meshgrid(axis, axis, indexing="ij")
    pixel = 2.0 / image_size

    background = _background(x, y, p)
    background = _stray_lines(background, x, y, p[14:26], pixel)

    # The object: centred within the middle 70 %, half-size 0.35-0.65, any rotation.
    centre_x, centre_y = p[1] * 0.7 - 0.35, p[2] * 0.7 - 0.35
    radius = 0.35 + 0.3 * p[3]
    angle = p[4] * 2.0 * math.pi
    dx, dy = x - centre_x, y - centre_y
    u = (tf.cos(angle) * dx + tf.sin(angle) * dy) / radius
    v = (-tf.sin(angle) * dx + tf.cos(angle) * dy) / radius
    frequency = 2.5 + 1.5 * p[5]  # stripes, checks and dots: periods per unit length
    distances = _signed_distances(u, v, frequency)
    distance = tf.gather(distances, label)
    coverage = tf.clip_by_value(0.5 - distance * radius / pixel, 0.0, 1.0)[..., None]  # 1-pixel anti-aliasing

    # Foreground colour on the other side of mid-grey from the background, with a little shading.
    background_level = tf.reduce_mean(background)
    low = tf.where(background_level < 0.5, 0.55, 0.0)
    foreground = low + 0.45 * p[6:9]
    shading = 1.0 + 0.2 * (p[9] - 0.5) * u[..., None]
    image = background * (1.0 - coverage) + tf.clip_by_value(foreground * shading, 0.0, 1.0) * coverage

    noise = tf.random.stateless_normal(tf.shape(image), seed=key + 1) * (0.02 + 0.06 * p[10])
    image = tf.clip_by_value(image + noise, 0.0, 1.0)
    return tf.cast(tf.round(image * 255.0), tf.uint8), label


def _signed_distances(u, v, frequency):
    """Approximate signed distance (negative inside) to each class's shape, in object units."""
    rho = tf.sqrt(u * u + v * v)
    phi = tf.atan2(v, u)
    box = tf.maximum(tf.abs(u), tf.abs(v))
    wave = math.pi * frequency
    disc = rho - 0.9
    return tf.stack(
        [
            rho - 0.85,  # circle
            box - 0.75,  # square
            tf.maximum(tf.maximum(-v, 0.866 * u + 0.5 * v), -0.866 * u + 0.5 * v) - 0.5,  # triangle
            rho - (0.62 + 0.33 * tf.cos(5.0 * phi)),  # star
            tf.abs(rho - 0.65) - 0.2,  # ring
            tf.minimum(  # cross
                tf.maximum(tf.abs(u) - 0.25, tf.abs(v) - 0.85), tf.maximum(tf.abs(v) - 0.25, tf.abs(u) - 0.85)
            ),
            tf.maximum(rho - 0.85, 0.7 - tf.sqrt((u - 0.4) ** 2 + v * v)),  # crescent
            tf.maximum(disc, -tf.sin(wave * u) / wave),  # stripes
            tf.maximum(box - 0.8, -tf.sin(wave * u) * tf.sin(wave * v) / wave),  # checkerboard
            tf.maximum(disc, (1.0 - tf.cos(wave * u) - tf.cos(wave * v)) / wave),  # dots
        ]
    )


def _background(x, y, p):
    """A random colour with a gradient and two low-frequency colour blotches."""
    base = 0.15 + 0.7 * p[26:29]
    tilt = p[29] * 2.0 * math.pi
    gradient = (x * tf.cos(tilt) + y * tf.sin(tilt)) * 0.25 * p[30]
    blotch_a = tf.sin(3.0 * x * (0.5 + p[31]) + 6.0 * p[32]) * tf.cos(3.0 * y * (0.5 + p[33]))
    blotch_b = tf.cos(2.0 * x * (0.5 + p[34]) - 2.0 * y * (0.5 + p[35]) + 6.0 * p[36])
    colour_a = p[37:40] - 0.5
    colour_b = tf.stack([p[31], p[33], p[35]]) - 0.5
    image = base + gradient[..., None] + 0.2 * blotch_a[..., None] * colour_a + 0.2 * blotch_b[..., None] * colour_b
    return tf.clip_by_value(image, 0.0, 1.0)


def _stray_lines(image, x, y, q, pixel):
    """Three thin straight lines of random colours across the background."""
    for line in range(3):
        point_x, point_y, direction = q[4 * line] * 2 - 1, q[4 * line + 1] * 2 - 1, q[4 * line + 2] * math.pi
        distance = tf.abs((x - point_x) * tf.sin(direction) - (y - point_y) * tf.cos(direction))
        ink = tf.clip_by_value(1.0 - distance / pixel, 0.0, 1.0)[..., None] * 0.7
        colour = tf.stack([q[4 * line + 3], 1.0 - q[4 * line + 3], q[(4 * line + 5) % 12]])
        image = image * (1.0 - ink) + colour * ink
    return image
