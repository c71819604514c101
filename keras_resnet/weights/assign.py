"""The one engine that fills a model's layers from arrays another program saved, whatever its format:
each format (keras_resnet.weights.keras_applications, .torch_checkpoints, .own) only says how its
names map onto our layer names and how its arrays become Keras' (`Source`); the engine checks that
every layer is filled with the right shapes and that nothing of the file is left over, and says
which layer or key does not fit when one does not.
"""

import dataclasses
from collections.abc import Callable

import numpy as np

from keras_resnet.errors import WeightsError

CLASSIFIER = "predictions"  # our classifier layer: the one layer a new model may leave out or replace


@dataclasses.dataclass(frozen=True)
class Source:
    """What a saved network holds, as the engine reads it.

    Attributes:
        describe: the source in an error message: "weights file PATH", "model PATH".
        keys: every key it holds — its layer names, or its tensors' keys "LAYER.VARIABLE" — each of
            which must fill a layer of the model (or belong to a skipped one).
        name_of: our layer name → the source's name for that layer (None: the format has none).
        read: (layer, the source's name) → {key: array} in Keras' variable order and layout, for
            the layer's variables; None where the source has no such name. It may raise the
            format's error with a more precise message (a tensor of the wrong kind).
        unit: what a key is, in messages: "layer", "tensor".
        error: the WeightsError subclass raised for this format.
        format: the format's name, in messages: "keras.applications", "timm/torchvision".
    """

    describe: str
    keys: tuple
    name_of: Callable
    read: Callable
    unit: str = "layer"
    error: type = WeightsError
    format: str = "keras_resnet"


def assign(model, source, *, skip=()):
    """Sets every weighted layer of a model from a Source.

    The layers named in `skip` keep their fresh values, and the source's keys for them are not
    required to fit; a model without a classifier ignores the source's.

    Args:
        model: The Keras model to fill.
        source: The Source of the saved network.
        skip: Names of layers to leave as they are (e.g. "predictions", for a new classifier).

    Raises:
        WeightsError: (the source's `error` subclass) A layer has no counterpart in the source or one of
            other shapes, or the source holds a key that no layer of the model takes.
    """
    skip = set(skip)
    if not any(layer.name == CLASSIFIER for layer in model.layers):
        skip.add(CLASSIFIER)
    used = set()
    for layer in model.layers:
        if not layer.weights or layer.name in skip:
            continue
        name = source.name_of(layer.name)
        if name is None:
            raise source.error(f"{source.describe} cannot fill layer {layer.name!r} of {model.name}: it has no {source.format} counterpart.")
        found = source.read(layer, name)
        if found is None:
            hint = " (a file without classifier? build with include_top=False)" if layer.name == CLASSIFIER else ""
            raise source.error(f"{source.describe} does not fit {model.name}: it has no {source.unit} {name!r} for layer {layer.name!r}{hint}.")
        arrays = list(found.values())
        expected = [tuple(variable.shape) for variable in layer.weights]
        held = [tuple(np.shape(array)) for array in arrays]
        if expected != held:
            raise source.error(
                f"{source.describe} does not fit {model.name}: layer {layer.name!r} needs shapes {expected}, "
                f"the file's {name!r} holds {held}."
            )
        layer.set_weights(arrays)
        used.add(name)  # a source keyed by layer names
        used.update(found)  # a source keyed by tensors
    skipped = {source.name_of(name) for name in skip} - {None}
    left = [
        key for key in source.keys
        if key not in used and not any(key == name or key.startswith(f"{name}.") for name in skipped)
    ]
    if left:
        more = f" ({len(left)} such;" if len(left) > 1 else " ("
        raise source.error(
            f"{source.describe} does not fit {model.name}: its {source.unit} {left[0]!r} has no counterpart in the model"
            f"{more} the file is for another network or other options)."
        )


def renamed(name, rules, *, otherwise=None):
    """Our layer `name` in a format's names, by the first rule whose pattern matches the whole name.

    Args:
        name: Our layer name, e.g. "stage2_block1_conv2".
        rules: The format's table of (compiled regular expression, function of the match returning its name) pairs.
        otherwise: What is returned where no pattern matches.

    Returns:
        The format's name of the layer, or `otherwise`.
    """
    for pattern, rename in rules:
        match = pattern.fullmatch(name)
        if match:
            return rename(match)
    return otherwise


def by_layer_name(arrays, *, describe, name_of=None, format="keras_resnet"):
    """A Source of arrays by layer name (a Keras model's layers, a Keras 2 .h5 file).

    Args:
        arrays: {layer name: [arrays, in the layer's variable order and Keras' layout]}.
        describe: The source in error messages, e.g. "weights file PATH".
        name_of: Our layer name → the source's name for it; None: the source uses our names.
        format: The format's name, in messages.

    Returns:
        A Source whose keys are the layer names of `arrays`.
    """
    return Source(
        describe=describe,
        format=format,
        keys=tuple(arrays),
        name_of=name_of or (lambda name: name),
        read=lambda layer, name: None if name not in arrays else {f"{name}.{index}": array for index, array in enumerate(arrays[name])},
    )


def check_values(model, source):
    """WeightsError naming the first of `model`'s variables that `source` filled with values no
    trained network has: NaN or infinity anywhere, a negative batch-norm variance."""
    import keras  # the model's Keras: this package's formats read files without it

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
