"""Picture files as tf.data reads them: decoding as classify.py decodes (Pillow's rules), turning
upright by EXIF, the paper's random-resized crop decoded straight from a JPEG's bytes, pictures
decoded straight into their batches, and files that will not decode skipped and named.

A folder dataset is a PictureFiles list: paths, labels and EXIF orientations (and what their headers
said of them all: PictureKinds; and each one's size where the headers were read, up to 20,000
files), nothing per file beyond them, so that a million files cost a few hundred megabytes of Python
strings and nothing decoded.
"""

import dataclasses
import logging
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


@dataclasses.dataclass(frozen=True)
class PictureKinds:
    """What a set of pictures is known to be, read from their headers when a folder is opened: the
    decoding of a training crop is then built with only the branches they need (a branch costs
    tracing at start-up and a conditional per picture). The default knows nothing: every branch.

    only_jpeg: every picture is a JPEG (no decode-then-crop fallback for other formats).
    any_turned: some picture has an EXIF orientation other than 1 (turned upright when decoded).
    largest_shorter_side: the largest shorter side among them, in pixels (None: not known), which
        bounds the DCT scalings a crop can use."""

    only_jpeg: bool = False
    any_turned: bool = True
    largest_shorter_side: int | None = None

    def dct_ratios(self, image_size):
        """The libjpeg DCT scalings (1, 2, 4, 8) that a crop of these pictures can be decoded at: a
        crop at ratio r needs a shorter side of r × image_size, and a crop's sides are the picture's
        at most."""
        side = self.largest_shorter_side
        return tuple(ratio for ratio in (1, 2, 4, 8) if ratio == 1 or side is None or side >= ratio * image_size)


# Records hold encoded bytes only: no EXIF orientation is read from them (decoded as stored).
RECORD_PICTURES = PictureKinds(only_jpeg=False, any_turned=False)


