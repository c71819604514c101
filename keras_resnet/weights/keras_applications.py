"""keras.applications' ImageNet weights (`weights="imagenet"`, downloaded once) and their .h5 files.

They fit our builder in their layout (LAYOUT): conv biases, batch-norm epsilon 1.001e-5, v1 stride
placement, their input normalization, and in v2 the downsampling in each stage's last block. Their
layer names map onto ours by rule (`their_name`).
"""

import os
import re

import h5py

from keras_resnet.errors import WeightsDownloadError
from keras_resnet.nets import specs
from keras_resnet.weights import assign, files

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
IMAGENET_CLASSES = specs.FAMILIES["imagenet"].classes
# Where downloaded weight files are kept; None: Keras' cache, $KERAS_HOME/models or ~/.keras/models.
CACHE_DIR = None

_COMMON_LAYOUT = {"conv_bias": True, "bn_epsilon": specs.FUSED_MIN_EPSILON, "plain": False, "shortcut": "B"}
LAYOUT = {
    "v1": {**_COMMON_LAYOUT, "version": "v1", "input_normalization": "caffe", "downsample_block": "first"},
    "v2": {**_COMMON_LAYOUT, "version": "v2", "input_normalization": "tf", "downsample_block": "last"},
}
# keras.applications' v2 networks end with this batch norm (pre-activation); v1 ones have none.
V2_FINAL_LAYER = "post_bn"


def claims(weights):
    """Whether `weights` name keras.applications' weights by name (a file is told by its contents)."""
    return isinstance(weights, str) and weights == "imagenet"


def required_layout(weights, *, spec, version):
    """The builder arguments "imagenet" or one of keras.applications' .h5 files needs.

    Args:
        weights: "imagenet" or the path of a keras.applications .h5 file (its layers say v1 or v2).
        spec: The specs.Spec of the network to build (checked for "imagenet" only).
        version: The version asked for with "imagenet" ("v1" or "v2"; None: "v1"); a file's own wins.

    Returns:
        The LAYOUT dict of the version.

    Raises:
        ValueError: keras.applications published no "imagenet" weights of this network and version.
    """
    if weights != "imagenet":
        with h5py.File(os.fspath(weights), "r") as file:
            return LAYOUT["v2" if V2_FINAL_LAYER in files.legacy_layer_names(file) else "v1"]
    version = version or "v1"
    if spec.family.name != "imagenet" or (spec.depth, version) not in IMAGENET_FILES:
        raise ValueError(
            f"weights='imagenet' exist for resnet50, resnet101 and resnet152, versions v1 and v2 "
            f"(keras.applications' files). Received: {specs.styled(spec.family.name)} resnet{spec.depth}, "
            f"version={version!r}."
        )
    return LAYOUT[version]


def load(model, weights, *, spec, version, include_top, classes):
    """Loads "imagenet" (downloaded) or a keras.applications .h5 file into `model`, built with `required_layout`.

    A different number of classes gets a new classifier on the pretrained network.

    Args:
        model: The Keras model to fill.
        weights: "imagenet" or the path of a keras.applications .h5 file.
        spec: The specs.Spec the model was built from (its depth picks the file to download).
        version: The model's version, "v1" or "v2" (picks the file to download).
        include_top: Whether the model has a classifier.
        classes: The model's number of classes: other than ImageNet's 1000, the classifier stays new.

    Raises:
        WeightsDownloadError: "imagenet" weights could not be downloaded.
        WeightsError: The file does not fit the model.
    """
    with_classifier = include_top and classes == IMAGENET_CLASSES
    if weights == "imagenet":
        path = download_imagenet(spec.depth, version, include_top=with_classifier)
    else:
        path = os.fspath(weights)
    arrays = files.read_legacy_h5(path)
    if V2_FINAL_LAYER not in arrays:
        # keras.applications' v1 weights expect BGR input; our models take RGB, so the first
        # convolution reads its input channels in reverse order instead.
        stem = arrays[their_name("stem_conv")]
        stem[0] = stem[0][:, :, ::-1, :]
    source = assign.by_layer_name(arrays, describe=f"weights file {path}", name_of=their_name, format="keras.applications")
    assign.assign(model, source, skip=(assign.CLASSIFIER,) if include_top and not with_classifier else ())


def download_imagenet(depth, version, *, include_top):
    """Path of keras.applications' ImageNet weight file, downloaded once into Keras' cache (~/.keras/models).

    The download is checked against the file's MD5.

    Args:
        depth: The network's depth, 50, 101 or 152.
        version: "v1" or "v2" (with `depth`, a key of IMAGENET_FILES).
        include_top: True for the file with the classifier, False for the one without ("_notop").

    Returns:
        The local path of the file.

    Raises:
        WeightsDownloadError: The file could not be downloaded; the message says where to put it by hand.
    """
    name, top_hash, notop_hash = IMAGENET_FILES[(depth, version)]
    import keras  # only to download: reading the files needs no TensorFlow

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


# Our layer names -> keras.applications' (stage s is their conv{s+1}; block parts 1..3, shortcut 0).
_NAME_RULES = [
    (re.compile(r"stem_(conv|bn)"), lambda m: f"conv1_{m[1]}"),
    (re.compile(r"stage(\d+)_block(\d+)_(conv|bn)(\d)"), lambda m: f"conv{int(m[1]) + 1}_block{m[2]}_{m[4]}_{m[3]}"),
    (re.compile(r"stage(\d+)_block(\d+)_shortcut_(conv|bn)"), lambda m: f"conv{int(m[1]) + 1}_block{m[2]}_0_{m[3]}"),
    (re.compile(r"stage(\d+)_block(\d+)_preact_bn"), lambda m: f"conv{int(m[1]) + 1}_block{m[2]}_preact_bn"),
]


def their_name(name):
    """keras.applications' name of our layer `name` (post_bn and predictions are the same)."""
    return assign.renamed(name, _NAME_RULES, otherwise=name)
