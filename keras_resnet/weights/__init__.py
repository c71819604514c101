"""Weights for built models, from every source a user has. One module per format, each with the same
two functions — `required_layout(weights, *, spec, version)` (the builder arguments they dictate)
and `load(model, weights, *, spec, version, include_top, classes)` — over one assignment engine
(assign.py), dispatched here by `format_of`: by name where a format has names (`claims(weights)`:
"imagenet", "timm/NAME", .safetensors), then a model of ours, then a file by its contents:

- keras_applications: "imagenet" and keras.applications' .h5 files;
- torch_checkpoints: "timm/NAME" (timm's published checkpoints) and .safetensors files in timm's
  or torchvision's layout;
- own: .keras models and run directories of ours, their .weights.h5 files, our old Keras 2 .h5 files.
"""

import os

from keras_resnet.errors import CheckpointDownloadError, CheckpointError, WeightsDownloadError, WeightsError  # noqa: F401
from keras_resnet.weights import files, keras_applications, own, torch_checkpoints
from keras_resnet.weights.assign import check_values
from keras_resnet.weights.files import VALID_WEIGHTS

# Formats that claim weights by name, in order; then a model of ours; then a file by its contents.
_BY_NAME = (keras_applications, torch_checkpoints)
_BY_FILE_FORMAT = {"keras_applications": keras_applications, "legacy_h5": own, "keras": own, "keras_weights_h5": own}

own_model = own.own_model


def format_of(weights):
    """The module of the format that reads `weights` (not None); ValueError for a value that names
    no weights, WeightsError for a file that is missing or of no known kind."""
    for weights_format in _BY_NAME:
        if weights_format.claims(weights):
            return weights_format
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights must be one of: {VALID_WEIGHTS}. Received: weights={weights!r}.")
    if own.own_model(weights) is not None:
        return own
    return _BY_FILE_FORMAT[files.file_format(os.fspath(weights))]


def required_layout(weights, *, spec, version):
    """The builder arguments that some weights dictate.

    Args:
        weights: None, "imagenet", "timm/NAME" or a path (a weights file, a .keras model or a run directory of ours).
        spec: The specs.Spec of the network to build.
        version: The version asked for ("v1", "v1.5", "v2"), or None when none was.

    Returns:
        A dict of builder arguments (the fields of specs.LAYOUT_DEFAULTS); {} when they dictate none.

    Raises:
        ValueError: `weights` names no weights, or published weights do not exist for this network.
        WeightsError: A file is missing or of no known kind, or is for another network.
    """
    if weights is None:
        return {}
    return format_of(weights).required_layout(weights, spec=spec, version=version)


def load(model, weights, *, spec, version, include_top, classes):
    """Loads weights into a model built with `required_layout(weights)`.

    Args:
        model: The Keras model to fill.
        weights: "imagenet", "timm/NAME" or a path (a weights file, a .keras model or a run directory of ours).
        spec: The specs.Spec the model was built from.
        version: The model's version ("v1", "v1.5", "v2").
        include_top: Whether the model has a classifier.
        classes: The model's number of classes: published weights whose classifier has another
            width leave the model's classifier new (-1: always new).

    Raises:
        ValueError: `weights` names no weights.
        WeightsError: A file is missing, of no known kind, does not fit the model, or holds values no
            trained network has (CheckpointError for a timm/torchvision checkpoint).
        WeightsDownloadError: Published weights could not be downloaded.
    """
    format_of(weights).load(model, weights, spec=spec, version=version, include_top=include_top, classes=classes)
    check_values(model, f"weights {os.fspath(weights) if isinstance(weights, os.PathLike) else weights}")
