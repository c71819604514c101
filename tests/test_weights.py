"""Weights: keras.applications' files reproduce keras.applications' outputs; our own files round-trip;
files that do not fit, are missing, corrupt or cannot be downloaded fail with one clear message."""

import hashlib
import os

import numpy as np
import pytest
import tf_keras

import keras_resnet
from keras_resnet.weights import keras_applications

SIZE = 224  # the size keras.applications' weights were trained at


def randomized(reference, seed=0):
    """Random batch-norm statistics too: with the initial ones (mean 0, variance 1) the outputs of
    an untrained deep net saturate and comparisons say little."""
    rng = np.random.default_rng(seed)
    for layer in reference.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, channels),
                    rng.normal(0.0, 0.1, channels),
                    rng.normal(0.0, 0.1, channels),
                    rng.uniform(0.5, 2.0, channels),
                ]
            )
    return reference


@pytest.fixture(scope="module")
def applications_files(tmp_path_factory):
    """keras.applications-layout weight files (the official files' legacy h5 layout), made here
    because the official ones cannot be downloaded on this machine; with their reference models."""
    folder = tmp_path_factory.mktemp("applications")
    files = {}
    for name, make, mode in (
        ("resnet50", tf_keras.applications.ResNet50, "caffe"),
        ("resnet50v2", tf_keras.applications.ResNet50V2, "tf"),
    ):
        for include_top in (True, False):
            reference = randomized(make(weights=None, include_top=include_top, pooling=None if include_top else "avg"))
            path = folder / f"{name}{'' if include_top else '_notop'}.h5"
            reference.save_weights(str(path))
            files[name, include_top] = (path, reference, mode)
    return files


