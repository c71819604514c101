"""Picture files as tf.data reads them: decoding as classify.py decodes (Pillow's rules), turning
upright by EXIF, the paper's random-resized crop decoded straight from a JPEG's bytes, and files that
will not decode skipped and named.

A folder dataset is a PictureFiles list: paths, labels and EXIF orientations, nothing per file beyond
them, so that a million files cost a few hundred megabytes of Python strings and nothing decoded.
"""

import dataclasses
import os
import sys

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(eq=False)
class PictureFiles:
    """Picture files with their labels and EXIF orientations (1-8), in one fixed order."""

    paths: list
    labels: list
    orientations: list
    # Indices of the files already named as undecodable: each is named once per process.
    reported: set = dataclasses.field(default_factory=set)

    def __len__(self):
        return len(self.paths)

    def decoded(self, decode, *, order=None, skip_undecodable=True):
        """(decode(encoded bytes, orientation, position), int64 label) for the files at the indices
        `order` (an int64 tensor; default: all, in order), in that order. With `skip_undecodable`, a
        training file whose decoding fails is left out and named once on stderr (without, the error
        stops the iteration). `position` is the element's place in `order`."""
        count = len(self.paths)
        order = tf.range(count, dtype=tf.int64) if order is None else order
        paths = tf.constant([os.fsencode(path) for path in self.paths], tf.string)
        labels = tf.constant(self.labels, tf.int64)
        turns = tf.constant(self.orientations, tf.int32)

        def read(position, index):
            encoded = tf.io.read_file(tf.gather(paths, index))
            return position, decode(encoded, tf.gather(turns, index), position), tf.gather(labels, index)

        # tf.data's ignore_errors drops a failing element silently (its warning is a C++ log line
        # that TF_CPP_MIN_LOG_LEVEL hides). The survivors keep their positions, so a gap names the
        # files dropped; an element past the end (removed again) finds a gap at the end. Python runs
        # only when there is a gap.
        decoded = tf.data.Dataset.from_tensor_slices(order).enumerate().map(read, num_parallel_calls=tf.data.AUTOTUNE)
        if not skip_undecodable:
            return decoded.map(lambda position, image, label: (image, label))
        decoded = decoded.ignore_errors()
        end = tf.cast(tf.size(order), tf.int64)
        sample = decoded.element_spec[1]
        past_end = tf.data.Dataset.from_tensors(
            (end, tf.zeros([0 if size is None else size for size in sample.shape], sample.dtype), tf.constant(-1, tf.int64))
        )

        def check_gap(expected, element):
            position, image, label = element
            gap = tf.cond(
                position > expected,
                lambda: tf.py_function(self._report, [tf.gather(order, tf.range(expected, position))], tf.int64),
                lambda: tf.constant(0, tf.int64),
            )
            with tf.control_dependencies([gap]):
                return position + 1, (image, label)

        return decoded.concatenate(past_end).scan(tf.constant(0, tf.int64), check_gap).filter(lambda image, label: label >= 0)

    def _report(self, indices):
        named = [int(index) for index in indices.numpy() if int(index) not in self.reported]
        self.reported.update(named)
        for index in named:
            print(
                f"warning: training picture {shown(self.paths[index])} cannot be decoded (damaged, or not an image): skipped.",
                file=sys.stderr,
                flush=True,
            )
        return np.int64(len(named))


