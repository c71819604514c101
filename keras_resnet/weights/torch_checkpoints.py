"""ResNet checkpoints of the PyTorch world, read with numpy alone: timm's published ImageNet weights
(`weights="timm/resnet18.a1_in1k"`, downloaded once from the Hugging Face hub) and any `.safetensors`
file in timm's or torchvision's key layout (the two are the same for these networks).

They need the layout timm and torchvision build (`LAYOUT`): v1.5 (a bottleneck's stride on its 3x3),
projection shortcuts where the width changes, no convolution biases, ImageNet mean/std input
normalization. Their batch norms use epsilon 1e-5, below FUSED_MIN_EPSILON, the smallest that
TensorFlow's fused batch-norm kernel takes (TensorFlow raises smaller values to it, Keras falls back
to its slower unfused ops). The model keeps its own epsilon and the difference moves into the moving
variance, which only ever appears as variance + epsilon at inference: the outputs are exactly
timm's, and training keeps the fused kernel (where batch statistics replace the moving variance and
the 1e-8 difference in epsilon is far below float32 resolution of any real variance).
"""

import dataclasses
import hashlib
import logging
import os
import re

import numpy as np

from keras_resnet.errors import CheckpointDownloadError, CheckpointError
from keras_resnet.nets import specs
from keras_resnet.runtime import reason
from keras_resnet.weights import assign

HUB_PREFIX = "timm/"
HUB_FILE = "model.safetensors"
HUB_URL = "https://huggingface.co/{repo}/resolve/main/" + HUB_FILE
TORCH_EPSILON = 1e-5

