"""Every ResNet of "Deep Residual Learning for Image Recognition" (He et al., 2016) in Keras 3.

>>> import keras_resnet
>>> model = keras_resnet.build("resnet20", classes=10)
>>> model = keras_resnet.build("plain56", classes=10)   # the same network without shortcuts
"""

from keras_resnet.quiet import import_tensorflow_quietly

import_tensorflow_quietly()  # before anything imports TensorFlow; see quiet.py

from keras_resnet.complexity import count_macs, count_parameters  # noqa: E402
from keras_resnet.layers import ChannelZeroPad  # noqa: E402
from keras_resnet import model  # noqa: E402
from keras_resnet.model import ResNet, build  # noqa: E402
from keras_resnet.normalization import normalize  # noqa: E402
from keras_resnet.specs import model_names, parse_name, spec_for_depth  # noqa: E402
from keras_resnet.weights import WeightsDownloadError, WeightsError  # noqa: E402

# Loading a saved model needs the recursion depth that building it needed: allow up to ResNet-1202.
model.allow_graph_depth(layers=5000)

__version__ = "0.1.0"

__all__ = [
    "ChannelZeroPad",
    "ResNet",
    "WeightsDownloadError",
    "WeightsError",
    "build",
    "count_macs",
    "count_parameters",
    "model_names",
    "normalize",
    "parse_name",
    "spec_for_depth",
]
