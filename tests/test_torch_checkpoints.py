"""timm / torchvision checkpoints: our models against keras-hub's own timm ResNet converter (an
independent implementation, loading the same file offline from a local preset directory)."""

import hashlib
import os
import shutil

import keras
import numpy as np
import pytest

import keras_resnet
from keras_resnet.nets.specs import FUSED_MIN_EPSILON
from keras_resnet.weights import torch_checkpoints
from keras_resnet.weights import WeightsDownloadError, WeightsError
from safetensors.numpy import save_file
from support.checkpoints import IMAGE_SIZE, timm_state_dict, write_preset


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("timm")
    return {depth: write_preset(str(root / f"resnet{depth}"), depth, seed=depth) for depth in (18, 34, 50, 101, 152)}


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(7).uniform(0, 255, (2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)


def keras_hub_outputs(preset_file, images):
    """keras-hub's logits for `images` from its own loader of the same local preset (its
    preprocessing is the same ImageNet mean/std, applied here outside the functional model)."""
    keras_hub = pytest.importorskip("keras_hub")
    classifier = keras_hub.models.ImageClassifier.from_preset(os.path.dirname(preset_file))
    normalized = keras_resnet.normalize(images, "torch")
    features = classifier.backbone(normalized)
    return np.asarray(classifier(normalized)), np.asarray(keras.ops.mean(features, axis=(1, 2)))


def assert_close(ours, theirs, what):
    scale = max(1.0, float(np.abs(theirs).max()))
    difference = float(np.abs(ours - theirs).max())
    assert difference <= 1e-4 * scale, f"{what}: max |difference| {difference:.3g} at output scale {scale:.3g}"


@pytest.mark.integration
@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_timm_files_give_keras_hubs_outputs(depth, presets, images):
    theirs_logits, theirs_features = keras_hub_outputs(presets[depth], images)
    model = keras_resnet.build(
        f"resnet{depth}", weights=presets[depth], input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), classifier_activation=None
    )
    assert model.build_arguments["version"] == "v1.5" and model.build_arguments["input_normalization"] == "torch"
    # timm's epsilon 1e-5 is folded into the moving variance: the fused kernel's minimum stays.
    assert all(layer.epsilon == FUSED_MIN_EPSILON for layer in model.layers if hasattr(layer, "moving_variance"))
    assert_close(np.asarray(model(images)), theirs_logits, f"resnet{depth} logits")
    backbone = keras_resnet.build(
        f"resnet{depth}", weights=presets[depth], input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), include_top=False, pooling="avg"
    )
    assert_close(np.asarray(backbone(images)), theirs_features, f"resnet{depth} pooled features")
    assert np.abs(theirs_logits).max() > 1.0  # the stand-in weights give outputs worth comparing


def test_other_classes_get_a_new_classifier_on_the_same_network(presets, images):
    _, theirs_features = keras_hub_outputs(presets[18], images)
    model = keras_resnet.build("resnet18", weights=presets[18], input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), classes=5)
    assert model.output_shape == (None, 5)
    features = keras.Model(model.input, model.get_layer("avg_pool").output)
    assert_close(np.asarray(features(images)), theirs_features, "features under a new classifier")


def test_torchvision_state_dict_with_prefix_and_own_classes_loads(tmp_path, images):
    """A fine-tuned torchvision model saved from nn.DataParallel: 'module.' keys, a 7-class fc."""
    path = write_preset(str(tmp_path / "tv"), 18, classes=7, prefix="module.")
    model = keras_resnet.build("resnet18", weights=path, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), classes=7,
                               classifier_activation=None)
    tensors = torch_checkpoints.read(path)
    np.testing.assert_array_equal(model.get_layer("predictions").get_weights()[0], tensors["fc.weight"].T)
    np.testing.assert_allclose(
        model.get_layer("stage2_block1_shortcut_bn").moving_variance.numpy(),
        tensors["layer2.0.downsample.1.running_var"] + 1e-5 - FUSED_MIN_EPSILON, rtol=1e-6,
    )