def varied_images(rng, count, size=SIZE):
    """Coarse random colour patterns plus noise: unlike pure noise, images an untrained network
    tells apart."""
    coarse = rng.uniform(0, 255, (count, 4, 4, 3))
    patterns = np.kron(coarse, np.ones((1, size // 4, size // 4, 1)))
    return np.clip(0.8 * patterns + rng.uniform(0, 0.2 * 255, patterns.shape), 0, 255).astype("float32")


def reference_outputs(reference, mode, images):
    preprocess = tf_keras.applications.imagenet_utils.preprocess_input
    return reference(preprocess(images.copy(), mode=mode), training=False).numpy()


@pytest.mark.integration
@pytest.mark.parametrize("name", ["resnet50", "resnet50v2"])
def test_keras_applications_weights_reproduce_keras_applications_outputs(name, applications_files, rng):
    path, reference, mode = applications_files[name, True]
    images = varied_images(rng, 3)
    expected = reference_outputs(reference, mode, images)
    ours = keras_resnet.build(name, weights=path)
    np.testing.assert_allclose(ours.predict(images, verbose=0), expected, atol=1e-4)
    # The same logits too: the softmax of an untrained net is nearly uniform and hides differences.
    reference.get_layer("predictions").activation = tf_keras.activations.linear
    try:
        expected_logits = reference_outputs(reference, mode, images)
    finally:
        reference.get_layer("predictions").activation = tf_keras.activations.softmax
    # ... and they differ between images by far more than the tolerance.
    assert expected_logits.std(axis=1).min() > 0.1
    assert np.abs(expected_logits[0] - expected_logits[1]).max() > 100 * 1e-4 * max(1.0, np.abs(expected_logits).max())
    logits = keras_resnet.build(name, weights=path, classifier_activation=None).predict(images, verbose=0)
    np.testing.assert_allclose(logits, expected_logits, atol=1e-4 * max(1.0, np.abs(expected_logits).max()))


@pytest.mark.parametrize("name", ["resnet50", "resnet50v2"])
def test_keras_applications_notop_weights_give_the_same_features(name, applications_files, rng):
    path, reference, mode = applications_files[name, False]
    images = varied_images(rng, 2)
    ours = keras_resnet.build(name, weights=path, include_top=False, pooling="avg")
    expected = reference_outputs(reference, mode, images)
    np.testing.assert_allclose(ours.predict(images, verbose=0), expected, atol=1e-4 * max(1.0, np.abs(expected).max()))


def test_without_preprocessing_the_model_takes_normalized_rgb(applications_files, rng):
    path, reference, mode = applications_files["resnet50", True]
    images = varied_images(rng, 2)
    ours = keras_resnet.build("resnet50", weights=path, include_preprocessing=False)
    normalized = keras_resnet.normalize(images, "caffe")
    np.testing.assert_allclose(ours.predict(normalized, verbose=0), reference_outputs(reference, mode, images), atol=1e-4)


def test_keras_applications_file_needs_its_layout(applications_files):
    path = applications_files["resnet50v2", True][0]
    with pytest.raises(ValueError, match=r"need version='v2' \(the layout they were trained in\). Received: version='v1.5'"):
        keras_resnet.build("resnet50", weights=path, version="v1.5")
    with pytest.raises(ValueError, match=r"need plain=False"):
        keras_resnet.ResNet(50, weights=path, plain=True)


def test_file_for_another_depth_names_the_first_layer_that_does_not_match(applications_files):
    path = applications_files["resnet50", True][0]
    with pytest.raises(keras_resnet.WeightsError) as error:
        keras_resnet.build("resnet101", weights=path)
    assert "has no layer 'conv4_block7_1_conv' for layer 'stage3_block7_conv1'" in str(error.value)
    assert str(path) in str(error.value)
    with pytest.raises(
        keras_resnet.WeightsError,
        match=r"layer 'stage1_block1_conv1' needs shapes \[\(3, 3, 64, 64\), \(64,\)\], the file's 'conv2_block1_1_conv' holds \[\(1, 1, 64, 64\), \(64,\)\]",
    ):
        keras_resnet.build("resnet34", weights=path)


def test_notop_file_with_a_1000_class_classifier_asks_for_include_top_false(applications_files):
    path = applications_files["resnet50", False][0]
    with pytest.raises(keras_resnet.WeightsError, match=r"no layer 'predictions'.*include_top=False"):
        keras_resnet.build("resnet50", weights=path)


@pytest.fixture
def cached_imagenet_files(applications_files, tmp_path, monkeypatch):
    """Keras' cache holding our stand-in files under the official names, with their md5 hashes in
    place of the official ones: the real get_file finds, verifies and returns them."""
    models = tmp_path / "models"
    models.mkdir()
    hashes = []
    for include_top, suffix in ((True, ""), (False, "_notop")):
        data = applications_files["resnet50", include_top][0].read_bytes()
        (models / f"resnet50_weights_tf_dim_ordering_tf_kernels{suffix}.h5").write_bytes(data)
        hashes.append(hashlib.md5(data).hexdigest())
    monkeypatch.setattr(keras_applications, "CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(keras_applications.IMAGENET_FILES, (50, "v1"), ("resnet50", *hashes))
    return tmp_path


@pytest.mark.integration
def test_imagenet_weights_load_from_keras_cache(cached_imagenet_files, applications_files, rng):
    _, reference, mode = applications_files["resnet50", True]
    images = varied_images(rng, 2)
    model = keras_resnet.build("resnet50", weights="imagenet")
    np.testing.assert_allclose(model.predict(images, verbose=0), reference_outputs(reference, mode, images), atol=1e-4)


@pytest.mark.integration
def test_imagenet_weights_with_other_classes_keep_the_network_and_get_a_new_classifier(cached_imagenet_files, applications_files, rng):
    _, features_reference, mode = applications_files["resnet50", False]
    model = keras_resnet.build("resnet50", weights="imagenet", classes=5)
    assert model.output_shape == (None, 5)
    images = varied_images(rng, 2)
    import keras

    features = keras.Model(model.input, model.get_layer("avg_pool").output).predict(images, verbose=0)
    np.testing.assert_allclose(features, reference_outputs(features_reference, mode, images), atol=1e-3)


def test_imagenet_download_offline_fails_with_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(keras_applications, "CACHE_DIR", str(tmp_path))  # empty cache: get_file must download
    with pytest.raises(keras_resnet.WeightsDownloadError) as error:
        keras_resnet.build("resnet50", weights="imagenet", include_top=False)
    message = str(error.value)
    assert "\n" not in message
    assert "Could not download ImageNet weights" in message
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "pass weights=<its path>" in message


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("resnet18", {}, r"weights='imagenet' exist for resnet50, resnet101 and resnet152.*Received: an ImageNet-style resnet18"),
        ("resnet50", {"version": "v1.5"}, r"version='v1.5'"),
        ("resnet56", {}, r"Received: a CIFAR-style resnet56"),
    ],
)
def test_imagenet_weights_only_where_keras_applications_has_them(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_resnet.build(name, weights="imagenet", **kwargs)


# -- our own files -------------------------------------------------------------------------------


@pytest.mark.parametrize("file_name", ["model.keras", "model.weights.h5"])
def test_own_files_load_into_a_fresh_model(file_name, tmp_path, rng):
    trained = keras_resnet.build("resnet20")
    # Stand-in for training: weights and batch-norm statistics that differ from a fresh build.
    trained.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in trained.get_weights()])
    path = tmp_path / file_name
    trained.save(path) if file_name.endswith(".keras") else trained.save_weights(path)
    loaded = keras_resnet.build("resnet20", weights=path)
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded(images).numpy(), trained(images).numpy(), atol=1e-6)


