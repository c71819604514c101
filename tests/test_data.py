"""Data: the embedded dataset, TFDS (mocked and really offline), image folders, the tf.data pipeline."""

import time

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from keras_resnet.data import pipeline, sources, synthetic


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


@pytest.mark.slow
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


# -- folders ------------------------------------------------------------------------------------


def write_folder(root, classes=("cats", "dogs", "owls"), per_class=12, size=40, rng=None):
    rng = rng or np.random.default_rng(0)
    for index, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for number in range(per_class):
            pixels = rng.integers(0, 255, (size, size + 8 * index, 3), dtype=np.uint8)
            pixels[..., index % 3] = 255  # the class shows in one colour channel
            extension = ".png" if number % 2 else ".jpg"
            Image.fromarray(pixels).save(folder / f"{number}{extension}")
    return root


def test_folder_dataset_reads_classes_and_holds_out_validation_reproducibly(tmp_path):
    root = write_folder(tmp_path / "photos")
    source = sources.open_dataset(f"folder:{root}", image_size=32, seed=1)
    assert source.class_names == ["cats", "dogs", "owls"]
    assert source.train_examples + source.validation_examples == 36 and source.validation_examples == 3
    images, labels = arrays(source.train)
    assert images.shape == (33, 37, 37, 3) and images.dtype == np.uint8  # loaded at 32 / 0.875
    # Labels line up with the images: each class's marker channel is far brighter (JPEG blurs it a bit).
    for label in range(3):
        own = images[labels == label][..., label].mean(axis=(1, 2))
        other = images[labels == label][..., (label + 1) % 3].mean(axis=(1, 2))
        assert np.all(own > other + 60)
    again = sources.open_dataset(f"folder:{root}", image_size=32, seed=1)
    np.testing.assert_array_equal(arrays(again.validation)[0], arrays(source.validation)[0])


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
    broken = write_folder(tmp_path / "broken", per_class=10)
    for image in list((broken / "owls").iterdir()) + list((broken / "cats").iterdir()):
        image.write_bytes(image.read_bytes()[:40])  # truncated files
    with pytest.raises(sources.DatasetError, match=r"is not a readable image \(\d+ such file\(s\) in the validation split\)"):
        sources.open_dataset(f"folder:{broken}", image_size=32)


# -- pipeline -----------------------------------------------------------------------------------


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
    batches = pipeline.evaluation_dataset(source, image_size=64, augmentation="imagenet", batch_size=4)
    first = np.concatenate([images.numpy() for images, _ in batches])
    second = np.concatenate([images.numpy() for images, _ in batches])
    assert first.shape == (10, 64, 64, 3)
    np.testing.assert_array_equal(first, second)
