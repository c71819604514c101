"""What kind of weights file a path holds, told from its contents, and the reader of Keras 2's .h5
weights files (keras.applications' and old files of ours)."""

import os
import zipfile

import h5py
import numpy as np

from keras_resnet.errors import WeightsError

# Every form weights take, for the errors that name them.
VALID_WEIGHTS = (
    "None (random), 'imagenet' (keras.applications), 'timm/NAME' (keras_resnet.weights.torch_checkpoints.CHECKPOINTS), "
    "the path of a weights file (.safetensors, .h5, .weights.h5), a .keras model of ours or a run directory of ours"
)
# keras.applications' files are Keras 2 .h5 files whose stem layer has this name.
KERAS_APPLICATIONS_STEM = "conv1_conv"


def file_format(path):
    """"keras" (a .keras model), "keras_weights_h5" (Keras 3's .weights.h5), "keras_applications"
    (keras.applications' .h5) or "legacy_h5" (another Keras 2 .h5: ours, before Keras 3);
    WeightsError for a missing file or one of none of these kinds."""
    if not os.path.isfile(path):
        what = "is not a regular file (a pipe or a device)" if os.path.exists(path) else "not found"
        raise WeightsError(f"Weights file {path} {what}. Valid weights: {VALID_WEIGHTS}.")
    if zipfile.is_zipfile(path):
        return "keras"
    try:
        with h5py.File(path, "r") as file:
            if "layer_names" in file.attrs:
                return "keras_applications" if KERAS_APPLICATIONS_STEM in legacy_layer_names(file) else "legacy_h5"
            if "layers" in file or "vars" in file:
                return "keras_weights_h5"
    except OSError:
        pass
    raise WeightsError(
        f"Cannot read weights file {path}: it is neither a .keras model, a .weights.h5 file nor a "
        f"keras.applications .h5 weights file."
    )


def read_legacy_h5(path):
    """{layer name: [arrays, in the layer's variable order]} of a Keras 2 .h5 weights file, for the
    layers that hold weights."""
    with h5py.File(path, "r") as file:
        arrays = {}
        for name in legacy_layer_names(file):
            group = file[name]
            if len(group.attrs["weight_names"]):
                arrays[name] = [np.asarray(group[_text(weight)]) for weight in group.attrs["weight_names"]]
        return arrays


def legacy_layer_names(file):
    return [_text(name) for name in file.attrs["layer_names"]]


def _text(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)
