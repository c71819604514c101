"""`build("resnet50")` and `ResNet(depth=50, ...)`: a spec row from specs.py, assembled from blocks.py."""

import dataclasses
import numbers
import sys

import keras

from keras_resnet import weights as weights_lib
from keras_resnet.nets import normalization, specs
from keras_resnet.nets.blocks import BlockOptions, Blocks
from keras_resnet.ranges import Range

DOWNSAMPLE_BLOCKS = ("first", "last")
POOLINGS = (None, "avg", "max")
MAX_CLASSES = 1_000_000  # a classifier of more outputs is no ResNet image classifier (ImageNet-21k: 21,843)
_RANGES = {
    "weight_decay": Range(float, 0, 1),
    "bn_momentum": Range(float, 0, 1),
    "bn_epsilon": Range(float, 0, 1, minimum_included=False),
}


@dataclasses.dataclass(frozen=True)
class ResNetArguments:
    """`ResNet`'s arguments with every default resolved and checked: everything that decides the
    layers. A ResNetModel keeps them (`build_arguments`, their JSON form, in its config), so that a
    saved model is rebuilt from them alone. `weights` and `keras_module` are not among them: they
    decide the values and the Keras, not the layers."""

    depth: int
    family: str
    plain: bool
    version: str
    shortcut: str
    input_normalization: str
    conv_bias: bool
    bn_epsilon: float
    downsample_block: str
    include_top: bool
    input_shape: tuple
    pooling: str | None
    classes: int
    classifier_activation: object  # a name, None (logits) or a callable
    include_preprocessing: bool
    zero_init_residual: bool
    weight_decay: float
    bn_momentum: float
    sync_batch_norm: bool
    subsampled_pointwise: bool
    name: str

    @property
    def spec(self):
        return specs.spec_for_depth(self.depth, family=self.family)

    def to_json(self):
        """The build arguments a ResNetModel records: JSON values (the input shape a list, the
        classifier activation by its registered name)."""
        arguments = dataclasses.asdict(self)
        arguments["input_shape"] = list(self.input_shape)
        if self.include_top:
            arguments["classifier_activation"] = _activation_name(self.classifier_activation)
        return arguments



def build(name=None, **kwargs):
    """Builds a ResNet by name: "resnet50", "plain56", "resnet101v2", "resnet20", …

    Names are `resnetD` or `plainD` (the same network without shortcuts), optionally followed by a
    version (v1, v1.5, v2). ImageNet-style depths are 18, 34, 50, 101, 152, 200; CIFAR-style depths
    are 6n+2 (20, 32, 44, 56, 110, 1202, …). Keyword arguments are those of `ResNet`.

    >>> model = build("resnet20", classes=10)
    >>> model = build("resnet50", weights="imagenet")  # keras.applications' weights, downloaded once
    >>> model = build("resnet18", weights="timm/resnet18.a1_in1k", classes=5)  # timm's, new classifier
    >>> model = build(weights="runs/resnet18-photos-20261130-101500")  # a run of ours: its network
    """
    if name is None:
        own = weights_lib.own_model(kwargs.get("weights"))
        if own is None:
            raise ValueError(
                "Name the network (build('resnet50'), build('resnet20'), …), or pass weights= a run directory or "
                f".keras model of ours, which name theirs. Received: weights={kwargs.get('weights')!r}."
            )
        name = own.network
        for key in ("family", "input_shape", "classes", "include_top", "include_preprocessing", "classifier_activation"):
            if key in own.build_arguments:
                value = own.build_arguments[key]
                kwargs.setdefault(key, tuple(value) if isinstance(value, list) else value)
    depth, plain, version = specs.parse_name(name)
    for key, from_name in (("plain", plain), ("version", version)):
        if from_name is not None and kwargs.get(key) not in (None, from_name):
            raise ValueError(f"The name {name!r} implies {key}={from_name!r}. Received: {key}={kwargs[key]!r}.")
        if from_name is not None:
            kwargs[key] = from_name
    kwargs.setdefault("name", name.lower())
    return ResNet(depth, **kwargs)


