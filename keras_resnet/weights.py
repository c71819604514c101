"""Weights for built models: keras.applications' ImageNet files, and files of our own models.
timm's and torchvision's checkpoints (hub names "timm/…" and .safetensors files) are read by
keras_resnet.torch_checkpoints, dispatched from here.

keras.applications' weight files fit our builder in their layout (KERAS_APPLICATIONS_LAYOUT): conv
biases, batch-norm epsilon 1.001e-5, v1 stride placement, their input normalization, and in v2 the
downsampling in each stage's last block. Their layer names map onto ours by rule (`_their_name`).
"""

import os
import re
import warnings
import zipfile

import h5py
import keras
import numpy as np

from keras_resnet import internals, specs
from keras_resnet.errors import UsageError, WeightsDownloadError, WeightsError
from keras_resnet.layers import FUSED_MIN_EPSILON
from keras_resnet.run import directory as run_dir

BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"

# (depth, version) -> (keras.applications' name, md5 of the file with classifier, md5 without).
IMAGENET_FILES = {
    (50, "v1"): ("resnet50", "2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
    (101, "v1"): ("resnet101", "f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
    (152, "v1"): ("resnet152", "100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
    (50, "v2"): ("resnet50v2", "3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917"),
    (101, "v2"): ("resnet101v2", "6343647c601c52e1368623803854d971", "c0ed64b8031c3730f411d2eb4eea35b5"),
    (152, "v2"): ("resnet152v2", "a49b44d1979771252814e80f8ec446f9", "ed17cf2e0169df9d443503ef94b23b33"),
}
IMAGENET_CLASSES = 1000
# Where downloaded weight files are kept; None: Keras' cache, $KERAS_HOME/models or ~/.keras/models.
CACHE_DIR = None

_COMMON_LAYOUT = {"conv_bias": True, "bn_epsilon": FUSED_MIN_EPSILON, "plain": False, "shortcut": "B"}
KERAS_APPLICATIONS_LAYOUT = {
    "v1": {**_COMMON_LAYOUT, "version": "v1", "input_normalization": "caffe", "downsample_block": "first"},
    "v2": {**_COMMON_LAYOUT, "version": "v2", "input_normalization": "tf", "downsample_block": "last"},
}


# Every form `weights` takes, for the errors that name them.
VALID_WEIGHTS = (
    "None (random), 'imagenet' (keras.applications), 'timm/NAME' (keras_resnet.torch_checkpoints.CHECKPOINTS), "
    "the path of a weights file (.safetensors, .h5, .weights.h5), a .keras model of ours or a run directory of ours"
)
# The builder arguments a model of ours dictates when its weights are loaded into a new model.
OWN_LAYOUT_FIELDS = ("plain", "version", "shortcut", "input_normalization", "conv_bias", "bn_epsilon", "downsample_block")


def own_model(weights):
    """The model of ours that `weights` names — a .keras file built by this package or a run
    directory (its best model) — as keras_resnet.run.directory.OwnModel; None for other weights.
    Raises WeightsError for a directory that is not a run of ours and a .keras file not built here."""
    if not isinstance(weights, (str, os.PathLike)) or weights == "imagenet" or str(weights).startswith("timm/"):
        return None
    try:
        own = run_dir.own_model(weights)
    except UsageError as error:
        raise WeightsError(f"{error} Valid weights: {VALID_WEIGHTS}.") from None
    if own is None and os.path.isdir(weights):
        raise WeightsError(f"{weights} is a directory but not a run directory (no config.json). Valid weights: {VALID_WEIGHTS}.")
    return own


def required_layout(weights, *, spec, version):
    """The builder arguments that `weights` dictate ({} when they dictate none)."""
    if weights is None:
        return {}
    from keras_resnet import torch_checkpoints

    if torch_checkpoints.is_hub_name(weights) or torch_checkpoints.is_checkpoint_file(weights):
        return torch_checkpoints.required_layout(weights, spec=spec)
    if weights == "imagenet":
        version = version or "v1"
        if spec.family.name != "imagenet" or (spec.depth, version) not in IMAGENET_FILES:
            raise ValueError(
                f"weights='imagenet' exist for resnet50, resnet101 and resnet152, versions v1 and v2 "
                f"(keras.applications' files). Received: {specs.styled(spec.family.name)} resnet{spec.depth}, "
                f"version={version!r}."
            )
        return KERAS_APPLICATIONS_LAYOUT[version]
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights must be one of: {VALID_WEIGHTS}. Received: weights={weights!r}.")
    own = own_model(weights)
    if own is not None:
        # A model of ours dictates the layout it was built with.
        return {field: own.build_arguments[field] for field in OWN_LAYOUT_FIELDS if field in own.build_arguments}
    path = os.fspath(weights)
    if _file_format(path) == "keras_applications":
        with h5py.File(path, "r") as file:
            return KERAS_APPLICATIONS_LAYOUT["v2" if "post_bn" in _legacy_layer_names(file) else "v1"]
    return {}


def load(model, weights, *, spec, version, include_top, classes):
    """Loads `weights` ("imagenet", "timm/NAME" or a path) into `model`, built with `required_layout(weights)`;
    WeightsError for a file that does not fit or holds values no trained network has."""
    _load(model, weights, spec=spec, version=version, include_top=include_top, classes=classes)
    check_values(model, f"weights {os.fspath(weights) if isinstance(weights, os.PathLike) else weights}")


def check_values(model, source):
    """WeightsError naming the first of `model`'s variables that `source` filled with values no
    trained network has: NaN or infinity anywhere, a negative batch-norm variance."""
    for variable in model.weights:
        values = np.asarray(keras.ops.convert_to_numpy(variable))
        if not np.issubdtype(values.dtype, np.floating):
            continue
        if not np.isfinite(values).all():
            raise WeightsError(
                f"{source}: {variable.path} holds NaN or infinite values: the file is damaged or comes from a run "
                "that diverged; use another file."
            )
        if variable.path.endswith("moving_variance") and (values < 0).any():
            raise WeightsError(
                f"{source}: {variable.path} holds a negative variance ({values.min():g}): a batch-norm variance "
                "never is; the file is damaged or was not written as this layout; use another file."
            )


def _load(model, weights, *, spec, version, include_top, classes):
    from keras_resnet import torch_checkpoints

    if torch_checkpoints.is_hub_name(weights) or torch_checkpoints.is_checkpoint_file(weights):
        torch_checkpoints.load(model, weights, include_top=include_top, classes=classes)
        return
    if weights == "imagenet":
        # A different number of classes gets a new classifier on the pretrained network.
        with_classifier = include_top and classes == IMAGENET_CLASSES
        path = download_imagenet(spec.depth, version, include_top=with_classifier)
        _load_legacy_h5(model, path, keras_applications=True, new_classifier=include_top and not with_classifier)
        return
    own = own_model(weights)
    path = own.path if own is not None else os.fspath(weights)
    file_format = _file_format(path)
    if file_format in ("keras_applications", "legacy_h5"):
        new_classifier = file_format == "keras_applications" and include_top and classes != IMAGENET_CLASSES
        _load_legacy_h5(model, path, keras_applications=file_format == "keras_applications", new_classifier=new_classifier)
    elif file_format == "keras":
        source = keras.saving.load_model(path, compile=False)
        arrays = {layer.name: layer.get_weights() for layer in source.layers if layer.weights}
        assign_by_name(model, arrays, describe=f"weights file {path}")
    else:
        # Keras only warns about layers of a .weights.h5 file that do not fit, and leaves them
        # freshly initialized: a half-loaded model. Here that is an error.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                internals.keras_load_network_weights(model, path)  # our weights files are networks, not runs
            except (ValueError, KeyError) as error:
                caught.append(warnings.WarningMessage(error, UserWarning, "", 0))
        problems = [str(w.message).strip().splitlines()[0] for w in caught if issubclass(w.category, UserWarning)]
        if problems:
            raise WeightsError(f"weights file {path} does not fit {model.name}: {_first_unfilled_layer(model, path) or problems[0]}")


def download_imagenet(depth, version, *, include_top):
    """Path of keras.applications' ImageNet weight file, downloaded once into ~/.keras/models."""
    name, top_hash, notop_hash = IMAGENET_FILES[(depth, version)]
    file_name = f"{name}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
    try:
        return keras.utils.get_file(
            file_name,
            BASE_URL + file_name,
            cache_dir=CACHE_DIR,
            cache_subdir="models",
            file_hash=top_hash if include_top else notop_hash,
        )
    except Exception as error:  # get_file raises bare Exceptions for network failures
        reason = str(error).split(" -- ")[-1].strip() or type(error).__name__
        cache = os.path.join(CACHE_DIR or "$KERAS_HOME (default ~/.keras)", "models")
        raise WeightsDownloadError(
            f"Could not download ImageNet weights {BASE_URL}{file_name} ({reason}). Offline? Download "
            f"that file on another machine and pass weights=<its path>, or copy it into {cache}/."
        ) from None


def _file_format(path):
    if not os.path.isfile(path):
        what = "is not a regular file (a pipe or a device)" if os.path.exists(path) else "not found"
        raise WeightsError(f"Weights file {path} {what}. Valid weights: {VALID_WEIGHTS}.")
    if zipfile.is_zipfile(path):
        return "keras"
    try:
        with h5py.File(path, "r") as file:
            if "layer_names" in file.attrs:
                return "keras_applications" if "conv1_conv" in _legacy_layer_names(file) else "legacy_h5"
            if "layers" in file or "vars" in file:
                return "keras_weights_h5"
    except OSError:
        pass
    raise WeightsError(
        f"Cannot read weights file {path}: it is neither a .keras model, a .weights.h5 file nor a "
        f"keras.applications .h5 weights file."
    )


def _first_unfilled_layer(model, path):
    """Keras' .weights.h5 files key layers by generated paths, not by our layer names. To name the
    layer that does not fit, hand out the file's arrays by shape to the model's layers in order."""
    shapes = []
    with h5py.File(path, "r") as file:
        file.visititems(lambda _, item: shapes.append(item.shape) if isinstance(item, h5py.Dataset) else None)
    available = {}
    for shape in shapes:
        available[tuple(shape)] = available.get(tuple(shape), 0) + 1
    for layer in model.layers:
        for weight in layer.weights:
            shape = tuple(weight.shape)
            if not available.get(shape):
                return f"the file holds no (further) array of shape {shape} for layer {layer.name!r}."
            available[shape] -= 1
    leftover = sum(available.values())
    return f"the file holds {leftover} arrays more than the model has." if leftover else None


def _legacy_layer_names(file):
    return [_text(name) for name in file.attrs["layer_names"]]


def _text(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


# Our layer names -> keras.applications' (stage s is their conv{s+1}; block parts 1..3, shortcut 0).
_NAME_RULES = [
    (re.compile(r"stem_(conv|bn)"), lambda m: f"conv1_{m[1]}"),
    (re.compile(r"stage(\d+)_block(\d+)_(conv|bn)(\d)"), lambda m: f"conv{int(m[1]) + 1}_block{m[2]}_{m[4]}_{m[3]}"),
    (re.compile(r"stage(\d+)_block(\d+)_shortcut_(conv|bn)"), lambda m: f"conv{int(m[1]) + 1}_block{m[2]}_0_{m[3]}"),
    (re.compile(r"stage(\d+)_block(\d+)_preact_bn"), lambda m: f"conv{int(m[1]) + 1}_block{m[2]}_preact_bn"),
]


def _their_name(name):
    for pattern, rename in _NAME_RULES:
        match = pattern.fullmatch(name)
        if match:
            return rename(match)
    return name  # post_bn, predictions


def _load_legacy_h5(model, path, *, keras_applications, new_classifier):
    with h5py.File(path, "r") as file:
        weighted = [name for name in _legacy_layer_names(file) if len(file[name].attrs["weight_names"])]

        def arrays_for(name):
            if name not in weighted:
                return None
            group = file[name]
            return [np.asarray(group[_text(weight)]) for weight in group.attrs["weight_names"]]

        def swap_stem_channels(layer_name, arrays):
            # keras.applications' v1 weights expect BGR input; our models take RGB, so the first
            # convolution reads its input channels in reverse order instead.
            if layer_name == "stem_conv":
                arrays[0] = arrays[0][:, :, ::-1, :]
            return arrays

        bgr = keras_applications and "post_bn" not in weighted
        _assign(
            model,
            arrays_for,
            weighted,
            describe=f"weights file {path}",
            name_map=_their_name if keras_applications else None,
            transform=swap_stem_channels if bgr else None,
            skip=("predictions",) if new_classifier else (),
        )


def assign_by_name(model, arrays, *, describe, skip=()):
    """Sets `model`'s layers from `arrays` ({layer name: weights}) of a model of ours; the layers in
    `skip` (e.g. "predictions", for a new classifier) keep their fresh values."""
    _assign(model, arrays.get, list(arrays), describe=describe, skip=skip)


def _assign(model, arrays_for, source_names, *, describe, name_map=None, transform=None, skip=()):
    """Sets every weighted layer of `model` from `arrays_for(source_name)`, checking that each exists
    with the right shapes and that the source holds nothing the model lacks."""
    used = set(skip)
    has_classifier = any(layer.name == "predictions" for layer in model.layers)
    for layer in model.layers:
        if not layer.weights or layer.name in skip:
            continue
        source_name = name_map(layer.name) if name_map else layer.name
        arrays = arrays_for(source_name)
        if arrays is None:
            hint = " (a file without classifier? build with include_top=False)" if layer.name == "predictions" else ""
            raise WeightsError(
                f"{describe} does not fit {model.name}: it has no layer {source_name!r} for layer {layer.name!r}{hint}."
            )
        expected = [tuple(weight.shape) for weight in layer.weights]
        found = [tuple(array.shape) for array in arrays]
        if expected != found:
            raise WeightsError(
                f"{describe} does not fit {model.name}: layer {layer.name!r} needs shapes {expected}, "
                f"the file's {source_name!r} holds {found}."
            )
        layer.set_weights(transform(layer.name, arrays) if transform else arrays)
        used.add(source_name)
    for name in source_names:
        if name not in used and (name != "predictions" or has_classifier):
            raise WeightsError(
                f"{describe} does not fit {model.name}: its layer {name!r} has no counterpart in the model "
                f"(the file is for another network or other options)."
            )