@pytest.mark.parametrize(
    "tensor, value, message",
    [
        ("layer3.0.conv2.weight", np.nan, r"stage3_block1_conv2/kernel holds NaN or infinite values: the file is damaged"),
        ("fc.bias", np.inf, r"predictions/bias holds NaN or infinite values"),
        ("layer1.1.bn2.running_var", -0.5, r"stage1_block2_bn2/moving_variance holds a negative variance \(-0.5\)"),
        ("layer2.0.conv1.weight", np.int64, r"tensor 'layer2.0.conv1.weight' holds int64 values, layer 'stage2_block1_conv1' needs floating-point ones"),
        ("bn1.weight", np.bool_, r"tensor 'bn1.weight' holds bool values"),
    ],
)
def test_values_no_trained_network_has_are_refused_naming_the_tensor(tensor, value, message, tmp_path):
    # Before: loaded unchecked; training then stopped with a NaN advice that could not help.
    tensors = timm_state_dict(18)
    if isinstance(value, type):  # before: cast to float32 silently
        tensors[tensor] = tensors[tensor].astype(value)
    else:
        tensors[tensor] = tensors[tensor].copy()
        tensors[tensor].flat[3] = value
    save_file(tensors, str(tmp_path / "bad.safetensors"))
    with pytest.raises(WeightsError, match=message):
        keras_resnet.build("resnet18", weights=str(tmp_path / "bad.safetensors"), input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))


def test_a_file_that_does_not_fit_names_the_first_tensor(tmp_path):
    tensors = timm_state_dict(18)
    tensors["layer2.1.conv1.weight"] = tensors["layer2.1.conv1.weight"][:, :64]
    save_file(tensors, str(tmp_path / "narrow.safetensors"))
    with pytest.raises(WeightsError, match=r"tensor 'layer2.1.conv1.weight' has shape \[128, 64, 3, 3\], layer 'stage2_block2_conv1' needs \[128, 128, 3, 3\]"):
        keras_resnet.build("resnet18", weights=str(tmp_path / "narrow.safetensors"))
    del tensors["layer2.1.conv1.weight"]
    save_file(tensors, str(tmp_path / "missing.safetensors"))
    with pytest.raises(WeightsError, match=r"has no tensor 'layer2.1.conv1.weight'"):
        keras_resnet.build("resnet18", weights=str(tmp_path / "missing.safetensors"))
    tensors = timm_state_dict(18)
    tensors["layer4.1.se.fc1.weight"] = np.zeros((32, 512, 1, 1), np.float32)  # an SE-ResNet's extra module
    save_file(tensors, str(tmp_path / "extra.safetensors"))
    with pytest.raises(WeightsError, match=r"its tensor 'layer4.1.se.fc1.weight' has no counterpart"):
        keras_resnet.build("resnet18", weights=str(tmp_path / "extra.safetensors"))


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("resnet34", {}, r"are for resnet18 \(ImageNet-style\). Received: an ImageNet-style resnet34"),
        ("resnet18", {"version": "v1"}, r"need version='v1.5'"),
        ("resnet18", {"input_normalization": "caffe"}, r"need input_normalization='torch'"),
    ],
)
def test_checkpoints_need_their_network_and_layout(name, kwargs, message, presets):
    with pytest.raises(ValueError, match=message):
        keras_resnet.build(name, weights=presets[18], **kwargs)


def test_not_a_resnet_checkpoint_and_not_safetensors(tmp_path):
    save_file({"encoder.weight": np.zeros((3, 3), np.float32)}, str(tmp_path / "bert.safetensors"))
    with pytest.raises(WeightsError, match=r"holds no ResNet in timm's or torchvision's layout"):
        keras_resnet.build("resnet18", weights=str(tmp_path / "bert.safetensors"))
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match=r"Cannot read .*broken.safetensors as a safetensors file"):
        keras_resnet.build("resnet18", weights=str(tmp_path / "broken.safetensors"))


