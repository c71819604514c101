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


# Functions given to tf.data here are written with tf.cond and tf.switch_case, not Python control flow
# on tensors: AutoGraph's conversion (seconds of start-up for these) is skipped.
plain = tf.autograph.experimental.do_not_convert
# The error a pass over training pictures raises when none of them decodes.
NOTHING_DECODED = "None of the training pictures could be decoded"
# How a training picture that will not decode is named, after its path.
UNDECODABLE = " cannot be decoded (damaged, or not an image): skipped."


@dataclasses.dataclass(eq=False)
class PictureFiles:
    """Picture files with their labels and EXIF orientations (1-8), in one fixed order."""

    paths: list
    labels: list
    orientations: list
    _tensors_made: tuple = dataclasses.field(default=None, repr=False)

    def __len__(self):
        return len(self.paths)

    def first(self, count):
        """The first `count` files."""
        return PictureFiles(paths=self.paths[:count], labels=self.labels[:count], orientations=self.orientations[:count])

    def decoded(self, decode, *, order=None, skip_undecodable=True, name_skipped=True):
        """(decode(encoded bytes, orientation, position), int64 label) for the files at the indices
        `order` (an int64 tensor; default: all, in order), in that order. With `skip_undecodable`, a
        training file whose decoding fails is left out, and named on stderr when `name_skipped` (a
        bool or bool tensor: a pipeline names them in its first pass only); without, the error
        stops the iteration. `position` is the element's place in `order`."""
        count = len(self.paths)
        order = tf.range(count, dtype=tf.int64) if order is None else order
        paths, labels, turns = self._tensors()

        @plain
        def read(position, index):
            encoded = tf.io.read_file(tf.gather(paths, index))
            return position, decode(encoded, tf.gather(turns, index), position), tf.gather(labels, index)

        decoded = tf.data.Dataset.from_tensor_slices(order).enumerate().map(read, num_parallel_calls=tf.data.AUTOTUNE)
        if not skip_undecodable:
            return decoded.map(plain(lambda position, image, label: (image, label)))
        return skipping_undecodable(
            decoded,
            count=tf.size(order),
            report=lambda first, last, whole_pass: warn(
                tf.strings.join(["warning: training picture ", tf.gather(paths, tf.gather(order, tf.range(first, last))), UNDECODABLE]),
                when=name_skipped,
            ),
        )

    def decoded_whole(self, *, order=None, skip_undecodable=True):
        """(uint8 RGB picture at its own size, upright, int64 label) per file, as `decoded`."""
        return self.decoded(
            lambda encoded, orientation, position: decode_picture(encoded, orientation), order=order, skip_undecodable=skip_undecodable
        )

    def _tensors(self):
        """The paths, labels and orientations as tensors, made once, outside any function being
        traced: tf.data functions capture them by reference. Made inside one (an epoch of
        pipeline._crops_from_files is), they would be constants in its graph, which graph
        optimization copies and rewrites: over a second of start-up at 100,000 files."""
        if self._tensors_made is None:
            with tf.init_scope():
                self._tensors_made = (
                    tf.constant([os.fsencode(path) for path in self.paths], tf.string),
                    tf.constant(self.labels, tf.int64),
                    tf.constant(self.orientations, tf.int32),
                )
        return self._tensors_made


def warn(lines, *, when=True):
    """Prints `lines` (a string tensor) on stderr, one per line, when `when`: an op, for functions
    that tf.data runs. tf.print, not Python: the input pipeline may run on a tf.data service
    worker, another process, where no Python function of this one can be called."""
    return tf.cond(
        tf.logical_and(when, tf.size(lines) > 0),
        lambda: _printed(lines),
        lambda: tf.constant(0, tf.int64),
    )


def _printed(lines):
    with tf.control_dependencies([tf.print(tf.strings.reduce_join(lines, separator="\n"), output_stream=sys.stderr)]):
        return tf.cast(tf.size(lines), tf.int64)


def skipping_undecodable(numbered, *, count, report):
    """`numbered`'s (image, label)s: (position, image, label) elements of one pass, positions 0 to
    `count` - 1 in order, made by a map whose failures (a picture that will not decode) are to be
    skipped. `report(first, last, whole_pass)` is called, as an op, for each run of positions
    [first, last) that failed (`whole_pass`: a bool tensor, true when it is the whole pass); a pass
    in which everything failed then raises NOTHING_DECODED instead of ending empty (training would
    repeat it for ever).

    tf.data's ignore_errors drops a failing element silently (its warning is a C++ log line that
    TF_CPP_MIN_LOG_LEVEL hides). The survivors keep their positions, so a gap shows what was
    dropped; an element past the end (removed again) finds a gap at the end. `report` runs only
    when there is a gap. It also drops a failure to read: what is read must be checked before
    (records.RecordShards.records checks that the shards are there).

    The element past the end is told apart by its position, not by its label: a record's label may
    be anything (pipeline.LABEL_OUT_OF_RANGE checks it afterwards)."""
    count = tf.cast(count, tf.int64)
    sample = numbered.element_spec[1]
    past_end = tf.data.Dataset.from_tensors(
        (count, tf.zeros([0 if size is None else size for size in sample.shape], sample.dtype), tf.constant(-1, tf.int64))
    )

    @plain
    def check_gap(state, element):
        expected, kept = state[0], state[1]
        position, image, label = element
        real = position < count
        kept_now = kept + tf.cast(real, tf.int64)
        gap = tf.cond(position > expected, lambda: report(expected, position, kept_now == 0), lambda: tf.constant(0, tf.int64))
        nothing = tf.debugging.assert_positive(kept_now + tf.cast(count == 0, tf.int64), message=NOTHING_DECODED)
        with tf.control_dependencies([gap, nothing]):
            return tf.stack([position + 1, kept_now]), (real, image, label)

    return (
        numbered.ignore_errors()
        .concatenate(past_end)
        .scan(tf.constant([0, 0], tf.int64), check_gap)
        .filter(plain(lambda real, image, label: real))
        .map(plain(lambda real, image, label: (image, label)))
    )


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


