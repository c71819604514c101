"""The one layer Keras lacks: zero channels appended to a tensor, for the paper's option-A shortcut.

Written once for Keras 3 and once more, from the same code, for tf_keras (Keras 2), because
quantization-aware training (tensorflow-model-optimization) only works on tf_keras models and
rebuilds the network there with this package's builder.
"""

import functools

import keras


def _make_channel_zero_pad(keras_module, pad):
    class ChannelZeroPad(keras_module.layers.Layer):
        """Appends `channels` all-zero channels: the parameter-free shortcut of option A (He et al.,
        Sec. 3.3), which widens the identity to the residual branch's width. Lowers to one PAD op in
        LiteRT."""

        def __init__(self, channels, **kwargs):
            super().__init__(**kwargs)
            if not isinstance(channels, int) or isinstance(channels, bool) or channels < 0:
                raise ValueError(f"channels must be a non-negative int. Received: channels={channels!r}")
            self.channels = channels

        def call(self, inputs):
            return pad(inputs, [[0, 0], [0, 0], [0, 0], [0, self.channels]])

        def compute_output_shape(self, input_shape):
            channels = input_shape[-1]
            return (*input_shape[:-1], None if channels is None else channels + self.channels)

        def get_config(self):
            return {**super().get_config(), "channels": self.channels}

    # Registration lets keras.saving.load_model rebuild saved models in safe mode once
    # keras_resnet is imported, with no custom_objects.
    return keras_module.utils.register_keras_serializable(package="keras_resnet")(ChannelZeroPad)


ChannelZeroPad = _make_channel_zero_pad(keras, keras.ops.pad)


@functools.cache
def channel_zero_pad_layer(keras_module):
    """The ChannelZeroPad class for `keras_module` (keras or tf_keras)."""
    if keras_module is keras:
        return ChannelZeroPad
    import tensorflow as tf

    return _make_channel_zero_pad(keras_module, tf.pad)