def test_tf_keras_twin_file_loads_by_our_layer_names(tmp_path, rng):
    model = keras_resnet.build("resnet20")
    twin = keras_resnet.build("resnet20", keras_module=tf_keras)
    twin.set_weights([w + 0.01 for w in model.get_weights()])
    path = tmp_path / "twin.h5"
    twin.save_weights(str(path))
    loaded = keras_resnet.build("resnet20", weights=path)
    for ours, theirs in zip(loaded.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


def test_own_file_of_another_network_names_the_first_layer_that_does_not_match(tmp_path):
    path = tmp_path / "resnet20.keras"
    keras_resnet.build("resnet20").save(path)
    with pytest.raises(keras_resnet.WeightsError, match=r"its layer 'stage1_block3_conv1' has no counterpart"):
        keras_resnet.build("resnet14", weights=path)
    with pytest.raises(keras_resnet.WeightsError, match=r"layer 'predictions' needs shapes \[\(64, 5\), \(5,\)\], the file's 'predictions' holds \[\(64, 10\), \(10,\)\]"):
        keras_resnet.build("resnet20", weights=path, classes=5)
    weights_path = tmp_path / "resnet20.weights.h5"
    keras_resnet.build("resnet20").save_weights(weights_path)
    with pytest.raises(keras_resnet.WeightsError, match=r"does not fit resnet32: the file holds no \(further\) array of shape \(3, 3, 16, 16\) for layer .stage1_block4_conv1."):
        keras_resnet.build("resnet32", weights=weights_path)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(keras_resnet.WeightsError, match=r"Weights file .*nowhere.h5 not found"):
        keras_resnet.build("resnet20", weights=tmp_path / "nowhere.h5")
    # A pipe or a device under a weights file's name is said to be one (before: "not found").
    os.mkfifo(tmp_path / "pipe.safetensors")
    with pytest.raises(keras_resnet.WeightsError, match=r"Weights file .*pipe.safetensors is not a regular file \(a pipe or a device\)"):
        keras_resnet.build("resnet18", weights=tmp_path / "pipe.safetensors")
    os.symlink("/dev/zero", tmp_path / "zero.h5")
    with pytest.raises(keras_resnet.WeightsError, match=r"Weights file .*zero.h5 is not a regular file"):
        keras_resnet.build("resnet20", weights=tmp_path / "zero.h5")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(keras_resnet.WeightsError, match=r"Cannot read weights file .*corrupt.h5: it is neither"):
        keras_resnet.build("resnet20", weights=corrupt)
    with pytest.raises(ValueError, match=r"weights must be one of: None \(random\), 'imagenet' .*'timm/NAME' .*\.safetensors.* a run directory of ours. Received: weights=3"):
        keras_resnet.build("resnet20", weights=3)
    # Every weights error names every valid form (a directory that is not a run, a missing file).
    for wrong in (tmp_path, tmp_path / "nowhere.h5"):
        with pytest.raises(keras_resnet.WeightsError, match=r"'imagenet'.*'timm/NAME'.*\.safetensors.*\.keras model of ours or a run directory of ours"):
            keras_resnet.build("resnet20", weights=wrong)
    with pytest.raises(ValueError, match=r"Name the network .* weights= a run directory or \.keras model of ours"):
        keras_resnet.build(weights="imagenet")