@dataclasses.dataclass(eq=False)
class PictureFiles:
    """Picture files with their labels, EXIF orientations (1-8) and, when known, sizes, in one fixed order."""

    paths: list
    labels: list
    orientations: list
    # What the pictures are known to be (their headers', when read): see PictureKinds.
    kinds: PictureKinds = PictureKinds()
    # Each picture's (height, width) as stored, when its header was read (None: not read): an
    # epoch's crops can then be drawn before the files are read (pipeline._crops_from_files).
    sizes: list | None = None
    _tensors_made: tuple = dataclasses.field(default=None, repr=False)
    _sizes_made: object = dataclasses.field(default=None, repr=False)

    def __len__(self):
        return len(self.paths)

    def first(self, count):
        """The first `count` files (what is known of all of them holds for these)."""
        return PictureFiles(
            paths=self.paths[:count], labels=self.labels[:count], orientations=self.orientations[:count], kinds=self.kinds,
            sizes=None if self.sizes is None else self.sizes[:count],
        )

    def decoded(self, decode, *, order=None, skip_undecodable=True):
        """The files at some indices, read and decoded, with their labels.

        Args:
            decode: Called in the graph as decode(encoded bytes, EXIF orientation, position) to make an
                element's picture; `position` is the element's place in `order` (an int64 tensor).
            order: The files' indices, an int64 tensor; None: all, in order.
            skip_undecodable: Leave out a training file whose decoding fails (see skipping_undecodable);
                False: the error stops the iteration.

        Returns:
            A tf.data.Dataset of (decoded picture, int64 label), in the order of `order`.
        """
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
            warning=lambda first, last: self.undecodable_warnings(tf.gather(order, tf.range(first, last))),
        )

    def undecodable_warnings(self, indices):
        """The warning lines naming the files at `indices` (an int64 tensor) as skipped: a string tensor."""
        paths, _, _ = self._tensors()
        return tf.strings.join(["warning: training picture ", tf.gather(paths, indices), UNDECODABLE])

    def decoded_whole(self, *, order=None, skip_undecodable=True):
        """(uint8 RGB picture at its own size, upright, int64 label) per file, as `decoded`. The
        EXIF turn is built only for files of which some are turned (self.kinds)."""
        decode = decode_picture if self.kinds.any_turned else lambda encoded, orientation: decode_stored(encoded)
        return self.decoded(
            lambda encoded, orientation, position: decode(encoded, orientation), order=order, skip_undecodable=skip_undecodable
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

    def sizes_tensor(self):
        """`sizes` as an int32 tensor [files, 2], made once as `_tensors` makes its tensors."""
        if self.sizes is None:
            raise ValueError("these pictures' sizes were not read")
        if self._sizes_made is None:
            with tf.init_scope():
                self._sizes_made = tf.reshape(tf.constant(self.sizes, tf.int32), [-1, 2])  # [0, 2] for none
        return self._sizes_made


def _printed(lines):
    """Prints `lines` (a string tensor) on stderr, one per line, when there are any: an op, for
    functions that tf.data runs. tf.print, not Python: the input pipeline may run on a tf.data
    service worker, another process, where no Python function of this one can be called."""

    def printed():
        with tf.control_dependencies([tf.print(tf.strings.reduce_join(lines, separator="\n"), output_stream=sys.stderr)]):
            return tf.cast(tf.size(lines), tf.int64)

    return tf.cond(tf.size(lines) > 0, printed, lambda: tf.constant(0, tf.int64))


def skipping_undecodable(numbered, *, count, warning, kept_before=0):
    """One pass's (image, label) elements, those whose map failed skipped and reported.

    A pass in which everything failed raises NOTHING_DECODED (an InvalidArgumentError, when iterated)
    instead of ending empty (training would repeat it for ever).

    tf.data's ignore_errors drops a failing element silently (its warning is a C++ log line that
    TF_CPP_MIN_LOG_LEVEL hides). The survivors keep their positions, so a gap shows what was
    dropped; an element past the end (removed again) finds a gap at the end. The warning is made
    and printed only when there is a gap. It also drops a failure to read: what is read must be
    checked before (records.RecordShards.records checks that the shards are there).

    The element past the end is told apart by its position, not by its label: a record's label may
    be anything (pipeline.LABEL_OUT_OF_RANGE checks it afterwards).

    Args:
        numbered: A tf.data.Dataset of (int64 position, image, label) elements of one pass, positions
            0 to `count` - 1 in order, made by a map whose failures (a picture that will not decode)
            are to be skipped.
        count: The number of elements in the pass (an int or an integer tensor).
        warning: Called in the graph as warning(first, last) for a run of positions [first, last)
            that failed: the lines to print on stderr, a string tensor (empty: nothing to print).
        kept_before: Elements of the same pass kept elsewhere (decoded_batches' batches that
            decoded whole): a pass of which none of `numbered` decodes raises NOTHING_DECODED only
            when this is 0.

    Returns:
        A tf.data.Dataset of the (image, label) elements that did not fail, in order.
    """
    count, kept_before = tf.cast(count, tf.int64), tf.cast(kept_before, tf.int64)
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
        # One conditional per picture, whose printing branch runs only for a gap to be named.
        gap = tf.cond(
            position > expected,
            lambda: _printed(warning(expected, position)),
            lambda: tf.constant(0, tf.int64),
        )
        # An Assert of string data only is one op; assert_positive's int64 message data would wrap it
        # in a conditional, run per picture.
        nothing = tf.debugging.Assert((kept_now + kept_before > 0) | (count == 0), [NOTHING_DECODED])
        with tf.control_dependencies([gap, nothing]):
            return tf.stack([position + 1, kept_now]), (real, image, label)

    return (
        numbered.ignore_errors()
        .concatenate(past_end)
        .scan(tf.constant([0, 0], tf.int64), check_gap)
        .filter(plain(lambda real, image, label: real))
        .map(plain(lambda real, image, label: (image, label)))
    )


# Rows (pictures) of decoded_batches' segments, rounded down to whole batches (at least one). A
# segment's rows are gathered before its first picture is decoded (a few milliseconds for these).
ROWS_PER_SEGMENT = 1 << 12


def decoded_batches(rows, decode, *, batch_size, name_failed, rows_per_segment=None):
    """Batches of the pictures that `rows` describe, each decoded by `decode` straight into its place
    in its batch; one that fails to decode is skipped and named, the batch stays whole.

    The decoding is fused with the batching (_mapped_and_batched): each call writes its picture into
    the batch, with no stage per picture after it (measured on 224x224 crops of JPEGs of ImageNet's
    sizes, 2 cores: 10 % more pictures per second once running than through skipping_undecodable's
    stages, which cost tens of microseconds each per picture). A picture that fails fails its whole
    batch, which is dropped (ignore_errors); when the next batch shows the gap in the batches'
    numbers, the rows of the dropped batch (and of any dropped just after it) are decoded again one
    by one through skipping_undecodable (the failing ones skipped and named by `name_failed`) and
    batched in its place, the last such batch filled up with repeats of its pictures.

    Rows are taken in segments of whole batches, `rows_per_segment` rows or one batch when that
    is more; an end marker shows a gap at a segment's end. A segment of which nothing decodes
    raises NOTHING_DECODED.

    Args:
        rows: An endless tf.data.Dataset of rows (tuples of tensors, nested or not), one per picture.
        decode: Called in the graph as decode(*row): the picture and its label (int64).
        batch_size: The batches' size.
        name_failed: Called in the graph as name_failed(*rows) for each run of rows that failed
            again, the rows batched: the lines to print on stderr about them, a string tensor
            (empty: nothing to print).
        rows_per_segment: The rows of a segment (None: ROWS_PER_SEGMENT), rounded down to whole
            batches, at least one.

    Returns:
        A tf.data.Dataset of (images [batch_size, ...], labels [batch_size]) batches.
    """
    batches_per_segment = max(1, (rows_per_segment or ROWS_PER_SEGMENT) // batch_size)
    # Traced once for both of its uses: the batches and the batches redone.
    decode = tf.function(decode, input_signature=list(rows.element_spec)).get_concrete_function()

    @plain
    def segment(*columns):
        numbered = tf.data.Dataset.from_tensor_slices((tf.range(batches_per_segment * batch_size, dtype=tf.int64), columns))

        @plain
        def decode_numbered(number, row):
            image, label = decode(*row)
            return image, label, number // batch_size  # its batch's number in the segment

        fast = _mapped_and_batched(numbered, decode_numbered, batch_size)
        images, labels, _ = fast.element_spec
        # Past the segment's last batch: shows the gap of failed batches at its end.
        end = tf.data.Dataset.from_tensors(
            (tf.zeros([0, *images.shape[1:]], images.dtype), tf.zeros([0], labels.dtype), tf.fill([1], tf.constant(batches_per_segment, tf.int64)))
        )

        @plain
        def gap_before(state, batch):
            """state: the number of the batch expected next, the batches decoded whole so far."""
            images, labels, numbers = batch
            number = numbers[0]
            return tf.stack([number + 1, state[1] + 1]), (images, labels, state[0], number, state[1])

        @plain
        def with_failed_before(images, labels, expected, number, decoded_whole):
            whole_batch = tf.cast(number < batches_per_segment, tf.int64)  # 0 for the end marker
            this = tf.data.Dataset.from_tensors((images, labels)).take(whole_batch)

            def redone_first():  # its datasets are made only when a batch failed
                failed = tf.range(expected * batch_size, tf.minimum(number, batches_per_segment) * batch_size)
                # Nothing decoded in the segment: none of these, no whole batch before, and this one
                # not whole either (the end marker after a segment of failed batches).
                kept_before = (decoded_whole + whole_batch) * batch_size
                return _redone(columns, failed, decode, batch_size=batch_size, name_failed=name_failed, kept_before=kept_before).concatenate(this)

            return tf.cond(number > expected, redone_first, lambda: this)

        return fast.ignore_errors().concatenate(end).scan(tf.constant([0, 0], tf.int64), gap_before).flat_map(with_failed_before)

    @plain
    def whole(images, labels):  # the shapes that concatenating with the end marker leaves open
        return tf.ensure_shape(images, [batch_size, *images.shape[1:]]), tf.ensure_shape(labels, [batch_size])

    # The next segment's rows are gathered while this one's pictures are decoded (a segment of
    # records holds their encoded pictures: reading them takes a while).
    segments = rows.batch(batches_per_segment * batch_size, drop_remainder=True).prefetch(1)
    return segments.flat_map(segment).map(whole)


def _mapped_and_batched(dataset, function, batch_size):
    """`dataset` through `function` straight into batches of `batch_size` (the last incomplete one
    dropped), `function` run on many elements at once: tf.data's fused map and batch, asked for by
    name (tf.data.experimental.map_and_batch), not left to the rewrite of a map followed by a batch,
    which tf.data's debug mode and options without its default optimizations leave out. Fused, a
    batch takes exactly `batch_size` elements even when `function` fails on one of them (the batch
    fails); a batch alone stops at the failure and starts the next batch with the element after it,
    which would shift decoded_batches' numbering. The name is deprecated in favour of that rewrite:
    its warning is held back."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return dataset.apply(
            tf.data.experimental.map_and_batch(function, batch_size, drop_remainder=True, num_parallel_calls=tf.data.AUTOTUNE)
        )
    finally:
        logger.setLevel(level)


def _redone(columns, failed, decode, *, batch_size, name_failed, kept_before):
    """The rows `failed` of `columns` (a batch that did not decode whole) decoded one by one, those
    that fail skipped and named, batched, the last batch filled up with repeats of its pictures."""
    rows = tf.nest.map_structure(lambda column: tf.gather(column, failed), columns)
    numbered = tf.data.Dataset.from_tensor_slices((tf.range(tf.size(failed, out_type=tf.int64)), rows)).map(
        plain(lambda number, row: (number, *decode(*row))), num_parallel_calls=tf.data.AUTOTUNE
    )
    kept = skipping_undecodable(
        numbered,
        count=tf.size(failed),
        warning=lambda first, last: name_failed(*tf.nest.map_structure(lambda column: tf.gather(column, tf.range(first, last)), rows)),
        kept_before=kept_before,
    )

    @plain
    def filled(images, labels):
        picks = tf.range(batch_size) % tf.shape(labels)[0]
        return tf.gather(images, picks), tf.gather(labels, picks)

    return kept.batch(batch_size).map(filled)


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
# The random numbers a crop is drawn from (random_crop_boxes): area, aspect and place of each try.
CROP_RANDOM_NUMBERS = (4, _CROP_ATTEMPTS)


def random_crop_box(shape, seed, min_crop_area):
    """The paper's crop (Szegedy et al.'s, as torchvision's RandomResizedCrop samples it) of a picture
    of `shape` (H, W, …): `min_crop_area` to all of its area, a log-uniform aspect from 3/4 to 4/3,
    at any place in the picture where it fits, edges included; after ten tries that do not fit, the
    centred crop of the allowed aspect nearest the picture's. Returns (begin [y, x, 0], size
    [h, w, -1]), int32, for tf.slice.

    Not tf.image.sample_distorted_bounding_box: it places a crop at an offset below H - h (and
    W - w), never touching the last row or column unless the crop spans the picture — on a picture
    wider than 4/3, its last column is never trained on.

    Args:
        shape: The picture's shape (H, W, …), an integer tensor.
        seed: The stateless random ops' seed, a shape [2] integer tensor.
        min_crop_area: The smallest crop's share of the picture's area, in (0, 1].

    Returns:
        A tuple (begin [y, x, 0], size [h, w, -1]) of int32 tensors, for tf.slice.
    """
    top, left, height, width = tf.unstack(_random_box(shape, seed, min_crop_area))
    return tf.stack([top, left, 0]), tf.stack([height, width, -1])


def _random_box(shape, seed, min_crop_area):
    """random_crop_box's crop as [top, left, height, width] (int32)."""
    uniform = tf.random.stateless_uniform([1, *CROP_RANDOM_NUMBERS], seed=seed)
    return random_crop_boxes(tf.reshape(shape[:2], [1, 2]), uniform, min_crop_area)[0]


def random_crop_boxes(shapes, uniform, min_crop_area):
    """random_crop_box's crops of many pictures at once, each from its own random numbers: the
    crops of a whole epoch in a few dozen operations, where drawing them picture by picture costs
    those operations for each (pipeline._crops_from_files). The same numbers give the same box
    either way.

    Args:
        shapes: The pictures' heights and widths, an integer tensor [n, 2].
        uniform: Random numbers in [0, 1), float32 [n, *CROP_RANDOM_NUMBERS]: each picture's areas,
            aspects, vertical and horizontal places, one per try.
        min_crop_area: The smallest crop's share of the picture's area, in (0, 1].

    Returns:
        An int32 tensor [n, 4]: each crop's top, left, height and width.
    """
    sizes = tf.cast(shapes, tf.float32)
    height, width = sizes[:, :1], sizes[:, 1:]
    areas = height * width * (min_crop_area + (1.0 - min_crop_area) * uniform[:, 0])
    low, high = tf.math.log(_ASPECT_RANGE[0]), tf.math.log(_ASPECT_RANGE[1])
    aspects = tf.exp(low + (high - low) * uniform[:, 1])
    widths = tf.round(tf.sqrt(areas * aspects))
    heights = tf.round(tf.sqrt(areas / aspects))
    fits = (widths > 0) & (widths <= width) & (heights > 0) & (heights <= height)
    tops = tf.floor(uniform[:, 2] * (height - heights + 1))
    lefts = tf.floor(uniform[:, 3] * (width - widths + 1))
    # The fallback: the centred crop of the nearest allowed aspect.
    ratio = width / height
    fallback_width = tf.where(ratio > _ASPECT_RANGE[1], tf.round(height * _ASPECT_RANGE[1]), width)
    fallback_height = tf.where(ratio < _ASPECT_RANGE[0], tf.round(width / _ASPECT_RANGE[0]), height)
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1)
    found = tf.reduce_any(fits, axis=1, keepdims=True)
    boxes = tf.where(
        found,
        tf.gather(tf.stack([tops, lefts, heights, widths], axis=1), first, axis=2, batch_dims=1),
        tf.concat([tf.floor((height - fallback_height) / 2), tf.floor((width - fallback_width) / 2), fallback_height, fallback_width], 1),
    )
    return tf.cast(boxes, tf.int32)


