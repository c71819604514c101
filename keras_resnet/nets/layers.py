"""Two layers: zero channels appended to a tensor (the paper's option-A shortcut), which Keras lacks,
and batch normalization through TensorFlow's fused kernel, which Keras 3 does not use.

ChannelZeroPad is written once for Keras 3 and once more, from the same code, for tf_keras (Keras 2),
because quantization-aware training (tensorflow-model-optimization) only works on tf_keras models and
rebuilds the network there with this package's builder. tf_keras' own BatchNormalization is fused.
"""

import functools

import keras

from keras_resnet.nets.specs import FUSED_MIN_EPSILON


def _make_channel_zero_pad(keras_module, ops):
    class ChannelZeroPad(keras_module.layers.Layer):
        """Appends `channels` all-zero channels: the parameter-free shortcut of option A (He et al.,
        Sec. 3.3), which widens the identity to the residual branch's width.

        Written as a concatenation with zeros rather than a pad: in LiteRT that is one
        CONCATENATION with a constant zero tensor, which the Edge TPU runs (it pads only along
        height and width, and an unsupported op sends the rest of the graph to the CPU)."""

        def __init__(self, channels, **kwargs):
            super().__init__(**kwargs)
            if not isinstance(channels, int) or isinstance(channels, bool) or channels < 0:
                raise ValueError(f"channels must be a non-negative int. Received: channels={channels!r}")
            self.channels = channels

        def call(self, inputs):
            shape = ops.shape(inputs)
            zeros = ops.zeros((*shape[:-1], self.channels), dtype=inputs.dtype)
            return ops.concatenate([inputs, zeros], axis=-1)

        def compute_output_shape(self, input_shape):
            channels = input_shape[-1]
            return (*input_shape[:-1], None if channels is None else channels + self.channels)

        def get_config(self):
            return {**super().get_config(), "channels": self.channels}

    # Registration lets keras.saving.load_model rebuild saved models in safe mode once
    # keras_resnet is imported, with no custom_objects.
    return keras_module.utils.register_keras_serializable(package="keras_resnet")(ChannelZeroPad)


ChannelZeroPad = _make_channel_zero_pad(keras, keras.ops)


@functools.cache
def channel_zero_pad_layer(keras_module):
    """The ChannelZeroPad class for `keras_module` (keras or tf_keras)."""
    if keras_module is keras:
        return ChannelZeroPad
    return _make_channel_zero_pad(keras_module, _TensorFlowOps)


class _TensorFlowOps:
    """The three keras.ops that ChannelZeroPad uses, for tf_keras (which has no keras.ops)."""

    @staticmethod
    def shape(tensor):
        import tensorflow as tf

        static, dynamic = tensor.shape, tf.shape(tensor)
        return tuple(dynamic[axis] if size is None else size for axis, size in enumerate(static))

    @staticmethod
    def zeros(shape, dtype):
        import tensorflow as tf

        return tf.zeros(tf.stack(shape) if any(tf.is_tensor(size) for size in shape) else shape, dtype=dtype)

    @staticmethod
    def concatenate(tensors, axis):
        import tensorflow as tf

        return tf.concat(tensors, axis=axis)




@keras.saving.register_keras_serializable(package="keras_resnet")
class BatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization computed by TensorFlow's fused kernel (FusedBatchNormV3).

    Keras 3 normalizes in several separate ops and, under mixed precision, casts every activation to
    float32 and back; the fused kernel reads bfloat16/float16 activations with float32 statistics
    directly. On a 16x56x56x256 bfloat16 tensor forward and backward take 19 ms instead of 73 ms on
    this project's CPU, which matters with 53 batch norms per ResNet-50 step.

    Same variables, configuration and outputs. The moving variance is updated with the unbiased
    batch variance, as in tf.keras and PyTorch. Where the fused kernel does not apply (other
    backends, synchronized statistics across replicas, masks, renormalization, inputs other than
    4-D channels-last, epsilon below FUSED_MIN_EPSILON) Keras' implementation runs.
    """

    def _fusable(self, inputs, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.synchronized
            and not self.renorm
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and self.epsilon >= FUSED_MIN_EPSILON
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels], "float32")
        beta = self.beta if self.center else tf.zeros([channels], "float32")
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, is_training=True
            )
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs,
                gamma,
                beta,
                mean=self.moving_mean,
                variance=self.moving_variance,
                epsilon=self.epsilon,
                is_training=False,
            )
        return tf.cast(outputs, self.compute_dtype)


def batch_normalization_layer(keras_module):
    """The BatchNormalization class to build with: ours for Keras 3, tf_keras' (already fused)."""
    return BatchNormalization if keras_module is keras else keras_module.layers.BatchNormalization
