"""Data: the embedded dataset, TFDS (mocked and really offline), image folders, the tf.data pipeline."""

import dataclasses
import io
import os
import re
import shutil
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from keras_resnet.data import pictures, pipeline, sources, synthetic
from keras_resnet.runtime.preprocessing import Preprocessing
from support.assertions import one_line_error
from support.pictures import write_folder
from support.programs import REPOSITORY
from support.requirements import DEBIAN_FASHION_MNIST, require_fashion_mnist


def arrays(dataset, count=None):
    images, labels = [], []
    for image, label in dataset.take(count) if count else dataset:
        images.append(image.numpy())
        labels.append(label.numpy())
    return np.stack(images), np.array(labels)


# -- the embedded dataset -----------------------------------------------------------------------


def test_synthetic_examples_are_a_function_of_seed_and_index():
    first, first_labels = arrays(synthetic.dataset("train", image_size=32, examples=20))
    again, again_labels = arrays(synthetic.dataset("train", image_size=32, examples=20))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first_labels, again_labels)
    other_seed, _ = arrays(synthetic.dataset("train", image_size=32, examples=20, seed=7))
    assert not np.array_equal(first, other_seed)
    assert len({image.tobytes() for image in first}) == 20


@pytest.mark.parametrize("size", [17, 32, 96])
def test_synthetic_images_at_any_size(size):
    images, labels = arrays(synthetic.dataset("validation", image_size=size, examples=8))
    assert images.shape == (8, size, size, 3) and images.dtype == np.uint8
    assert set(labels) <= set(range(10))
    assert images.std() > 20  # not blank: objects, clutter and noise


def test_synthetic_classes_are_balanced_real_words_and_splits_disjoint():
    assert len(synthetic.CLASS_NAMES) == 10 and all(name.isalpha() for name in synthetic.CLASS_NAMES)
    train, train_labels = arrays(synthetic.dataset("train", image_size=16, examples=1000))
    counts = np.bincount(train_labels, minlength=10)
    assert counts.min() > 60 and counts.max() < 140
    validation, _ = arrays(synthetic.dataset("validation", image_size=16, examples=300))
    assert not {image.tobytes() for image in train} & {image.tobytes() for image in validation}


@pytest.mark.integration
def test_a_linear_classifier_does_poorly_on_the_synthetic_task():
    train_images, train_labels = arrays(synthetic.dataset("train", image_size=32, examples=3000))
    test_images, test_labels = arrays(synthetic.dataset("validation", image_size=32, examples=1000))
    mean, std = train_images.mean(), train_images.std()

    def flat(images):
        return ((images - mean) / std).reshape(len(images), -1).astype("float32")

    keras.utils.set_random_seed(0)
    linear = keras.Sequential([keras.Input((32 * 32 * 3,)), keras.layers.Dense(10, activation="softmax")])
    linear.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    linear.fit(flat(train_images), train_labels, epochs=30, batch_size=128, verbose=0)
    train_accuracy = linear.evaluate(flat(train_images), train_labels, verbose=0)[1]
    test_accuracy = linear.evaluate(flat(test_images), test_labels, verbose=0)[1]
    # It can memorize the training set but does not generalize: chance is 10 %.
    assert test_accuracy < 0.3, test_accuracy
    assert train_accuracy > test_accuracy + 0.2


# -- TFDS ---------------------------------------------------------------------------------------


def test_tfds_dataset_through_mock_data():
    with tfds.testing.mock_data(num_examples=24):
        source = sources.open_dataset("cifar10", image_size=32)
        images, labels = arrays(source.train, 5)
    assert len(source.class_names) == 10
    assert source.train_examples == 24 and source.validation_examples == 24
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8 and labels.dtype == np.int64


def test_tfds_download_offline_fails_fast_with_one_clear_message(tmp_path):
    started = time.time()
    with pytest.raises(sources.DatasetError) as error:
        sources.open_dataset("cifar10", image_size=32, data_dir=str(tmp_path))
    message = str(error.value)
    assert "Could not download or prepare TFDS dataset 'cifar10'" in message
    assert "Offline? Use --data-dir with a prepared copy of it, or --dataset synthetic." in message
    assert "\n" not in message
    assert time.time() - started < 60


@pytest.mark.parametrize(
    "name, message",
    [("no_such_dataset", r"Unknown dataset 'no_such_dataset'"), ("imdb_reviews", r"not an image classification dataset")],
)
def test_unknown_or_non_image_tfds_dataset(name, message):
    with pytest.raises(sources.DatasetError, match=message):
        sources.open_dataset(name, image_size=32)


# -- Fashion-MNIST's original files ------------------------------------------------------------