LAYOUT = {
    "version": "v1.5",
    "conv_bias": False,
    "input_normalization": "torch",
    "downsample_block": "first",
    "plain": False,
    "shortcut": "B",
}


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One published checkpoint: its network and its ImageNet top-1 in timm's results-imagenet.csv
    (huggingface/pytorch-image-models, results/), at the image size it was evaluated at."""

    depth: int
    top1: float
    evaluated_at: int
    trained_by: str


_TORCHVISION = "torchvision's original (He et al. recipe)"
_A1 = "timm, ResNet strikes back A1 recipe (Wightman et al., 2021)"
CHECKPOINTS = {
    "resnet18.tv_in1k": Checkpoint(18, 69.760, 224, _TORCHVISION),
    "resnet18.a1_in1k": Checkpoint(18, 73.158, 288, _A1),
    # Not in results-imagenet.csv: torchvision's own figure for these weights (its model card).
    "resnet34.tv_in1k": Checkpoint(34, 73.314, 224, _TORCHVISION),
    "resnet34.a1_in1k": Checkpoint(34, 77.918, 288, _A1),
    "resnet50.tv_in1k": Checkpoint(50, 76.130, 224, _TORCHVISION),
    "resnet50.a1_in1k": Checkpoint(50, 81.214, 288, _A1),
    "resnet101.tv_in1k": Checkpoint(101, 77.376, 224, _TORCHVISION),
    "resnet101.a1_in1k": Checkpoint(101, 82.322, 288, _A1),
    "resnet152.tv_in1k": Checkpoint(152, 78.322, 224, _TORCHVISION),
    "resnet152.a1_in1k": Checkpoint(152, 82.732, 288, _A1),
}
# Where downloads are kept; None: huggingface_hub's cache ($HF_HOME/hub, default ~/.cache/huggingface/hub).
CACHE_DIR = None


def is_hub_name(weights):
    return isinstance(weights, str) and weights.startswith(HUB_PREFIX)


def is_checkpoint_file(weights):
    return isinstance(weights, (str, os.PathLike)) and os.fspath(weights).endswith(".safetensors")


def checkpoint(weights):
    """The Checkpoint of a hub name "timm/resnet18.a1_in1k"; CheckpointError for an unknown one."""
    name = weights[len(HUB_PREFIX) :]
    if name not in CHECKPOINTS:
        shown = weights if len(weights) <= 80 else weights[:79] + "…"  # a name is short; a long one is not echoed whole
        raise CheckpointError(f"Unknown pretrained weights {shown!r}. Valid: {', '.join(HUB_PREFIX + n for n in CHECKPOINTS)}.")
    return CHECKPOINTS[name]


def claims(weights):
    """Whether `weights` are a checkpoint of this format: a hub name or a .safetensors file."""
    return is_hub_name(weights) or is_checkpoint_file(weights)


def required_layout(weights, *, spec, version=None):
    """The builder arguments a hub name or a checkpoint file needs.

    Args:
        weights: A hub name "timm/NAME" or the path of a .safetensors file.
        spec: The specs.Spec of the network to build, checked against the checkpoint's.
        version: Unused: the checkpoints dictate v1.5 (the formats' common signature).

    Returns:
        A copy of LAYOUT.

    Raises:
        CheckpointError: An unknown hub name, a file that cannot be read or holds no ResNet, or a
            checkpoint of another network than `spec`.
    """
    if is_hub_name(weights):
        depth, what = checkpoint(weights).depth, repr(weights)
    else:
        depth = depth_of_file(os.fspath(weights))
        what = f"{os.fspath(weights)!r} (a resnet{depth} checkpoint)"
    if spec.family.name != "imagenet" or spec.depth != depth:
        raise CheckpointError(
            f"weights={what} are for resnet{depth} (ImageNet-style). Received: {specs.styled(spec.family.name)} resnet{spec.depth}."
        )
    return dict(LAYOUT)


def load(model, weights, *, spec, version, include_top, classes):
    """Loads a hub name or a checkpoint file into `model` (built with `required_layout`).

    The classifier is loaded when the model has one of the checkpoint's width; otherwise it stays new.

    Args:
        model: The Keras model to fill.
        weights: A hub name "timm/NAME" (downloaded) or the path of a .safetensors file.
        spec: Unused (the formats' common signature).
        version: Unused, as `spec`.
        include_top: Whether the model has a classifier.
        classes: The model's number of classes, compared with the checkpoint's classifier.

    Raises:
        CheckpointError: The file cannot be read or does not fit the model.
        CheckpointDownloadError: A hub checkpoint could not be downloaded.
    """
    path = download(weights) if is_hub_name(weights) else os.fspath(weights)
    tensors = read(path)
    new_classifier = include_top and tensors.get("fc.weight", np.zeros((0, 0))).shape[0] != classes
    assign.assign(model, source(tensors, describe=f"weights file {path}", model_name=model.name), skip=(assign.CLASSIFIER,) if new_classifier else ())


def read(path):
    """The tensors of a .safetensors file by key (without a DataParallel 'module.' prefix)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    _check_file(path)
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        raise CheckpointError(f"Cannot read {path} as a safetensors file ({' '.join(str(error).split())[:200]}).") from None
    return {key.removeprefix("module."): value for key, value in tensors.items()}


def depth_of_file(path):
    """The depth of the ImageNet-style ResNet a .safetensors file holds, from its keys alone (its
    header: the tensors are not read)."""
    from safetensors import SafetensorError, safe_open

    _check_file(path)
    try:
        with safe_open(path, framework="numpy") as file:
            keys = [key.removeprefix("module.") for key in file.keys()]
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        raise CheckpointError(f"Cannot read {path} as a safetensors file ({' '.join(str(error).split())[:200]}).") from None
    return _depth_of(keys)


def _check_file(path):
    if not os.path.isfile(path):
        what = "is not a regular file (a pipe or a device)" if os.path.exists(path) else "not found"
        raise CheckpointError(f"Weights file {path} {what}: pass a .safetensors file.")


def _depth_of(tensors):
    """The ImageNet-style depth whose blocks a timm/torchvision state dict holds."""
    counts = []
    for stage in range(1, 5):
        blocks = {int(match[1]) for key in tensors for match in [re.match(rf"layer{stage}\.(\d+)\.", key)] if match}
        counts.append(len(blocks))
    block = "bottleneck" if "layer1.0.conv3.weight" in tensors else "basic"
    for depth, (spec_block, spec_counts) in specs.IMAGENET_BLOCKS_PER_STAGE.items():
        if spec_block == block and tuple(spec_counts) == tuple(counts):
            return depth
    raise CheckpointError(
        f"The file holds no ResNet in timm's or torchvision's layout (keys conv1, bn1, layer1-4, fc): "
        f"{block} blocks per stage {tuple(counts)} match no depth of {', '.join(map(str, specs.IMAGENET_BLOCKS_PER_STAGE))}."
    )


# Our layer names -> the state dict's module names.
_NAME_RULES = [
    (re.compile(r"stem_conv"), lambda m: "conv1"),
    (re.compile(r"stem_bn"), lambda m: "bn1"),
    (re.compile(r"stage(\d+)_block(\d+)_(conv|bn)(\d)"), lambda m: f"layer{m[1]}.{int(m[2]) - 1}.{m[3]}{m[4]}"),
    (re.compile(r"stage(\d+)_block(\d+)_shortcut_conv"), lambda m: f"layer{m[1]}.{int(m[2]) - 1}.downsample.0"),
    (re.compile(r"stage(\d+)_block(\d+)_shortcut_bn"), lambda m: f"layer{m[1]}.{int(m[2]) - 1}.downsample.1"),
    (re.compile(r"predictions"), lambda m: "fc"),
]
# Keras variable order per layer kind, as state-dict suffixes.
_SUFFIXES = {
    "Conv2D": ("weight",),
    "BatchNormalization": ("weight", "bias", "running_mean", "running_var"),
    "Dense": ("weight", "bias"),
}


def torch_name(layer_name):
    """The state dict's module name of our layer `layer_name` (None: it has none)."""
    return assign.renamed(layer_name, _NAME_RULES)


def _to_keras(kind, suffix, array):
    """A PyTorch tensor in Keras' layout: conv OIHW -> HWIO, linear (out, in) -> (in, out)."""
    if kind == "Conv2D":
        return np.transpose(array, (2, 3, 1, 0))
    if kind == "Dense" and suffix == "weight":
        return array.T
    return array


def _torch_shape(kind, suffix, shape):
    """A Keras variable's shape as the state dict holds it, for error messages."""
    if kind == "Conv2D":
        return (shape[3], shape[2], shape[0], shape[1])
    if kind == "Dense" and suffix == "weight":
        return (shape[1], shape[0])
    return tuple(shape)


def source(tensors, *, describe, model_name):
    """The assign.Source of a state dict: our layers by timm's module names, each tensor checked and put in Keras' layout.

    Each tensor a layer reads must be present, of the layer's shape and floating-point; it is cast to
    float32, and a batch norm's running variance takes the difference in epsilon (see the module's docstring).

    Args:
        tensors: The state dict, {key: numpy array} (as `read` returns it).
        describe: The source in error messages, e.g. "weights file PATH".
        model_name: The model's name, in error messages.

    Returns:
        An assign.Source whose `read` raises CheckpointError for a tensor that is missing, of
        another shape or not floating-point.
    """

    def read(layer, module):
        kind = next((base.__name__ for base in type(layer).__mro__ if base.__name__ in _SUFFIXES), None)
        if kind is None:
            raise CheckpointError(f"{describe} cannot fill layer {layer.name!r} of {model_name}: it has no timm/torchvision counterpart.")
        found = {}
        for suffix, variable in zip(_SUFFIXES[kind], layer.weights):
            key = f"{module}.{suffix}"
            expected = _torch_shape(kind, suffix, tuple(variable.shape))
            if key not in tensors:
                raise CheckpointError(f"{describe} does not fit {model_name}: it has no tensor {key!r} (for layer {layer.name!r}, shape {list(expected)}).")
            if tuple(tensors[key].shape) != expected:
                raise CheckpointError(
                    f"{describe} does not fit {model_name}: tensor {key!r} has shape {list(tensors[key].shape)}, "
                    f"layer {layer.name!r} needs {list(expected)}."
                )
            if not np.issubdtype(tensors[key].dtype, np.floating):  # a float16/bfloat16/float32/float64 tensor, cast
                raise CheckpointError(
                    f"{describe} does not fit {model_name}: tensor {key!r} holds {tensors[key].dtype} values, "
                    f"layer {layer.name!r} needs floating-point ones (the file is not a network's weights, or was altered)."
                )
            array = _to_keras(kind, suffix, np.asarray(tensors[key], dtype=np.float32))
            if kind == "BatchNormalization" and suffix == "running_var":
                array = array + np.float32(TORCH_EPSILON - layer.epsilon)  # see the module's docstring
            found[key] = array
        return found

    return assign.Source(
        describe=describe,
        keys=tuple(key for key in tensors if not key.endswith(".num_batches_tracked")),
        name_of=torch_name,
        read=read,
        unit="tensor",
        error=CheckpointError,
        format="timm/torchvision",
    )


def download(weights):
    """The local path of a published checkpoint, downloaded once into huggingface_hub's cache and
    checked against the SHA-256 the hub publishes for it (the name of its blob in that cache)."""
    checkpoint(weights)
    repo = weights
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    cached = huggingface_hub.try_to_load_from_cache(repo, HUB_FILE, cache_dir=CACHE_DIR)
    cache = CACHE_DIR or "$HF_HOME/hub (default ~/.cache/huggingface/hub)"
    by_hand = (
        f"Download {HUB_URL.format(repo=repo)} on another machine and pass its path as the weights (weights=PATH / "
        f"--weights PATH), or copy the hub's cache into {cache}."
    )
    proxied = any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"))
    if not isinstance(cached, str) and not huggingface_hub.constants.HF_HUB_OFFLINE and not proxied:
        unreachable = _hub_unreachable(huggingface_hub.constants.ENDPOINT)
        if unreachable:
            # huggingface_hub retries for half a minute before it gives up: one quick look first.
            raise CheckpointDownloadError(
                f"Cannot reach the Hugging Face hub ({unreachable}) to download {repo}. Offline? {by_hand} "
                "With the file in that cache, set HF_HUB_OFFLINE=1 to use it without looking online."
            )
    if not isinstance(cached, str):
        hub_logger = logging.getLogger("huggingface_hub")
        level = hub_logger.level
        hub_logger.setLevel(logging.ERROR)  # its retries log a warning each; a failure ends in one line here
        try:
            cached = huggingface_hub.hf_hub_download(repo, HUB_FILE, cache_dir=CACHE_DIR)
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
            if huggingface_hub.constants.HF_HUB_OFFLINE:
                raise CheckpointDownloadError(f"{repo} is not in the hub's cache and HF_HUB_OFFLINE=1 forbids downloading it. {by_hand}") from None
            why = reason(error, first_sentence=True)
            raise CheckpointDownloadError(f"Could not download {HUB_URL.format(repo=repo)} ({why}). Offline? {by_hand}") from None
        finally:
            hub_logger.setLevel(level)
    verify(cached)
    return cached


def _hub_unreachable(endpoint, *, timeout=5.0):
    """Why the hub at `endpoint` (a URL) cannot be reached in `timeout` seconds, or None."""
    import socket
    import urllib.parse

    url = urllib.parse.urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as error:
        return f"{url.hostname}: {reason(error)}"
    return None


def verify(path):
    """Checks a cached hub file against the SHA-256 that names its blob (git-lfs files are stored
    under their SHA-256); a damaged file is one clear error, and the next download replaces it."""
    blob = os.path.realpath(path)
    expected = os.path.basename(blob)
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        if os.path.islink(path):
            return  # not a git-lfs blob: the hub published no SHA-256 for it
        # A regular file in the snapshot (a cache copied without its symlinks, or on a file system
        # without them): the blobs the cache recorded, named by their SHA-256, say what it may be.
        blobs = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(path))), "blobs")
        if not os.path.isdir(blobs):
            return  # not in a hub cache
        recorded = {name for name in os.listdir(blobs) if re.fullmatch(r"[0-9a-f]{64}", name)}
        digest = _sha256(path)
        if digest not in recorded:
            raise CheckpointError(
                f"{path} is damaged: its SHA-256 is {digest}, none of the files the hub's cache recorded in {blobs}. "
                f"Delete {os.path.dirname(os.path.dirname(blobs))} and load the weights again to download a fresh copy."
            )
        return
    digest = _sha256(blob)
    if digest != expected:
        raise CheckpointError(
            f"{path} is damaged: its SHA-256 is {digest}, the hub published {expected}. "
            f"Delete {blob} and load the weights again to download a fresh copy."
        )


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()
