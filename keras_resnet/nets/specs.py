"""The ResNet family as data: which blocks each depth stacks, and how a model name resolves.

Every network of the paper is one row here; `keras_resnet.nets.builder.ResNet` turns a row into layers.
"""

import dataclasses
import re

from keras_resnet.nets import normalization

# ImageNet-style networks (paper, Table 1): the block type and the number of blocks per stage.
# ResNet-200 is the depth of "Identity Mappings in Deep Residual Networks" (He et al., 2016b).
IMAGENET_BLOCKS_PER_STAGE = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}


@dataclasses.dataclass(frozen=True)
class Family:
    """What differs between the paper's ImageNet networks and its CIFAR-10 networks (Sec. 4.2)."""

    name: str
    stage_widths: tuple  # output channels of each stage's 3x3 convolutions
    stem: str  # "imagenet": 7x7/2 conv + 3x3/2 max-pool; "cifar": one 3x3 conv
    input_size: int
    classes: int
    shortcut: str  # the paper's default shortcut option for this family


def styled(family_name):
    """'an ImageNet-style', 'a CIFAR-style': a family in a sentence."""
    return {"imagenet": "an ImageNet-style", "cifar": "a CIFAR-style"}.get(family_name, f"a {family_name}-style")


FAMILIES = {
    "imagenet": Family("imagenet", (64, 128, 256, 512), "imagenet", 224, 1000, "B"),
    "cifar": Family("cifar", (16, 32, 64), "cifar", 32, 10, "A"),
}

BLOCK_EXPANSION = {"basic": 1, "bottleneck": 4}
VERSIONS = ("v1", "v1.5", "v2")
SHORTCUTS = ("A", "B", "C")

# The smallest epsilon TensorFlow's fused batch norm accepts as given (cuDNN's minimum, 1e-5, with
# a margin); smaller values fall back to Keras' unfused implementation.
FUSED_MIN_EPSILON = 1.001e-5

# A network's layout: the builder arguments that pretrained weights dictate (they were trained in
# it), with the builder's defaults; shortcut None: the family's (Family.shortcut). The one home of
# these fields and defaults: the builder, train.py's flags, the weights' formats and config.json's
# model section all take them from here.
LAYOUT_DEFAULTS = {
    "plain": False,
    "version": "v1.5",
    "shortcut": None,
    "input_normalization": "torch",
    "conv_bias": False,
    "bn_epsilon": FUSED_MIN_EPSILON,
    "downsample_block": "first",
}

_NAME_PATTERN = re.compile(r"^(resnet|plain)(\d+)(v1\.5|v1|v2)?$")


@dataclasses.dataclass(frozen=True)
class Spec:
    """One network: depth, family, block type and blocks per stage."""

    depth: int
    family: Family
    block: str
    blocks_per_stage: tuple

    @property
    def stage_channels(self):
        """Output channels of each stage (after the bottleneck's 4x expansion)."""
        expansion = BLOCK_EXPANSION[self.block]
        return tuple(width * expansion for width in self.family.stage_widths)


# The deepest CIFAR-style network built: the paper's deepest is ResNet-1202; beyond about twice that a
# graph of tens of thousands of layers takes minutes to build and no longer fits a GPU's memory.
MAX_CIFAR_DEPTH = 2402


def valid_depths_text():
    imagenet = ", ".join(str(depth) for depth in IMAGENET_BLOCKS_PER_STAGE)
    return f"ImageNet-style {imagenet}; CIFAR-style 6n+2 up to {MAX_CIFAR_DEPTH} (20, 32, 44, 56, 110, 1202, …)"


def spec_for_depth(depth, *, family=None):
    """The Spec of a depth. ImageNet-style depths win where both apply (50, 152, 200 are also 6n+2);
    pass family="cifar" to get the CIFAR-style network of such a depth."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"Unknown family {family!r}. Valid: {', '.join(map(repr, FAMILIES))}.")
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"Invalid depth. Received: depth={depth!r}. Valid: {valid_depths_text()}.")
    if family in (None, "imagenet") and depth in IMAGENET_BLOCKS_PER_STAGE:
        block, blocks = IMAGENET_BLOCKS_PER_STAGE[depth]
        return Spec(depth, FAMILIES["imagenet"], block, blocks)
    if family in (None, "cifar") and 8 <= depth <= MAX_CIFAR_DEPTH and (depth - 2) % 6 == 0:
        # 6n+2 layers: the first conv, 3 stages of n basic blocks (2 convs each), the classifier.
        blocks_per_stage = (depth - 2) // 6
        return Spec(depth, FAMILIES["cifar"], "basic", (blocks_per_stage,) * 3)
    wanted = f" for family={family!r}" if family else ""
    raise ValueError(f"Invalid depth{wanted}. Received: depth={depth}. Valid: {valid_depths_text()}.")


def parse_name(name):
    """Split a model name into (depth, plain, version): "resnet50" → (50, False, None),
    "plain56" → (56, True, None), "resnet101v2" → (101, False, "v2")."""
    match = _NAME_PATTERN.match(name.lower()) if isinstance(name, str) else None
    if not match:
        raise ValueError(
            f"Unknown model name. Received: {name!r}. Valid: 'resnetD' or 'plainD', optionally "
            f"followed by v1, v1.5 or v2 (e.g. 'resnet50', 'plain56', 'resnet101v2'), "
            f"where D is a depth: {valid_depths_text()}."
        )
    prefix, depth, version = match.groups()
    return int(depth), prefix == "plain", version


def model_names():
    """The named networks, for listings and help texts."""
    imagenet = [f"resnet{depth}" for depth in IMAGENET_BLOCKS_PER_STAGE]
    cifar = [f"resnet{depth}" for depth in (20, 32, 44, 56, 110, 1202)]
    return imagenet + cifar + [name.replace("resnet", "plain") for name in imagenet + cifar]


# What a .keras file's build arguments may hold, checked before a network is built from them (an
# edited file gets one line, not a traceback from deep inside the builder).
BUILD_ARGUMENT_CHOICES = {
    "family": tuple(FAMILIES),
    "version": VERSIONS,
    "shortcut": (*SHORTCUTS, None),
    "input_normalization": tuple(normalization.STYLES),
    "downsample_block": ("first", "last"),
    "pooling": (None, "avg", "max"),
}
BUILD_ARGUMENT_FLAGS = ("plain", "include_top", "conv_bias", "include_preprocessing", "zero_init_residual", "sync_batch_norm", "subsampled_pointwise")


def build_arguments_problem(arguments):
    """What is wrong with a saved model's build arguments (a dict read from a .keras file), or None:
    what a model is rebuilt from is checked before anything is built from it."""
    for field, choices in BUILD_ARGUMENT_CHOICES.items():
        if field in arguments and not any(arguments[field] == choice and type(arguments[field]) is type(choice) for choice in choices):
            return f"{field}={_short(arguments[field])}; valid: {', '.join(map(repr, choices))}"
    for field in BUILD_ARGUMENT_FLAGS:
        if field in arguments and not isinstance(arguments[field], bool):
            return f"{field}={_short(arguments[field])}; valid: True, False"
    try:
        spec_for_depth(arguments["depth"], family=arguments.get("family"))
    except ValueError as error:
        return str(error)
    shape = arguments.get("input_shape")
    if shape is not None and not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(d, int) and d > 0 for d in shape)):
        return f"input_shape={_short(shape)}; valid: [height, width, channels] of positive integers"
    classes = arguments.get("classes")
    if classes is not None and not (isinstance(classes, int) and not isinstance(classes, bool) and classes > 0):
        return f"classes={_short(classes)}; valid: a positive integer"
    return None


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