def decode_random_crop(encoded, orientation, seed, min_crop_area, image_size):
    """random_crop_box of the picture in `encoded`, upright, resized to `image_size` square, float32.

    For a JPEG only the crop's blocks are decoded (tf.io.decode_and_crop_jpeg, the box sampled on the
    size its header gives), at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling, an average over
    pixels) while the crop stays at least `image_size` on its shorter side: a 12-megapixel photo's
    crop costs about what a small picture's does, and the last, bilinear resize shrinks by under 2x
    on the shorter side (2.7x on the longer), where it aliases little — a crop over 16 times the
    image size still shrinks by more after 1/8. The fast integer IDCT: augmentation, not parity
    with classify.py. Other formats are decoded whole, cropped and resized with antialiasing. The box
    is sampled on the picture as stored and turned with it: its area and aspect ranges are the same
    either way up."""
    size = (image_size, image_size)

    def jpeg():
        begin, extent = random_crop_box(tf.io.extract_jpeg_shape(encoded), seed, min_crop_area)
        box = tf.cast(tf.stack([begin[0], begin[1], extent[0], extent[1]]), tf.float32)
        # The largest of 1, 2, 4, 8 that keeps the crop's shorter side at image_size or more.
        scale = tf.reduce_sum(tf.cast(tf.minimum(extent[0], extent[1]) >= image_size * tf.constant([2, 4, 8]), tf.int32))

        def at_ratio(ratio):
            if ratio == 1:
                # The box is whole pixels: what _resampled gives, by the faster route.
                return lambda: tf.image.resize(
                    tf.io.decode_and_crop_jpeg(encoded, tf.stack([begin[0], begin[1], extent[0], extent[1]]), channels=3), size
                )

            def decode():
                # The scaled picture's pixels that cover the box, then the box itself resampled
                # from them (its edges fall between those pixels).
                top_left = tf.floor(box[:2] / ratio)
                bottom_right = tf.math.ceil((box[:2] + box[2:]) / ratio)
                window = tf.cast(tf.concat([top_left, tf.maximum(bottom_right - top_left, 1.0)], 0), tf.int32)
                pixels = tf.io.decode_and_crop_jpeg(encoded, window, channels=3, ratio=ratio)
                return _resampled(pixels, box[:2] / ratio - top_left, box[2:] / ratio, image_size)

            return decode

        return tf.switch_case(scale, [at_ratio(ratio) for ratio in (1, 2, 4, 8)])

    def other():
        image = decode_stored(encoded)
        begin, extent = random_crop_box(tf.shape(image), seed, min_crop_area)
        return tf.image.resize(tf.cast(tf.slice(image, begin, extent), tf.float32), size, antialias=True)

    crop = tf.ensure_shape(tf.cond(tf.io.is_jpeg(encoded), jpeg, other), (image_size, image_size, 3))
    return upright(crop, orientation)


def _resampled(pixels, offset, extent, image_size):
    """The box of `extent` (height, width) at `offset` (y, x) in `pixels`, in pixel units and between
    pixels, resampled bilinearly to image_size square as tf.image.resize samples (pixel centres at
    half steps) — through crop_and_resize, which takes a box between pixels and is several times
    faster than ScaleAndTranslate."""
    # Enlarging, the outer samples fall up to half a pixel outside: one edge pixel repeated around
    # makes them the edge's value, as tf.image.resize clamps (crop_and_resize would give 0).
    pixels = tf.pad(tf.cast(pixels, tf.float32), [[1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    shape = tf.cast(tf.shape(pixels)[:2], tf.float32)
    # crop_and_resize samples output row i at y1 * (H - 1) + i * (y2 - y1) * (H - 1) / (S - 1).
    first = offset + 1.0 + 0.5 * extent / image_size - 0.5
    last = first + extent * (image_size - 1) / image_size
    span = tf.maximum(shape - 1.0, 1.0)
    box = tf.concat([first / span, last / span], 0)[tf.newaxis]
    return tf.image.crop_and_resize(
        pixels[tf.newaxis], box, tf.zeros([1], tf.int32), (image_size, image_size), method="bilinear"
    )[0]


# EXIF orientation → (transpose, then flip left-right, then flip upside down): 1 as stored; 2 mirrored;
# 3 half a turn; 4 upside down; 5 transposed; 6 a quarter turn clockwise; 7 transverse; 8 a quarter
# turn anticlockwise. Anything else: as stored.
_ORIENTATIONS = np.array(
    [[0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1]], bool
)


def upright(image, orientation):
    """What PIL.ImageOps.exif_transpose does for EXIF orientations 2-8 (1, or anything else: as stored)."""
    orientation = tf.cast(orientation, tf.int32)
    transpose, mirror, upside_down = tf.unstack(tf.gather(_ORIENTATIONS, tf.where((orientation >= 1) & (orientation <= 8), orientation, 0)))
    # The flips are one reverse with computed axes, no tf.cond (a conditional costs a function call
    # per picture). The transpose stays conditional: run on every picture, oneDNN's uint8 transpose
    # logs an error line ("oneDNN supports DT_UINT8 only …") into the user's terminal.
    turned = tf.cond(transpose, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)
    turned = tf.reverse(turned, tf.boolean_mask([1, 0], tf.stack([mirror, upside_down])))
    # Computed arguments lose the static shape: a square stays the same square, channels stay.
    height, width, channels = image.shape
    side = height if height is not None and height == width else None
    return tf.ensure_shape(turned, [side, side, channels])