def test_unknown_hub_name_lists_the_published_ones():
    with pytest.raises(WeightsError, match=r"Unknown pretrained weights 'timm/resnet18.fb_ssl'. Valid: timm/resnet18.tv_in1k, "):
        keras_resnet.build("resnet18", weights="timm/resnet18.fb_ssl")
    with pytest.raises(ValueError, match=r"are for resnet50"):
        keras_resnet.build("resnet18", weights="timm/resnet50.a1_in1k")


def seed_hub_cache(cache, repo, source_file, *, commit="0123456789abcdef0123456789abcdef01234567"):
    """huggingface_hub's cache as a finished download leaves it: the blob under its SHA-256, the
    snapshot's file a symlink to it, refs/main naming the snapshot."""
    data = open(source_file, "rb").read()
    sha256 = hashlib.sha256(data).hexdigest()
    folder = os.path.join(cache, "models--" + repo.replace("/", "--"))
    os.makedirs(os.path.join(folder, "blobs"))
    os.makedirs(os.path.join(folder, "snapshots", commit))
    os.makedirs(os.path.join(folder, "refs"))
    with open(os.path.join(folder, "blobs", sha256), "wb") as file:
        file.write(data)
    os.symlink(os.path.join("..", "..", "blobs", sha256), os.path.join(folder, "snapshots", commit, "model.safetensors"))
    with open(os.path.join(folder, "refs", "main"), "w") as file:
        file.write(commit)
    return os.path.join(folder, "blobs", sha256)


def test_published_weights_load_from_the_hub_cache_offline_and_are_checked(presets, images, tmp_path, monkeypatch):
    monkeypatch.setattr(torch_checkpoints, "CACHE_DIR", str(tmp_path))
    blob = seed_hub_cache(str(tmp_path), "timm/resnet18.a1_in1k", presets[18])
    from_hub = keras_resnet.build("resnet18", weights="timm/resnet18.a1_in1k", input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
    from_file = keras_resnet.build("resnet18", weights=presets[18], input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
    np.testing.assert_array_equal(np.asarray(from_hub(images)), np.asarray(from_file(images)))

    with open(blob, "r+b") as file:  # one flipped byte deep inside a tensor
        file.seek(os.path.getsize(blob) // 2)
        byte = file.read(1)
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(WeightsError, match=r"is damaged: its SHA-256 is [0-9a-f]{64}, the hub published [0-9a-f]{64}\. Delete "):
        keras_resnet.build("resnet18", weights="timm/resnet18.a1_in1k")


def test_a_cache_without_symlinks_is_checked_too(presets, tmp_path, monkeypatch):
    # A snapshot holding a copy instead of a symlink (`cp -rL` of a cache, a file system without
    # symlinks). Before: not checked at all.
    monkeypatch.setattr(torch_checkpoints, "CACHE_DIR", str(tmp_path))
    blob = seed_hub_cache(str(tmp_path), "timm/resnet18.a1_in1k", presets[18])
    snapshot = next((tmp_path / "models--timm--resnet18.a1_in1k" / "snapshots").glob("*/model.safetensors"))
    snapshot.unlink()
    shutil.copy(blob, snapshot)
    keras_resnet.build("resnet18", weights="timm/resnet18.a1_in1k", input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))  # whole: loads
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 2] ^= 0xFF
    snapshot.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"is damaged: its SHA-256 is [0-9a-f]{64}, none of the files the hub's cache recorded in "):
        keras_resnet.build("resnet18", weights="timm/resnet18.a1_in1k", input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))


def test_download_without_the_hub_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch_checkpoints, "CACHE_DIR", str(tmp_path))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no retries: the offline answer at once
    with pytest.raises(WeightsDownloadError) as error:
        keras_resnet.build("resnet34", weights="timm/resnet34.tv_in1k")
    message = str(error.value)
    assert "https://huggingface.co/timm/resnet34.tv_in1k/resolve/main/model.safetensors" in message
    assert "pass its path as the weights" in message and "\n" not in message
    written = [name for _, _, names in os.walk(tmp_path) for name in names]
    assert not any(name.endswith(".safetensors") or len(name) == 64 for name in written), written