def decode_random_crop(encoded, orientation, seed, min_crop_area, image_size, *, kinds=PictureKinds()):
    """random_crop_box of the picture in `encoded`, upright, resized to `image_size` square, float32.

    For a JPEG only the crop's blocks are turned into pixels (tf.io.decode_and_crop_jpeg, the box
    sampled on the size its header gives), at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling,
    an average over pixels) while the crop stays at least `image_size` on its shorter side. libjpeg
    still entropy-decodes every block up to the crop's last row, so the scaling saves a quarter to
    a third of a 12-megapixel photo's crop, not its size (measured: 11.5-23 ms at 1/8 against 17-30
    ms, and 1.2 ms for a 500x375 picture's crop). The last, bilinear resize then shrinks by under 2x
    on the shorter side (2.7x on the longer), where it aliases little — a crop over 16 times the
    image size still shrinks by more after 1/8. At a scaling, the box is the scaled picture's pixels
    nearest it (within half a scaled pixel: under half an output pixel). The fast integer IDCT:
    augmentation, not parity with classify.py. Other formats are decoded whole, cropped and resized
    with antialiasing. The box is sampled on the picture as stored and turned with it: its area and
    aspect ranges are the same either way up.

    Args:
        encoded: The picture file's or record's bytes, a string tensor.
        orientation: Its EXIF orientation (1-8; anything else: as stored), used when `kinds.any_turned`.
        seed: The stateless random ops' seed for the crop, a shape [2] integer tensor.
        min_crop_area: The smallest crop's share of the picture's area, in (0, 1].
        image_size: The output's height and width in pixels.
        kinds: What the pictures are known to be (PictureKinds); branches for what they cannot be
            are left out, and the crop is the same as with the default.

    Returns:
        A float32 tensor (image_size, image_size, 3) of pixels in [0, 255], not rounded.
    """
    size = (image_size, image_size)

    def jpeg():
        shape = tf.io.extract_jpeg_shape(encoded)
        return _decoded_jpeg_box(encoded, _random_box(shape, seed, min_crop_area), shape, image_size, kinds.dct_ratios(image_size))

    def other():
        image = decode_stored(encoded)
        begin, extent = random_crop_box(tf.shape(image), seed, min_crop_area)
        return tf.image.resize(tf.cast(tf.slice(image, begin, extent), tf.float32), size, antialias=True)

    crop = jpeg() if kinds.only_jpeg else tf.cond(tf.io.is_jpeg(encoded), jpeg, other)
    crop = tf.ensure_shape(crop, (image_size, image_size, 3))
    return upright(crop, orientation) if kinds.any_turned else crop