def ResNet(
    depth,
    *,
    family=None,
    plain=None,
    version=None,
    shortcut=None,
    include_top=True,
    weights=None,
    input_shape=None,
    pooling=None,
    classes=None,
    classifier_activation="softmax",
    include_preprocessing=True,
    input_normalization=None,
    zero_init_residual=False,
    weight_decay=0.0,
    conv_bias=None,
    bn_epsilon=None,
    bn_momentum=0.9,
    sync_batch_norm=False,
    downsample_block=None,
    subsampled_pointwise=False,
    name=None,
    keras_module=None,
):
    """Builds the ResNet of `depth` as a Keras functional model.

    Args:
        depth: 18, 34, 50, 101, 152, 200 (ImageNet-style) or 6n+2 (CIFAR-style).
        family: "imagenet" or "cifar"; by default ImageNet-style wherever that depth exists.
        plain: True builds the paper's plain network: the same layers and names, no shortcuts.
        version: "v1" (stride on a bottleneck's first 1x1, as in the paper), "v1.5" (stride on the
            3x3; default) or "v2" (pre-activation).
        shortcut: paper option "A" (parameter-free identity; CIFAR default), "B" (projection where
            the width changes; ImageNet default) or "C" (projection on every block).
        include_top: end with average pooling and a `classes`-way classifier.
        weights: None (random); "imagenet" (keras.applications' weights for resnet50/101/152 and
            their v2 forms); "timm/NAME", timm's published ImageNet checkpoints for every
            ImageNet depth but 200 (`keras_resnet.weights.torch_checkpoints.CHECKPOINTS`, e.g.
            "timm/resnet18.a1_in1k"); or a path: a `.safetensors` file in timm's or torchvision's
            layout, a keras.applications .h5 file, or a `.keras` / `.weights.h5` file of a model
            built by this package with the same arguments. Weights trained for 1000 classes get a
            new classifier when `classes` differs.
        input_shape: (height, width, channels); default the family's size, (224, 224, 3) or
            (32, 32, 3). Any size works, None for height and width too.
        pooling: with include_top=False, None (feature map), "avg" or "max".
        classes: number of classes; default 1000 (ImageNet-style) or 10 (CIFAR-style).
        classifier_activation: activation of the classifier ("softmax", or None for logits).
        include_preprocessing: True (default): the model takes RGB pixels in [0, 255] and normalizes
            them itself. False: it takes `keras_resnet.normalize(pixels, input_normalization)`.
        input_normalization: "torch" ((x/255 - mean)/std; default), "caffe" or "tf".
        zero_init_residual: start the last batch norm (v2: last conv) of every residual branch at 0.
        weight_decay: L2 weight decay of convolution and classifier kernels, as SGD weight decay.
        conv_bias: biases on convolutions, as keras.applications has them (default False).
        bn_epsilon: batch-norm epsilon (default 1.001e-5, as keras.applications: the smallest that
            TensorFlow's fused batch norm takes; smaller values run unfused, slower).
        bn_momentum: batch-norm moving-average momentum (default 0.9, i.e. PyTorch's 0.1).
        sync_batch_norm: batch statistics over the global batch of all replicas in distributed
            training (default False: per replica). Without effect on one device and at inference.
        downsample_block: "first" (default) downsamples in each stage's first block; "last" in the
            previous stage's last block (keras.applications' v2 layout).
        subsampled_pointwise: build each strided 1x1 convolution (projection shortcuts; v1's first
            bottleneck convolution) as a 1x1 max-pool with that stride (subsampling) followed by the
            convolution at stride 1: the same function and weights, one more layer without weights.
            The conversion to LiteRT builds so (default False), since LiteRT's GPU accelerator
            computes int8 strided 1x1 convolutions wrongly.
        name: the model's name.
        keras_module: keras (default) or tf_keras, to build the Keras 2 twin used for
            quantization-aware training.

    Raises:
        ValueError: for an invalid argument, saying what was received and what is valid.
    """
    keras_module = keras_module or keras
    spec = specs.spec_for_depth(depth, family=family)
    requested = {
        "plain": plain,
        "version": version,
        "shortcut": shortcut,
        "input_normalization": input_normalization,
        "conv_bias": conv_bias,
        "bn_epsilon": bn_epsilon,
        "downsample_block": downsample_block,
    }
    layout = _resolve_layout(requested, weights_lib.required_layout(weights, spec=spec, version=version), weights)
    layout["shortcut"] = _check_choice("shortcut", (layout["shortcut"] or spec.family.shortcut).upper(), specs.SHORTCUTS)
    _check_choice("version", layout["version"], specs.VERSIONS)
    _check_choice("downsample_block", layout["downsample_block"], DOWNSAMPLE_BLOCKS)
    normalization.check_style(layout["input_normalization"])
    _check_choice("pooling", pooling, POOLINGS)
    if include_top and pooling == "max":
        raise ValueError("include_top=True ends with average pooling. Received: pooling='max'; use include_top=False.")
    if include_top:
        keras_module.activations.get(classifier_activation)  # raises for an unknown activation
    if layout["plain"] and zero_init_residual:
        raise ValueError("zero_init_residual=True would zero every block of a plain network. Received: plain=True.")
    for argument, value in (("weight_decay", weight_decay), ("bn_momentum", bn_momentum), ("bn_epsilon", layout["bn_epsilon"])):
        _check_number(argument, value)
    arguments = ResNetArguments(
        depth=depth,
        family=spec.family.name,
        **layout,
        include_top=include_top,
        input_shape=_check_input_shape(input_shape, spec, include_preprocessing=include_preprocessing),
        pooling=pooling,
        classes=_check_classes(spec.family.classes if classes is None else classes),
        classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing,
        zero_init_residual=zero_init_residual,
        weight_decay=weight_decay,
        bn_momentum=bn_momentum,
        sync_batch_norm=sync_batch_norm,
        subsampled_pointwise=bool(subsampled_pointwise),
        name=name or f"{'plain' if layout['plain'] else 'resnet'}{depth}",
    )
    model = assemble(arguments, keras_module=keras_module)
    if weights is not None:
        weights_lib.load(model, weights, spec=spec, version=arguments.version, include_top=include_top, classes=arguments.classes)
    return model