def write_idx(path, array):
    """An IDX file as the dataset's authors publish them (gzipped, big-endian sizes)."""
    import gzip

    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
    with gzip.open(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fashion_mnist_copy(tmp_path, monkeypatch):
    """Fashion-MNIST files where keras.datasets keeps them ($KERAS_HOME/datasets/fashion-mnist):
    random stand-ins, or links to Debian's real files when the package is installed."""
    folder = tmp_path / "keras" / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(sources, "LOCAL_COPIES", {
        "fashion_mnist": dataclasses.replace(sources.LOCAL_COPIES["fashion_mnist"], folders=()),
    })
    return folder


def test_fashion_mnist_reads_its_original_files_offline(fashion_mnist_copy):
    rng = np.random.default_rng(3)
    train_images, test_images = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 256, (12, 28, 28))
    train_labels, test_labels = rng.integers(0, 10, 30), rng.integers(0, 10, 12)
    for name, array in [("train-images-idx3-ubyte.gz", train_images), ("train-labels-idx1-ubyte.gz", train_labels),
                        ("t10k-images-idx3-ubyte.gz", test_images), ("t10k-labels-idx1-ubyte.gz", test_labels)]:
        write_idx(fashion_mnist_copy / name, array)
    source = sources.open_dataset("fashion_mnist", image_size=28, data_dir=str(fashion_mnist_copy / "no-tfds"))
    assert source.class_names[0] == "T-shirt/top" and source.class_names[9] == "Ankle boot"
    assert (source.train_examples, source.validation_examples, source.stored_image_size) == (30, 12, (28, 28))
    images, labels = arrays(source.validation)  # the official test split
    np.testing.assert_array_equal(images, np.repeat(test_images[..., None], 3, axis=-1))
    np.testing.assert_array_equal(labels, test_labels)

    with open(fashion_mnist_copy / "t10k-images-idx3-ubyte.gz", "rb") as file:
        data = file.read()
    (fashion_mnist_copy / "t10k-images-idx3-ubyte.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(sources.DatasetError, match=r"t10k-images-idx3-ubyte.gz .*reinstall it"):
        sources.open_dataset("fashion_mnist", image_size=28, data_dir=str(fashion_mnist_copy / "no-tfds"))


@pytest.mark.integration
def test_debians_fashion_mnist_equals_what_keras_datasets_reads(fashion_mnist_copy):
    """The real 70,000 images, read by us and by keras.datasets (an independent reader) from the same files."""
    require_fashion_mnist()
    for name in os.listdir(DEBIAN_FASHION_MNIST):
        os.symlink(os.path.join(DEBIAN_FASHION_MNIST, name), fashion_mnist_copy / name)
    # Keras read $KERAS_HOME once, at import: point its cache at the same folder.
    import keras.src.backend.config

    keras_home = str(fashion_mnist_copy.parent.parent)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.src.backend.config, "_KERAS_DIR", keras_home)
        (train_images, train_labels), (test_images, test_labels) = keras.datasets.fashion_mnist.load_data()
    assert sorted(os.listdir(fashion_mnist_copy)) == sorted(os.listdir(DEBIAN_FASHION_MNIST))  # nothing downloaded
    source = sources.open_dataset("fashion_mnist", image_size=28, data_dir=str(fashion_mnist_copy / "no-tfds"))
    assert (source.train_examples, source.validation_examples) == (60_000, 10_000)
    images, labels = arrays(source.validation)
    np.testing.assert_array_equal(images[..., 0], test_images)
    np.testing.assert_array_equal(labels, test_labels)
    first = next(iter(source.train.batch(1000)))
    np.testing.assert_array_equal(first[0].numpy()[..., 1], train_images[:1000])
    np.testing.assert_array_equal(first[1].numpy(), train_labels[:1000])


# -- folders ------------------------------------------------------------------------------------


@pytest.mark.integration
def test_an_unreadable_class_folder_is_one_line_naming_it(tmp_path):
    # Before: a traceback from os.scandir. Root reads any folder: here it runs without the two
    # capabilities that let it (as a user would run it).
    root = write_folder(tmp_path / "photos")
    (root / "dogs").chmod(0)
    as_a_user = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]
    result = subprocess.run(
        [*(as_a_user if os.geteuid() == 0 else []), sys.executable, os.path.join(REPOSITORY, "train.py"), "--depth", "8",
         "--dataset", f"folder:{root}", "--epochs", "1", "--output", str(tmp_path / "run")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPOSITORY}, timeout=300,
    )
    line = one_line_error(result)
    assert f"Cannot read folder {str(root / 'dogs')!r} (Permission denied): check that it is readable." in line
    assert not (tmp_path / "run").exists()


def test_folder_dataset_reads_classes_and_holds_out_validation_reproducibly(tmp_path):
    root = write_folder(tmp_path / "photos")
    source = sources.open_dataset(f"folder:{root}", image_size=32, seed=1)
    assert source.class_names == ["cats", "dogs", "owls"]
    assert source.train_examples + source.validation_examples == 36 and source.validation_examples == 3
    pictures = [(image.numpy(), int(label)) for image, label in source.train]
    assert len(pictures) == 33
    # Decoded whole, at their own size (40 × 40 + 8 × the class's index): the training crop and the
    # evaluation transform are taken from the original picture.
    assert all(image.shape == (40, 40 + 8 * label, 3) and image.dtype == np.uint8 for image, label in pictures)
    # Labels line up with the images: each class's marker channel is far brighter (JPEG blurs it a bit).
    for image, label in pictures:
        assert image[..., label].mean() > image[..., (label + 1) % 3].mean() + 60
    again = sources.open_dataset(f"folder:{root}", image_size=32, seed=1)
    for (first, _), (second, _) in zip(again.validation, source.validation):
        np.testing.assert_array_equal(first.numpy(), second.numpy())
    # The validation files, in the split's order, with their labels: what the conversion report reads.
    assert [label for _, label in source.validation_files] == [int(label) for _, label in source.validation]
    assert all(os.path.basename(os.path.dirname(path)) == source.class_names[label] for path, label in source.validation_files)