def decode_crop(encoded, orientation, box, image_size, *, kinds):
    """decode_random_crop of a JPEG whose crop was drawn beforehand (random_crop_boxes, on the size
    its header gave when the folder was opened): the same decoding of the same box.

    Args:
        encoded: The JPEG file's bytes, a string tensor.
        orientation: Its EXIF orientation (1-8; anything else: as stored), used when `kinds.any_turned`.
        box: The crop on the picture as stored: top, left, height, width (int32 [4]).
        image_size: The output's height and width in pixels.
        kinds: What the pictures are known to be (PictureKinds): JPEGs only.

    Returns:
        A float32 tensor (image_size, image_size, 3) of pixels in [0, 255], not rounded.
    """
    if not kinds.only_jpeg:
        raise ValueError(f"decode_crop decodes JPEGs only; these pictures are {kinds}")
    # The header's shape as decoded now, not the size read when the folder was opened: a DCT scaling
    # places the box on the picture as libjpeg scales it (a file replaced since fails, and is skipped).
    crop = _decoded_jpeg_box(encoded, box, tf.io.extract_jpeg_shape(encoded), image_size, kinds.dct_ratios(image_size))
    crop = tf.ensure_shape(crop, (image_size, image_size, 3))
    return upright(crop, orientation) if kinds.any_turned else crop