def assemble(arguments, *, keras_module=keras):
    """The layers that `arguments` (ResNetArguments) describe, as a ResNetModel (with keras) or a
    plain functional model (with tf_keras, the twin for quantization-aware training)."""
    spec = arguments.spec
    blocks = Blocks(
        keras_module,
        BlockOptions(
            block=spec.block,
            version=arguments.version,
            shortcut=arguments.shortcut,
            plain=arguments.plain,
            conv_bias=arguments.conv_bias,
            bn_epsilon=arguments.bn_epsilon,
            bn_momentum=arguments.bn_momentum,
            sync_batch_norm=arguments.sync_batch_norm,
            zero_init_residual=arguments.zero_init_residual,
            weight_decay=arguments.weight_decay,
            subsampled_pointwise=arguments.subsampled_pointwise,
        ),
    )
    inputs = keras_module.Input(shape=arguments.input_shape, name="images")
    x = inputs
    if arguments.include_preprocessing:
        scale, offset = normalization.STYLES[arguments.input_normalization]
        x = keras_module.layers.Rescaling(list(scale), list(offset), name="normalize")(x)
    x = blocks.stem(x, kind=spec.family.stem, width=spec.family.stage_widths[0])
    strides = _block_strides(spec.blocks_per_stage, downsample_block=arguments.downsample_block)
    for stage, (width, out_channels, stage_strides) in enumerate(
        zip(spec.family.stage_widths, spec.stage_channels, strides), start=1
    ):
        for index, stride in enumerate(stage_strides, start=1):
            x = blocks.block(x, width=width, out_channels=out_channels, stride=stride, name=f"stage{stage}_block{index}")
    x = blocks.head(
        x, include_top=arguments.include_top, pooling=arguments.pooling, classes=arguments.classes,
        classifier_activation=arguments.classifier_activation,
    )
    allow_graph_depth(layers=8 * sum(spec.blocks_per_stage) + 30)  # a block has at most 8 layers in line
    if keras_module is keras:
        return ResNetModel(inputs, x, build_arguments=arguments.to_json())
    return keras_module.Model(inputs, x, name=arguments.name)