def test_folder_with_its_own_splits_uses_them_as_they_are(tmp_path):
    root = write_folder(tmp_path / "photos", per_class=8, splits=("train", "val"))
    source = sources.open_dataset(f"folder:{root}", image_size=32)
    assert source.class_names == ["cats", "dogs", "owls"]
    assert (source.train_examples, source.validation_examples) == (24, 12)
    validation_labels = [int(label) for _, label in source.validation]
    assert sorted(validation_labels) == [0] * 4 + [1] * 4 + [2] * 4
    (root / "val").rename(root / "test")  # test/ serves when there is no val/
    assert sources.open_dataset(f"folder:{root}", image_size=32).validation_examples == 12
    (root / "test" / "bats").mkdir()
    with pytest.raises(sources.DatasetError, match=r"has class folder\(s\) that train/ lacks: 'bats'"):
        sources.open_dataset(f"folder:{root}", image_size=32)
    (root / "test" / "bats").rmdir()
    shutil.rmtree(root / "test" / "owls")
    with pytest.raises(sources.DatasetError, match=r"lacks train/'s class folder\(s\) 'owls'. Both splits need the same classes"):
        sources.open_dataset(f"folder:{root}", image_size=32)


def test_grayscale_palette_and_transparent_images_become_rgb(tmp_path):
    for split in ("train", "val"):
        gray, palette, rgba = (tmp_path / "f" / split / name for name in ("gray", "palette", "rgba"))
        for folder in (gray, palette, rgba):
            folder.mkdir(parents=True)
        Image.new("L", (32, 32), 77).save(gray / "g.png")
        Image.new("L", (32, 32), 77).save(gray / "g.jpg")
        indexed = Image.new("P", (32, 32), 1)
        indexed.putpalette([0, 0, 0, 10, 120, 230] + [0] * 762)  # colour 1 = (10, 120, 230)
        indexed.save(palette / "p.png")
        indexed.save(palette / "p.gif")
        Image.new("RGBA", (32, 32), (250, 20, 30, 90)).save(rgba / "a.png")
    source = sources.open_dataset(f"folder:{tmp_path / 'f'}", image_size=28)
    for split in (source.train, source.validation):
        images, labels = arrays(split)
        assert images.shape[1:] == (32, 32, 3) and sorted(labels.tolist()) == [0, 0, 1, 1, 2]
        # Transparency laid over white, as classify.py and the page lay it: 90/255 of the colour.
        over_white = [round((value * 90 + 255 * 165) / 255) for value in (250, 20, 30)]
        expected = {0: [77, 77, 77], 1: [10, 120, 230], 2: over_white}
        for image, label in zip(images, labels):
            np.testing.assert_allclose(image[16, 16], expected[int(label)], atol=2)  # JPEG may be off by one


def test_folder_errors(tmp_path):
    with pytest.raises(sources.DatasetError, match=r"No such folder: .*missing"):
        sources.open_dataset(f"folder:{tmp_path / 'missing'}", image_size=32)
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(sources.DatasetError, match=r"has 1 class subfolder\(s\)"):
        sources.open_dataset(f"folder:{tmp_path / 'one'}", image_size=32)
    for name in ("a", "b"):
        (tmp_path / "text" / name).mkdir(parents=True)
        (tmp_path / "text" / name / "notes.txt").write_text("not an image")
    with pytest.raises(sources.DatasetError, match=r"holds no images"):
        sources.open_dataset(f"folder:{tmp_path / 'text'}", image_size=32)
    few = write_folder(tmp_path / "few", per_class=2)
    for extra in list(few.rglob("*.png")) + list(few.rglob("1.jpg")):
        extra.unlink()
    with pytest.raises(sources.DatasetError) as raised:  # 10 % of 3 pictures is none
        sources.open_dataset(f"folder:{few}", image_size=32)
    assert str(raised.value) == f"Folder {str(few)!r} has too few images to carve a validation split off (3 found)."
    broken = write_folder(tmp_path / "broken", per_class=10)
    for image in list((broken / "owls").iterdir()) + list((broken / "cats").iterdir()):
        image.write_bytes(image.read_bytes()[:40])  # truncated files
    with pytest.raises(sources.DatasetError, match=r"is not a readable image \(\d+ such file\(s\) in the validation split\)"):
        sources.open_dataset(f"folder:{broken}", image_size=32)


def test_a_validation_png_whose_checksum_is_wrong_is_not_readable_though_it_opens_and_decodes(tmp_path):
    # Pillow checks a PNG's chunk checksums in verify() alone: the validation split still runs it.
    root = write_folder(tmp_path / "pictures", splits=("train", "val"), per_class=4)
    png = next((root / "val" / "dogs").glob("*.png"))
    data = bytearray(png.read_bytes())
    idat = data.index(b"IDAT")
    length = int.from_bytes(data[idat - 4 : idat], "big")
    data[idat + 4 + length] ^= 0xFF  # the first byte of IDAT's checksum; its data intact
    png.write_bytes(bytes(data))
    with Image.open(png) as image:
        image.load()  # opens and decodes
    with pytest.raises(sources.DatasetError, match=rf"{re.escape(str(png))} is not a readable image \(1 such file\(s\) in the validation split\)"):
        sources.open_dataset(f"folder:{root}", image_size=32)