def _decoded_jpeg_box(encoded, box, shape, image_size, ratios):
    """`box` (top, left, height, width) of the JPEG in `encoded`, of `shape`, decoded at the largest
    of the DCT scalings `ratios` that keeps its shorter side at image_size or more, resized to
    image_size square."""
    size = (image_size, image_size)
    if len(ratios) == 1:
        return _decoded_window(encoded, box, shape, 1, size)
    scale = tf.reduce_sum(tf.cast(tf.minimum(box[2], box[3]) >= image_size * tf.constant(ratios[1:]), tf.int32))
    return tf.switch_case(scale, [lambda ratio=ratio: _decoded_window(encoded, box, shape, ratio, size) for ratio in ratios])


def _decoded_window(encoded, box, shape, ratio, size):
    """`box` (top, left, height, width) of the JPEG in `encoded`, of `shape`, decoded at 1/`ratio`
    of its size and resized to `size`. libjpeg's scaled picture is ceil(side / ratio) pixels; the
    box becomes the whole pixels of it nearest its edges, at least one."""
    if ratio > 1:
        scaled = -(-shape[:2] // ratio)
        start = tf.minimum(tf.cast(tf.round(tf.cast(box[:2], tf.float32) / ratio), tf.int32), scaled - 1)
        end = tf.minimum(tf.cast(tf.round(tf.cast(box[:2] + box[2:], tf.float32) / ratio), tf.int32), scaled)
        box = tf.concat([start, tf.maximum(end - start, 1)], 0)
    # Resized from float32: the same values as from the decoded 8-bit pixels, sooner (measured
    # here on a 375x420 crop: cast and resized 200-245 µs, against 330 µs from 8 bits; the saving
    # is about a tenth of a training picture's time).
    crop = tf.cast(tf.io.decode_and_crop_jpeg(encoded, box, channels=3, ratio=ratio), tf.float32)
    return tf.image.resize(crop, size)


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
