"""Weights of our own models: a .keras model built by this package (or a run directory, whose best
model it loads), a Keras 3 .weights.h5 file saved from one, and Keras 2 .h5 files of ours. A model
of ours dictates the layout it was built with (the fields of `specs.LAYOUT_DEFAULTS`); its layers carry our names."""

import os
import warnings

import h5py

from keras_resnet import internals
from keras_resnet.errors import UsageError, WeightsError
from keras_resnet.nets import specs
from keras_resnet.run import directory as run_dir
from keras_resnet.weights import assign, files



def own_model(weights):
    """The model of ours that `weights` names — a .keras file built by this package or a run
    directory (its best model) — as keras_resnet.run.directory.OwnModel; None for other weights.
    Raises WeightsError for a directory that is not a run of ours and a .keras file not built here."""
    if not isinstance(weights, (str, os.PathLike)) or weights == "imagenet" or str(weights).startswith("timm/"):
        return None
    try:
        own = run_dir.own_model(weights)
    except UsageError as error:
        raise WeightsError(f"{error} Valid weights: {files.VALID_WEIGHTS}.") from None
    if own is None and os.path.isdir(weights):
        raise WeightsError(f"{weights} is a directory but not a run directory (no config.json). Valid weights: {files.VALID_WEIGHTS}.")
    return own


def required_layout(weights, *, spec, version):
    """The layout a model of ours was built with; {} for a weights file (which records none).

    Args:
        weights: A .keras model or run directory of ours, or a weights file of ours.
        spec: Unused: the model records its own network (the formats' common signature).
        version: Unused, as `spec`.

    Returns:
        The model's build arguments that are fields of specs.LAYOUT_DEFAULTS, or {}.

    Raises:
        WeightsError: A directory that is not a run of ours, or a .keras file not built here.
    """
    own = own_model(weights)
    if own is None:
        return {}
    return {field: own.build_arguments[field] for field in specs.LAYOUT_DEFAULTS if field in own.build_arguments}


def load(model, weights, *, spec, version, include_top, classes):
    """Loads a model or weights file of ours into `model`, classifier included.

    Args:
        model: The Keras model to fill.
        weights: A .keras model or run directory of ours, or a .weights.h5 or Keras 2 .h5 file of ours.
        spec: Unused (the formats' common signature).
        version: Unused, as `spec`.
        include_top: Unused: the classifier is loaded whenever the model has one.
        classes: Unused, as `include_top`.

    Raises:
        WeightsError: The file is of no known kind or does not fit the model.
    """
    own = own_model(weights)
    path = own.path if own is not None else os.fspath(weights)
    file_format = files.file_format(path)
    if file_format == "legacy_h5":
        assign.assign(model, assign.by_layer_name(files.read_legacy_h5(path), describe=f"weights file {path}"))
    elif file_format == "keras":
        load_model_into(model, path, describe=f"weights file {path}")
    else:
        _load_weights_h5(model, path)


def load_model_into(model, path, *, describe, skip=()):
    """Sets a model's layers from a .keras model, layer by layer name.

    Args:
        model: The Keras model to fill.
        path: The .keras file.
        describe: The source in error messages, e.g. "model PATH".
        skip: Names of layers that keep their fresh values (e.g. "predictions", for a new classifier).

    Raises:
        WeightsError: A layer of the model has no counterpart of the same shapes in the file, or the
            file holds a layer the model lacks.
    """
    import keras

    source = keras.saving.load_model(path, compile=False)
    arrays = {layer.name: layer.get_weights() for layer in source.layers if layer.weights}
    assign.assign(model, assign.by_layer_name(arrays, describe=describe), skip=skip)


def _load_weights_h5(model, path):
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