def test_training_pictures_that_will_not_open_or_decode_are_left_out_and_named_in_the_first_pass(tmp_path, capfd):
    root = write_folder(tmp_path / "pictures", splits=("train", "val"), per_class=6)
    (root / "train" / "cats" / "garbage.png").write_bytes(b"not a picture")  # Pillow cannot open it
    whole = (root / "train" / "owls" / "0.jpg").read_bytes()
    # Its header is whole (Pillow opens it), its data cut short: only decoding finds it. Named "zz" to
    # be last in the list, where no later picture shows the gap it leaves.
    (root / "train" / "owls" / "zz.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "train" / "dogs" / "half.jpg").write_bytes(whole[: len(whole) // 2])
    source = sources.open_dataset(f"folder:{root}", image_size=32)
    assert source.train_examples == 20 and [os.path.basename(path) for path in source.unreadable_train_files] == ["garbage.png"]
    expected = [
        f"warning: training picture {root / 'train' / name} cannot be decoded (damaged, or not an image): skipped."
        for name in ("dogs/half.jpg", "owls/zz.jpg")
    ]
    labels = [int(label) for _, label in source.train]
    assert len(labels) == 18 and set(labels) == {0, 1, 2}
    assert sorted(line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:")) == expected
    # Read by file, two passes: named in the first only.
    pipeline.CACHE_LIMIT_BYTES, limit = 0, pipeline.CACHE_LIMIT_BYTES
    try:
        batches = pipeline.training_dataset(source, image_size=16, augmentation="imagenet", batch_size=6, seed=0)
        assert sum(int(labels.shape[0]) for _, labels in batches.take(6)) == 36  # two passes of 18
    finally:
        pipeline.CACHE_LIMIT_BYTES = limit
    assert sorted(line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:")) == expected


def test_a_file_name_that_is_not_utf8_is_named_in_one_line(tmp_path):
    root = write_folder(tmp_path / "pictures")
    name = os.fsencode(str(root / "owls")) + b"/caf\xe9.png"
    shutil.copy(root / "owls" / "1.png", name)
    with pytest.raises(sources.DatasetError) as raised:
        sources.open_dataset(f"folder:{root}", image_size=32)
    assert str(raised.value) == f"{root / 'owls'}/caf\\xe9.png has a file name that is not UTF-8, which TensorFlow cannot read: rename it."


# -- pipeline -----------------------------------------------------------------------------------


def test_the_random_resized_crop_reaches_every_part_of_a_non_square_picture():
    height, width = 60, 200  # a centred square would never show the 70 columns either side
    sample = tf.autograph.experimental.do_not_convert(
        lambda index: pictures.random_crop_box(tf.constant([height, width, 3]), tf.stack([tf.constant(7, tf.int64), index]), 0.08)
    )
    covered = np.zeros((height, width), int)
    areas, aspects = [], []
    for begin, size in tf.data.Dataset.range(4000).map(sample).as_numpy_iterator():
        (top, left), (rows, columns) = begin[:2], size[:2]
        covered[top : top + rows, left : left + columns] += 1
        areas.append(rows * columns / (height * width))
        aspects.append(columns / rows)
    # Every pixel, the corners included (tf.image.sample_distorted_bounding_box never reaches the
    # last column of this picture).
    assert covered.min() > 0
    assert 0.07 < min(areas) < 0.1 and max(areas) > 0.39  # 8 % up to the largest crop of aspect 4/3 that fits
    assert min(aspects) > 0.73 and max(aspects) < 1.36  # 3/4-4/3, within a pixel's rounding


def smooth_jpeg(height, width, *, subsampling=2, seed=0, detail=16):
    """A JPEG of smooth colours (as photographs are, at the scale of a few pixels): random colours
    every `detail` pixels, interpolated."""
    coarse = np.random.default_rng(seed).integers(0, 256, (height // detail + 2, width // detail + 2, 3), dtype=np.uint8)
    pixels = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95, subsampling=subsampling)
    return tf.constant(buffer.getvalue())


@pytest.mark.parametrize("subsampling", [0, 2])
def test_a_crop_decoded_from_jpeg_bytes_is_that_box_of_the_whole_picture(subsampling):
    encoded = smooth_jpeg(60, 200, subsampling=subsampling)
    whole = tf.cast(pictures.decode_picture(encoded), tf.float32)
    for index in range(20):
        seed = tf.constant([3, index], tf.int64)
        (top, left, _), (rows, columns, _) = (value.numpy() for value in pictures.random_crop_box(tf.shape(whole), seed, 0.08))
        crop = pictures.decode_random_crop(encoded, 1, seed, 0.08, 64).numpy()
        # Resized from float32: exactly what TensorFlow's resize makes of the decoded 8-bit window.
        window = tf.io.decode_and_crop_jpeg(encoded, [top, left, rows, columns], channels=3)
        np.testing.assert_array_equal(crop, tf.image.resize(window, (64, 64)).numpy())
        box = tf.image.resize(whole[top : top + rows, left : left + columns], (64, 64)).numpy()
        # The fast IDCT, and 4:2:0 chroma upsampled from the blocks decoded: a few levels apart at most.
        assert np.abs(crop - box).max() <= 16 and np.abs(crop - box).mean() < 2.0  # a box 4 pixels off: 17 on average


def test_a_large_crop_is_decoded_at_a_fraction_of_its_size_and_still_matches_an_antialiased_resize():
    # A 12-megapixel photograph's crops shrink 10x and more to 64 px: details finer than that blur away
    # (DCT scaling averages them) rather than alias. Decoded at 1/ratio of its size, the box's edges
    # move to the nearest pixel of the scaled picture: by ratio / 2 pixels at most.
    encoded = smooth_jpeg(900, 1200, detail=48)
    whole = tf.cast(pictures.decode_picture(encoded), tf.float32)
    ratios_seen = set()
    for index in range(10):
        seed = tf.constant([5, index], tf.int64)
        (top, left, _), (rows, columns, _) = (value.numpy() for value in pictures.random_crop_box(tf.shape(whole), seed, 0.08))
        ratio = max(ratio for ratio in (1, 2, 4, 8) if min(rows, columns) >= ratio * 64)
        assert ratio >= 2  # decoded at 1/2 to 1/8 of its size
        ratios_seen.add(ratio)
        edges = np.array([top, left, top + rows, left + columns])
        snapped = np.round(edges / ratio).astype(int) * ratio
        assert np.abs(snapped - edges).max() <= ratio / 2
        crop = pictures.decode_random_crop(encoded, 1, seed, 0.08, 64).numpy()
        box = tf.image.resize(whole[snapped[0] : snapped[2], snapped[1] : snapped[3]], (64, 64), antialias=True).numpy()
        assert np.abs(crop - box).mean() < 2.0
    assert ratios_seen == {4, 8}


def test_what_a_folder_is_known_to_hold_leaves_out_decoding_branches_without_changing_a_crop():
    # Decoding built for JPEGs only, none turned, up to a known size, gives the crops of the
    # decoding built for anything.
    encoded = smooth_jpeg(300, 520, detail=24)
    known = pictures.PictureKinds(only_jpeg=True, any_turned=False, largest_shorter_side=300)
    assert known.dct_ratios(64) == (1, 2, 4) and known.dct_ratios(160) == (1,) and pictures.PictureKinds().dct_ratios(64) == (1, 2, 4, 8)
    for index in range(12):
        seed = tf.constant([9, index], tf.int64)
        general = pictures.decode_random_crop(encoded, 1, seed, 0.08, 64).numpy()
        assert np.array_equal(pictures.decode_random_crop(encoded, 1, seed, 0.08, 64, kinds=known).numpy(), general)


def id_pictures(root, count=30, classes=3):
    """Training pictures each one solid grey of its own value (8 × its number), in class folders."""
    for number in range(count):
        folder = root / "train" / f"class{number % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((24, 32 + number % 5, 3), 8 * number, np.uint8)).save(folder / f"{number}.jpg", quality=100)
    for name in range(classes):
        (root / "val" / f"class{name}").mkdir(parents=True)
        Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(root / "val" / f"class{name}" / "0.png")
    return root


@pytest.mark.parametrize("from_bytes", [False, True], ids=["decoded-and-cached", "crops-from-bytes"])
def test_each_input_pipeline_decodes_only_its_share_of_the_files(tmp_path, monkeypatch, from_bytes):
    if from_bytes:
        monkeypatch.setattr(pipeline, "CACHE_LIMIT_BYTES", 0)  # as for a folder too large to keep
    source = sources.open_dataset(f"folder:{id_pictures(tmp_path / 'ids')}", image_size=16)
    assert pipeline.reads_encoded(source, "imagenet") is from_bytes
    # Their headers say: JPEGs only, none turned, 24 pixels on the shorter side (decoding is built for that).
    assert source.train_files.kinds == pictures.PictureKinds(only_jpeg=True, any_turned=False, largest_shorter_side=24)
    shares = []
    for pipeline_id in (0, 1):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2)
        batches = pipeline.training_dataset(source, image_size=16, augmentation="imagenet", batch_size=10, seed=0, input_context=context)
        images = np.concatenate([images.numpy() for images, _ in batches.take(3)])  # 3 batches of 5: one pass over 15 files
        shares.append({int(round(value / 8)) for value in images[:, 8, 8, 0]})
    assert len(shares[0]) == len(shares[1]) == 15 and not shares[0] & shares[1] and shares[0] | shares[1] == set(range(30))
    assert "split by file over 2 workers" in pipeline.describe_training_input(source, "imagenet", workers=2)


def test_crops_drawn_for_an_epoch_fit_each_pipelines_own_files_of_many_sizes(tmp_path, monkeypatch, capfd):
    # Boxes drawn on the wrong picture's size would fall outside a smaller one, whose decoding then
    # fails and is skipped: every file of each share must come back, and no warning.
    monkeypatch.setattr(pipeline, "CACHE_LIMIT_BYTES", 0)
    for number in range(30):
        folder = tmp_path / "train" / f"class{number % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        size = (16 + 40 * (number % 4), 16 + 53 * (number % 5))  # 16 to 136 high, 16 to 228 wide
        Image.fromarray(np.full((*size, 3), 8 * number, np.uint8)).save(folder / f"{number}.jpg", quality=100)
    for name in range(3):
        (tmp_path / "val" / f"class{name}").mkdir(parents=True)
        Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(tmp_path / "val" / f"class{name}" / "0.jpg")
    source = sources.open_dataset(f"folder:{tmp_path}", image_size=16)
    assert len(set(source.train_files.sizes)) == 20 and source.train_files.kinds.only_jpeg
    shares = []
    for pipeline_id in (0, 1):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2)
        batches = pipeline.training_dataset(source, image_size=16, augmentation="imagenet", batch_size=10, seed=1, input_context=context)
        images = np.concatenate([images.numpy() for images, _ in batches.take(6)])  # 6 batches of 5: two passes over 15 files
        for one_pass in (images[:15], images[15:]):
            shares.append(sorted(int(round(value / 8)) for value in one_pass[:, 8, 8, 0]))
    assert shares[0] == shares[1] and shares[2] == shares[3] and sorted(shares[0] + shares[2]) == list(range(30))
    assert "warning" not in capfd.readouterr().err


@pytest.mark.parametrize("from_bytes", [False, True], ids=["decoded-and-cached", "crops-from-bytes"])
def test_a_folder_whose_training_pictures_all_fail_to_decode_stops_instead_of_looping(tmp_path, monkeypatch, from_bytes):
    if from_bytes:
        monkeypatch.setattr(pipeline, "CACHE_LIMIT_BYTES", 0)
    root = write_folder(tmp_path / "pictures", per_class=4, splits=("train", "val"))
    for path in (root / "train").rglob("*.png"):
        path.unlink()
    for path in (root / "train").rglob("*.jpg"):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # the header opens in Pillow; the data is cut short
    source = sources.open_dataset(f"folder:{root}", image_size=16)
    batches = pipeline.training_dataset(source, image_size=16, augmentation="imagenet", batch_size=2, seed=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=pictures.NOTHING_DECODED):
        next(iter(batches))


@pytest.mark.parametrize(
    "rows_per_segment, optimized", [(4096, True), (12, True), (12, False)],
    ids=["one-segment", "segments-of-three-batches", "without-tf.data's-rewrites"],
)
def test_a_batch_with_a_picture_that_will_not_decode_is_redone_without_it_and_stays_whole(tmp_path, monkeypatch, capfd, rows_per_segment, optimized):
    # Read by file, each batch is decoded at once (pictures.decoded_batches): a damaged picture fails
    # its batch, whose other pictures are decoded again and kept, in their place; the batch is
    # filled up to its size with repeats. Against the same folder undamaged, seed and crops alike.
    monkeypatch.setattr(pipeline, "CACHE_LIMIT_BYTES", 0)
    monkeypatch.setattr(pictures, "ROWS_PER_SEGMENT", rows_per_segment)
    intact = id_pictures(tmp_path / "intact", count=30)
    root = shutil.copytree(intact, tmp_path / "damaged")
    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 36, 3), dtype=np.uint8)).save(noise, format="JPEG", quality=95)
    damaged = [root / "train" / "class1" / "7.jpg", root / "train" / "class2" / "20.jpg"]
    for path in damaged:
        path.write_bytes(noise.getvalue()[: len(noise.getvalue()) // 2])  # the header opens in Pillow; the data is cut short

    def batches(folder):
        source = sources.open_dataset(f"folder:{folder}", image_size=16)
        assert source.train_examples == 30 and pipeline.reads_encoded(source, "imagenet")
        batches = pipeline.training_dataset(source, image_size=16, augmentation="imagenet", batch_size=4, seed=3)
        if not optimized:  # tf.data's rewrites (fusing a map and a batch among them) off: the same batches
            options = tf.data.Options()
            options.experimental_optimization.apply_default_optimizations = False
            batches = batches.with_options(options)
        return list(batches.take(30))  # 4 passes

    expected, got = batches(intact), batches(root)
    ids = [np.round(images[:, 8, 8, 0].numpy() / 8).astype(int) for images, _ in got]
    intact_ids = [np.round(images[:, 8, 8, 0].numpy() / 8).astype(int) for images, _ in expected]
    for (images, labels), batch_ids in zip(got, ids):
        assert images.shape == (4, 16, 16, 3) and labels.shape == (4, 3)
        assert (np.argmax(labels.numpy(), axis=1) == batch_ids % 3).all()  # each picture with its own label
    failed = [bool({7, 20} & set(batch_ids)) for batch_ids in intact_ids]
    redone, start = 0, 0
    while start < len(got):
        end = start + 1
        if failed[start]:  # a run of failed batches: their other pictures in as many batches, filled up with repeats
            while end < len(got) and failed[end]:
                end += 1
            assert set(np.concatenate(ids[start:end])) == set(np.concatenate(intact_ids[start:end])) - {7, 20}
            redone += 1
        else:  # the same crops, in the same order
            np.testing.assert_array_equal(got[start][0].numpy(), expected[start][0].numpy())
        start = end
    assert redone >= 3  # each pass has both damaged pictures, the first three whole
    warnings = sorted(line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:"))
    assert warnings == [f"warning: training picture {path} cannot be decoded (damaged, or not an image): skipped." for path in damaged]


def test_batches_of_one_go_on_past_pictures_that_will_not_decode(tmp_path, monkeypatch, capfd):
    # A batch of one that fails is a whole batch that failed: training goes on to the next picture
    # that decodes (NOTHING_DECODED only for a segment of which none does).
    monkeypatch.setattr(pipeline, "CACHE_LIMIT_BYTES", 0)
    root = id_pictures(tmp_path / "ids", count=12)
    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 36, 3), dtype=np.uint8)).save(noise, format="JPEG", quality=95)
    kept = {3, 8}
    for path in (root / "train").rglob("*.jpg"):
        if int(path.stem) not in kept:
            path.write_bytes(noise.getvalue()[: len(noise.getvalue()) // 2])  # the header opens in Pillow; the data is cut short
    source = sources.open_dataset(f"folder:{root}", image_size=16)
    batches = pipeline.training_dataset(source, image_size=16, augmentation="imagenet", batch_size=1, seed=0)
    ids = [int(round(float(images[0, 8, 8, 0]) / 8)) for images, _ in batches.take(6)]
    assert sorted(ids) == [3, 3, 3, 8, 8, 8]  # three passes of the two that decode
    assert sum(line.startswith("warning: training picture") for line in capfd.readouterr().err.splitlines()) == 10


def test_crops_drawn_for_a_whole_epoch_are_each_pictures_own_and_decode_the_same():
    # Drawn at once for many pictures (an epoch's), from the same random numbers, the boxes are
    # those drawn one picture at a time, the fallback of pictures too narrow for any try included.
    shapes = [(60, 200), (300, 520), (1000, 90), (90, 1000), (7, 7), (375, 500)]
    seeds = [tf.constant([11, index], tf.int64) for index in range(len(shapes))]
    uniform = tf.stack([tf.random.stateless_uniform(pictures.CROP_RANDOM_NUMBERS, seed=seed) for seed in seeds])
    together = pictures.random_crop_boxes(tf.constant(shapes), uniform, 0.08).numpy()
    for (height, width), seed, box in zip(shapes, seeds, together):
        begin, size = (value.numpy() for value in pictures.random_crop_box(tf.constant([height, width, 3]), seed, 0.08))
        assert box.tolist() == [begin[0], begin[1], size[0], size[1]]
    # A JPEG's box drawn beforehand decodes as the box drawn while it is read: at its DCT scaling, and
    # turned upright by its EXIF orientation.
    encoded = smooth_jpeg(300, 520, detail=24)
    known = pictures.PictureKinds(only_jpeg=True, any_turned=True, largest_shorter_side=300)
    for index in range(8):
        seed = tf.constant([9, index], tf.int64)
        begin, size = pictures.random_crop_box(tf.constant([300, 520, 3]), seed, 0.08)
        box = tf.stack([begin[0], begin[1], size[0], size[1]])
        orientation = (1, 6)[index % 2]
        np.testing.assert_array_equal(
            pictures.decode_crop(encoded, orientation, box, 64, kinds=known).numpy(),
            pictures.decode_random_crop(encoded, orientation, seed, 0.08, 64, kinds=known).numpy(),
        )


def test_a_jpeg_folder_read_by_file_draws_each_epochs_crops_and_flips_from_the_seed(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "CACHE_LIMIT_BYTES", 0)  # read by file, as a folder too large to keep
    ramp = np.tile(np.linspace(0, 255, 96)[np.newaxis, :, np.newaxis], (40, 1, 3)).astype(np.uint8)  # dark left, bright right
    for split, count in (("train", 12), ("val", 2)):
        for number in range(count):
            folder = tmp_path / split / f"class{number % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(ramp).save(folder / f"{number}.jpg", quality=95)
    source = sources.open_dataset(f"folder:{tmp_path}", image_size=16)
    assert source.train_files.sizes == [(40, 96)] * 12 and source.train_files.kinds.only_jpeg  # an epoch's crops drawn at once
    make = lambda seed: pipeline.training_dataset(source, image_size=16, augmentation="imagenet", batch_size=12, seed=seed)  # noqa: E731
    epochs = np.stack([images.numpy() for images, _ in make(5).take(4)])  # a batch of 12: one epoch each
    np.testing.assert_array_equal(next(iter(make(5)))[0].numpy(), epochs[0])  # the same seed, the same crops
    assert not np.array_equal(next(iter(make(6)))[0].numpy(), epochs[0])
    assert not np.array_equal(epochs[0], epochs[1])  # each epoch draws anew
    left, right = epochs[..., :, 0, 0].mean(axis=-1), epochs[..., :, -1, 0].mean(axis=-1)
    assert 0.25 < np.mean(left > right) < 0.75  # about half flipped
    spans = np.abs(right - left)  # a crop of more of the ramp's width spans more of its values
    assert spans.min() < 0.5 * spans.max()


def test_train_examples_limits_what_the_pipeline_reads_from_a_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "CACHE_LIMIT_BYTES", 0)  # the pipeline reads the files themselves
    source = sources.open_dataset(f"folder:{id_pictures(tmp_path / 'ids')}", image_size=16, train_examples=10)
    assert source.train_examples == 10 and len(source.train_files) == 10
    batches = pipeline.training_dataset(source, image_size=16, augmentation="imagenet", batch_size=10, seed=0)
    images = np.concatenate([images.numpy() for images, _ in batches.take(3)])
    kept = {int(round(value / 8)) for value, in zip(images[:, 8, 8, 0])}
    assert len(kept) == 10 and kept == {int(os.path.splitext(os.path.basename(path))[0]) for path in source.train_files.paths}




def synthetic_source(size=32, examples=64):
    return sources.open_dataset("synthetic", image_size=size, train_examples=examples, validation_examples=examples)


@pytest.mark.parametrize("augmentation, size", [("cifar", 32), ("imagenet", 48)])
def test_training_batches_are_augmented_one_hot_and_seeded(augmentation, size):
    source = synthetic_source(size)
    make = lambda seed: pipeline.training_dataset(  # noqa: E731
        source, image_size=size, augmentation=augmentation, batch_size=16, seed=seed
    )
    images, labels = next(iter(make(3)))
    assert images.shape == (16, size, size, 3) and images.dtype == tf.float32
    assert labels.shape == (16, 10) and np.all(labels.numpy().sum(axis=1) == 1)
    assert 0 <= images.numpy().min() and images.numpy().max() <= 255
    again, _ = next(iter(make(3)))
    np.testing.assert_array_equal(images.numpy(), again.numpy())
    other, _ = next(iter(make(4)))
    assert not np.array_equal(images.numpy(), other.numpy())


def test_cifar_augmentation_pads_crops_and_flips():
    source = synthetic_source(32, examples=8)
    original = {image.tobytes(): image for image, _ in zip(*arrays(source.train))}
    batch, _ = next(iter(pipeline.training_dataset(source, image_size=32, augmentation="cifar", batch_size=8, seed=0, shuffle_buffer=1)))
    # Each augmented image is its original shifted by at most 4 pixels, maybe mirrored, zeros in the gap.
    shifted = 0
    for image, source_image in zip(batch.numpy(), original.values()):
        candidates = [source_image, source_image[:, ::-1]]
        padded = [np.pad(c.astype(np.float32), ((4, 4), (4, 4), (0, 0))) for c in candidates]
        found = any(
            np.array_equal(p[dy : dy + 32, dx : dx + 32], image) for p in padded for dy in range(9) for dx in range(9)
        )
        assert found
        shifted += not any(np.array_equal(c.astype(np.float32), image) for c in candidates)
    assert shifted > 0


def test_evaluation_batches_are_centre_crops_without_randomness():
    source = synthetic_source(64, examples=10)
    batches = pipeline.evaluation_dataset(source, image_size=64, preprocessing=Preprocessing(0.875), batch_size=4)
    first = np.concatenate([images.numpy() for images, _ in batches])
    second = np.concatenate([images.numpy() for images, _ in batches])
    assert first.shape == (10, 64, 64, 3)
    np.testing.assert_array_equal(first, second)


def test_training_and_evaluation_input_run_without_the_autotuning_model_that_holds_up_an_iterators_release():
    # pipeline.with_input_options says why: its thread went on sleeping after an iterator was
    # released, by up to its optimisation period (seconds, measured), at every epoch's new validation
    # iterator. The service's client keeps them too (test_data_service.py).
    source = synthetic_source(32, examples=8)
    training = pipeline.training_dataset(source, image_size=32, augmentation="imagenet", batch_size=4, seed=0)
    evaluation = pipeline.evaluation_dataset(source, image_size=32, preprocessing=Preprocessing(0.875), batch_size=4)
    for dataset in (training, evaluation):
        options = dataset.options()
        assert options.autotune.enabled is False
        # AUTOTUNE maps then run min(initial_parallelism, cores) calls at once: all the cores.
        assert options.autotune.initial_parallelism >= 1024
        assert next(iter(dataset))[0].shape == (4, 32, 32, 3)


def test_pictures_stored_sideways_are_turned_upright_as_classify_py_turns_them(tmp_path):
    """A phone's photo stored sideways with an EXIF orientation: training and evaluation see it the
    way up classify.py (ImageOps.exif_transpose) and browsers show it."""
    from PIL import ImageOps

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("a", "b"):
            folder = tmp_path / "f" / split / name
            folder.mkdir(parents=True)
            for orientation in range(1, 9):  # as stored, mirrored, turned and transposed
                exif = Image.Exif()
                exif[0x0112] = orientation
                Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(folder / f"{orientation}.png", exif=exif.tobytes())
    source = sources.open_dataset(f"folder:{tmp_path / 'f'}", image_size=16)
    for (path, _), (image, _) in zip(source.validation_files, source.validation):
        with Image.open(path) as stored:
            upright = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"))
        np.testing.assert_array_equal(image.numpy(), upright)  # PNG: lossless, so exactly
    assert sorted(tuple(image.shape[:2]) for image, _ in source.train) == sorted([(24, 40)] * 8 + [(40, 24)] * 8)
    # Crops from the bytes are turned too: decoding is built with the turn. With all of the area
    # asked for, the crop is the centred one of aspect 4/3, the same either way up.
    kinds = source.train_files.kinds
    assert kinds == pictures.PictureKinds(only_jpeg=False, any_turned=True, largest_shorter_side=24)
    for path, orientation in zip(source.train_files.paths, source.train_files.orientations):
        with Image.open(path) as stored:
            upright = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"), np.float32)
        rows, columns = (24, 32) if upright.shape[0] == 24 else (32, 24)
        top, left = (upright.shape[0] - rows) // 2, (upright.shape[1] - columns) // 2
        expected = tf.image.resize(upright[top : top + rows, left : left + columns], (16, 16), antialias=True).numpy()
        encoded = tf.io.read_file(path)
        crop = pictures.decode_random_crop(encoded, orientation, tf.constant([0, 0], tf.int64), 1.0, 16, kinds=kinds).numpy()
        np.testing.assert_allclose(crop, expected, atol=1e-3)
