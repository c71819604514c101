"""What train.py's --weights name, resolved before anything trains: the layout they dictate (written
into the run's configuration), the classes their classifier knows and the image size they suit.

Sources: "imagenet" (keras.applications' files), "timm/NAME" (timm's published checkpoints), a
weights file (.safetensors in timm's/torchvision's layout, a keras.applications .h5, a .weights.h5 of
ours), or a model of ours — a .keras file or a run directory (its best.keras) — to continue from.
Loading them is keras_resnet.training.pretrained's work.
"""

import dataclasses
import os

from keras_resnet import weights as weights_lib
from keras_resnet.errors import UsageError
from keras_resnet.nets import specs
from keras_resnet.run import directory as run_dir
from keras_resnet.run.config import LAYOUT_FIELDS
from keras_resnet.weights import torch_checkpoints

# Every form --weights takes, for the errors that name them.
VALID_WEIGHTS = (
    "imagenet (keras.applications), timm/NAME (" + ", ".join(torch_checkpoints.CHECKPOINTS) + "), a weights file "
    "(.safetensors, .h5, .weights.h5), a .keras model of ours or a run directory of ours"
)
# keras.applications' ImageNet weights are evaluated at 224 px.
KERAS_APPLICATIONS_IMAGE_SIZE = 224
# The layout fields that have a flag: a flag that contradicts the weights is refused.
_FLAGS = {"version": "--version", "shortcut": "--shortcut"}


def published_image_size(weights):
    """The image size published weights' accuracy is quoted at (None: not published weights)."""
    if weights == "imagenet":
        return KERAS_APPLICATIONS_IMAGE_SIZE
    if torch_checkpoints.is_hub_name(weights):
        return torch_checkpoints.checkpoint(weights).evaluated_at
    return None


@dataclasses.dataclass(frozen=True)
class WeightsSource:
    weights: str  # what keras_resnet's builder and weights.load take: a name or an absolute path
    layout: dict  # ModelConfig fields the weights dictate
    class_names: tuple | None = None  # what its classifier was trained on, when known
    own_model: bool = False  # a .keras model of ours
    whole_file: bool = False  # a weights file of ours (.weights.h5, legacy .h5): loaded whole, classifier included
    # The size they were trained at (a model of ours) or their accuracy is quoted at (published
    # weights); None: not known. The default image size follows it (RunConfig.fit_to_data).
    image_size: int | None = None


def with_weights(config, *, output=None):
    """`config` (a RunConfig of resolve's, with training.weights) complete: the layout its weights
    dictate in its model section, their resolved source in `weights_source`. A run in `output` that
    already started keeps the layout it recorded: continuing does not go back to the weights, which
    may have moved since. UsageError for weights that cannot be used or contradict a flag."""
    stored = run_dir.RunDirectory(output) if output is not None else None
    if stored is not None and os.path.exists(stored.config) and stored.has_state():
        recorded = stored.read_config()
        if recorded.training.weights:
            return _with_layout(config, from_run_config(recorded))
    return _with_layout(config, resolve_source(config.training.weights, model=config.model))


def resolve_source(weights, *, model):
    """The WeightsSource of train.py's --weights value for the network `model` (a ModelConfig)."""
    spec = specs.spec_for_depth(specs.parse_name(model.name)[0], family=model.family)
    if weights == "imagenet" or torch_checkpoints.is_hub_name(weights):
        try:
            layout = weights_lib.required_layout(weights, spec=spec, version=model.version)
        except ValueError as error:
            raise UsageError(f"--weights {weights}: {error}") from None
        return WeightsSource(weights, _model_fields(layout), image_size=published_image_size(weights))
    try:
        own = run_dir.own_model(weights)
    except UsageError as error:
        raise UsageError(f"--weights {weights}: {error} Valid: {VALID_WEIGHTS}.") from None
    if own is not None:
        return _own_model(own, spec=spec, plain=specs.parse_name(model.name)[1], weights=weights)
    path = os.path.abspath(os.path.expanduser(weights))
    if os.path.isdir(path):
        raise UsageError(f"--weights {weights}: a directory, but not a run directory (no config.json). Valid: {VALID_WEIGHTS}.")
    if not os.path.isfile(path):
        what = "not a regular file (a pipe or a device)" if os.path.exists(path) else "no such file or directory"
        raise UsageError(f"--weights {weights}: {what}. Valid: {VALID_WEIGHTS}.")
    try:
        layout = weights_lib.required_layout(path, spec=spec, version=model.version)
        # keras.applications' and timm's files get a new classifier; ours are loaded whole.
        whole = not torch_checkpoints.is_checkpoint_file(path) and not layout
    except ValueError as error:
        raise UsageError(f"--weights {weights}: {error}") from None
    return WeightsSource(path, _model_fields(layout), whole_file=whole)


def from_run_config(stored):
    """The WeightsSource a run's stored configuration records: what resuming it needs, without
    going back to the weights (which may have moved since)."""
    layout = {field: getattr(stored.model, field) for field in LAYOUT_FIELDS}
    return WeightsSource(stored.training.weights, layout, image_size=stored.data.image_size)


def _with_layout(config, source):
    """`config` with the layout `source` dictates, its recorded weights and the source itself;
    UsageError where a chosen flag contradicts the weights."""
    changes = {}
    for field, value in source.layout.items():
        chosen = getattr(config.model, field)
        if field in _FLAGS and chosen is not None and chosen != value:
            raise UsageError(
                f"--weights {config.training.weights} were trained with {_FLAGS[field]} {value}. Received: "
                f"{_FLAGS[field]} {chosen}; leave it out."
            )
        changes[field] = value
    config = config.with_model(**changes)
    # Unset where the weights do not decide (a weights file of ours): the builder's defaults.
    defaults = {"version": specs.LAYOUT_DEFAULTS["version"], "shortcut": specs.FAMILIES[config.model.family].shortcut}
    config = config.with_model(**{field: value for field, value in defaults.items() if getattr(config.model, field) is None})
    training = dataclasses.replace(config.training, weights=source.weights)
    return dataclasses.replace(config, training=training, weights_source=source)


def _model_fields(layout):
    return {field: value for field, value in layout.items() if field in LAYOUT_FIELDS}


def _own_model(own, *, spec, plain, weights):
    """A model of ours (a run_dir.OwnModel): the layout its build arguments dictate and, inside a
    run directory, its classes and image size."""
    arguments = own.build_arguments
    if (arguments.get("depth"), arguments.get("family")) != (spec.depth, spec.family.name):
        raise UsageError(
            f"--weights {weights}: {own.path} is {specs.styled(arguments.get('family'))} resnet{arguments.get('depth')}. "
            f"Received: {specs.styled(spec.family.name)} resnet{spec.depth}; leave --model and --depth out to take its network."
        )
    if bool(arguments.get("plain")) != plain:
        kinds = {True: "a plain network", False: "a residual network"}
        raise UsageError(f"--weights {weights}: {own.path} is {kinds[bool(arguments.get('plain'))]}. Received: {kinds[plain]}.")
    layout = {field: arguments[field] for field in LAYOUT_FIELDS if field in arguments}
    class_names = own.config.class_names if own.config is not None else None
    return WeightsSource(own.path, layout, class_names=class_names, own_model=True, image_size=own.image_size)