@keras.saving.register_keras_serializable(package="keras_resnet")
class ResNetModel(keras.Model):
    """A functional model built by `ResNet`, which knows how it was built.

    `model.build_arguments` are `ResNet`'s arguments with every default resolved; `get_config()`
    returns them, so a saved `.keras` file is rebuilt by the same builder, layer for layer, and
    loads in safe mode without custom objects (as keras-hub's and the Model Garden's backbones do).
    """

    def __init__(self, inputs, outputs, *, build_arguments, **kwargs):
        kwargs.setdefault("name", build_arguments["name"])
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.build_arguments = dict(build_arguments)

    def get_config(self):
        return {
            "build_arguments": dict(self.build_arguments),
            "name": self.name,
            "trainable": self.trainable,
            # The precision it was built under (mixed_bfloat16 when train.py chose it): loaded alike.
            "dtype_policy": self.dtype_policy.name,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        problem = specs.build_arguments_problem(config["build_arguments"]) if isinstance(config.get("build_arguments"), dict) else "not a dict"
        if problem:  # an edited file: refused before a network is built from it
            raise ValueError(f"its build arguments were changed ({problem})")
        arguments = {**config["build_arguments"], "name": config.get("name", config["build_arguments"]["name"])}
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(config.get("dtype_policy", previous.name))
        try:
            model = ResNet(**arguments)
        finally:
            keras.config.set_dtype_policy(previous)
        model.trainable = config.get("trainable", True)
        return model


def _activation_name(activation):
    """A classifier activation as its registered name, so that build_arguments are JSON."""
    if activation is None or isinstance(activation, str):
        return activation
    serialized = keras.activations.serialize(activation)
    return serialized if isinstance(serialized, str) else serialized.get("config", {}).get("name", serialized)


def from_build_arguments(arguments, *, keras_module=None):
    """The model that `arguments` describe: a ResNetModel's `build_arguments` (which hold the depth),
    or `build`'s keyword arguments with a model name (a keras_resnet 0.1.0 run's config.json)."""
    if "depth" in arguments:
        return ResNet(**arguments, keras_module=keras_module)
    return build(**arguments, keras_module=keras_module)


def allow_graph_depth(*, layers):
    """Keras walks, saves and loads functional graphs recursively, about 1.5 Python frames per layer
    in line: ResNet-1202 (4,213 layers) needs a recursion limit of some 6,000, not Python's 1,000."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 3 * layers + 1000))


def _block_strides(blocks_per_stage, *, downsample_block):
    """Stride of every block, stage by stage: stage 1 keeps the resolution, each later stage halves it,
    in its first block or (downsample_block="last") in the previous stage's last block."""
    strides = [[1] * blocks for blocks in blocks_per_stage]
    for stage in range(1, len(strides)):
        if downsample_block == "first":
            strides[stage][0] = 2
        else:
            strides[stage - 1][-1] = 2
    return strides


def _resolve_layout(requested, required, weights):
    layout = {}
    for key, value in requested.items():
        if key in required:
            if value is not None and value != required[key]:
                raise ValueError(
                    f"weights={weights!r} need {key}={required[key]!r} (the layout they were trained in). "
                    f"Received: {key}={value!r}."
                )
            value = required[key]
        # The layout's arguments default to None in the signatures so that a value that contradicts
        # the weights can be refused; unset, they take specs.LAYOUT_DEFAULTS.
        layout[key] = specs.LAYOUT_DEFAULTS[key] if value is None else value
    return layout


def _check_choice(argument, value, valid):
    if value not in valid:
        raise ValueError(f"Invalid {argument}. Received: {value!r}. Valid: {', '.join(map(repr, valid))}.")
    return value


def _check_classes(classes):
    if not isinstance(classes, numbers.Integral) or isinstance(classes, bool) or not 1 <= classes <= MAX_CLASSES:
        raise ValueError(f"classes must be an int from 1 to {MAX_CLASSES}. Received: classes={classes!r}.")
    return int(classes)


def _check_number(argument, value):
    bounds = _RANGES[argument]
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and bounds.contains(value)):
        raise ValueError(f"{argument} must be {bounds.text}. Received: {argument}={value!r}.")


def _check_input_shape(input_shape, spec, *, include_preprocessing):
    if input_shape is None:
        return (spec.family.input_size, spec.family.input_size, 3)
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if (
        shape is None
        or len(shape) != 3
        or not all(size is None or (_is_int(size) and size > 0) for size in shape[:2])
        or not _is_int(shape[2])
        or shape[2] < 1
    ):
        raise ValueError(
            f"input_shape must be (height, width, channels), channels last, with positive sizes "
            f"(None allowed for height and width). Received: input_shape={input_shape!r}."
        )
    shape = tuple(None if size is None else int(size) for size in shape)
    if include_preprocessing and shape[2] != 3:
        raise ValueError(
            f"include_preprocessing=True normalizes RGB images and needs 3 channels. "
            f"Received: input_shape={input_shape!r}; pass include_preprocessing=False for other inputs."
        )
    return shape


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
