"""How raw RGB pixels in [0, 255] become network input, per convention.

The names are keras.applications' `preprocess_input` modes. Models built with
include_preprocessing=True (the default) do this inside, as one Rescaling layer; models built with
include_preprocessing=False expect `normalize(images, style)` done outside.
"""

import numpy as np

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)

# (scale, offset) per RGB channel: normalized = pixels * scale + offset.
STYLES = {
    # torchvision, timm, the Model Garden: (pixels / 255 - mean) / std.
    "torch": (
        tuple(1.0 / (255.0 * std) for std in IMAGENET_STD_RGB),
        tuple(-mean / std for mean, std in zip(IMAGENET_MEAN_RGB, IMAGENET_STD_RGB)),
    ),
    # keras.applications ResNet (v1): the mean pixel subtracted, no scaling. keras.applications also
    # swaps RGB to BGR; our models keep RGB and instead swap the input channels of the first
    # convolution's kernel when importing those weights (keras_resnet.weights).
    "caffe": ((1.0, 1.0, 1.0), (-123.68, -116.779, -103.939)),
    # keras.applications ResNetV2: pixels scaled to [-1, 1].
    "tf": ((1.0 / 127.5,) * 3, (-1.0,) * 3),
}


def check_style(style):
    if style not in STYLES:
        raise ValueError(f"Unknown input_normalization. Received: {style!r}. Valid: {', '.join(map(repr, STYLES))}.")
    return style


def normalize(images, style="torch"):
    """Normalizes RGB images with values in [0, 255] (channels last) the way a model built with
    `input_normalization=style, include_preprocessing=False` expects.

    >>> normalize(np.full((1, 2, 2, 3), 255.0), "tf").max()
    1.0
    """
    scale, offset = STYLES[check_style(style)]
    images = np.asarray(images, dtype=np.float32)
    return images * np.asarray(scale, np.float32) + np.asarray(offset, np.float32)
