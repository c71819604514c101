"""What a model costs: parameters and multiply-accumulates per image."""

import math


def count_parameters(model):
    """(total, trainable) parameter counts."""
    trainable = sum(math.prod(weight.shape) for weight in model.trainable_weights)
    return model.count_params(), trainable


def count_macs(model):
    """Multiply-accumulates of one image through the convolutions and dense layers (batch norm,
    additions and pooling are negligible and, as in the paper's FLOP figures, not counted).

    Needs a fixed input size: build the model with input_shape=(height, width, channels).
    """
    height, width = model.input_shape[1:3]
    if height is None or width is None:
        raise ValueError(
            f"count_macs needs a fixed input size. Received: a model with input shape {model.input_shape}."
        )
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            _, out_height, out_width, _ = layer.output.shape
            kernel_height, kernel_width, in_per_group, out_channels = layer.kernel.shape
            total += out_height * out_width * kernel_height * kernel_width * in_per_group * out_channels
        elif kind == "Dense":
            total += math.prod(layer.kernel.shape)
    return total