def shown(path):
    """A file name as it can be printed: bytes that are not UTF-8 as \\x escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def decode_picture(encoded, orientation=1):
    """Encoded bytes (JPEG, PNG, GIF's first frame, BMP) → uint8 RGB (H, W, 3), as classify.py reads a
    file with Pillow, turned upright by its EXIF `orientation` (1-8: sources.picture_orientation reads
    it; TensorFlow does not). See decode_stored."""
    return upright(decode_stored(encoded), orientation)


def decode_stored(encoded):
    """Encoded bytes → uint8 RGB (H, W, 3) as stored (not turned by EXIF): JPEG with the accurate
    integer IDCT (TensorFlow's default is the fast, less exact one), grayscale as three equal
    channels, transparency laid over white."""

    def jpeg():
        return tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")

    def other():
        image = tf.io.decode_image(encoded, expand_animations=False)  # its own channels: 1 to 4
        gray = tf.shape(image)[-1] <= 2
        image = tf.cond(gray, lambda: tf.concat([tf.repeat(image[..., :1], 3, axis=-1), image[..., 1:]], -1), lambda: image)

        def over_white():
            pixels = tf.cast(image, tf.float32)
            alpha = pixels[..., 3:4]
            return tf.cast(tf.round((pixels[..., :3] * alpha + 255.0 * (255.0 - alpha)) / 255.0), tf.uint8)

        return tf.cond(tf.shape(image)[-1] == 4, over_white, lambda: image[..., :3])

    return tf.ensure_shape(tf.cond(tf.io.is_jpeg(encoded), jpeg, other), (None, None, 3))


# torchvision's RandomResizedCrop: ten tries, then the centred crop of the nearest allowed aspect.
_CROP_ATTEMPTS = 10
_ASPECT_RANGE = (3 / 4, 4 / 3)


def random_crop_box(shape, seed, min_crop_area):
    """The paper's crop (Szegedy et al.'s, as torchvision's RandomResizedCrop samples it) of a picture
    of `shape` (H, W, …): `min_crop_area` to all of its area, a log-uniform aspect from 3/4 to 4/3,
    at any place in the picture where it fits, edges included; after ten tries that do not fit, the
    centred crop of the allowed aspect nearest the picture's. Returns (begin [y, x, 0], size
    [h, w, -1]), int32, for tf.slice.

    Not tf.image.sample_distorted_bounding_box: it places a crop at an offset below H - h (and
    W - w), never touching the last row or column unless the crop spans the picture — on a picture
    wider than 4/3, its last column is never trained on."""
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    uniform = tf.random.stateless_uniform([4, _CROP_ATTEMPTS], seed=seed)
    areas = height * width * (min_crop_area + (1.0 - min_crop_area) * uniform[0])
    low, high = tf.math.log(_ASPECT_RANGE[0]), tf.math.log(_ASPECT_RANGE[1])
    aspects = tf.exp(low + (high - low) * uniform[1])
    widths = tf.round(tf.sqrt(areas * aspects))
    heights = tf.round(tf.sqrt(areas / aspects))
    fits = (widths > 0) & (widths <= width) & (heights > 0) & (heights <= height)
    tops = tf.floor(uniform[2] * (height - heights + 1))
    lefts = tf.floor(uniform[3] * (width - widths + 1))
    # The fallback: the centred crop of the nearest allowed aspect.
    ratio = width / height
    fallback_width = tf.where(ratio > _ASPECT_RANGE[1], tf.round(height * _ASPECT_RANGE[1]), width)
    fallback_height = tf.where(ratio < _ASPECT_RANGE[0], tf.round(width / _ASPECT_RANGE[0]), height)
    first = tf.argmax(tf.cast(fits, tf.int32))
    found = tf.reduce_any(fits)
    box = tf.where(
        found,
        tf.stack([tops[first], lefts[first], heights[first], widths[first]]),
        tf.stack([tf.floor((height - fallback_height) / 2), tf.floor((width - fallback_width) / 2), fallback_height, fallback_width]),
    )
    box = tf.cast(box, tf.int32)
    return tf.stack([box[0], box[1], 0]), tf.stack([box[2], box[3], -1])


def decode_random_crop(encoded, orientation, seed, min_crop_area):
    """random_crop_box of the picture in `encoded`, upright, uint8: for a JPEG only the crop's blocks
    are decoded (tf.io.decode_and_crop_jpeg, the box sampled on the size its header gives); other
    formats are decoded whole, then cropped. The box is sampled on the picture as stored and turned
    with it: the crop's area and aspect ranges are the same either way up."""

    def jpeg():
        begin, size = random_crop_box(tf.io.extract_jpeg_shape(encoded), seed, min_crop_area)
        window = tf.stack([begin[0], begin[1], size[0], size[1]])
        return tf.io.decode_and_crop_jpeg(encoded, window, channels=3, dct_method="INTEGER_ACCURATE")

    def other():
        image = decode_stored(encoded)
        begin, size = random_crop_box(tf.shape(image), seed, min_crop_area)
        return tf.slice(image, begin, size)

    crop = tf.ensure_shape(tf.cond(tf.io.is_jpeg(encoded), jpeg, other), (None, None, 3))
    return upright(crop, orientation)


def upright(image, orientation):
    """What PIL.ImageOps.exif_transpose does for EXIF orientations 2-8 (1, or anything else: as stored)."""
    transpose = tf.image.transpose
    turns = [
        lambda: image,
        lambda: image,
        lambda: tf.image.flip_left_right(image),  # 2
        lambda: tf.image.rot90(image, 2),  # 3
        lambda: tf.image.flip_up_down(image),  # 4
        lambda: transpose(image),  # 5
        lambda: tf.image.rot90(image, 3),  # 6: a quarter turn clockwise
        lambda: tf.image.rot90(transpose(image), 2),  # 7
        lambda: tf.image.rot90(image, 1),  # 8: a quarter turn anticlockwise
    ]
    index = tf.where((orientation >= 1) & (orientation <= 8), orientation, 0)
    return tf.switch_case(tf.cast(index, tf.int32), turns)
