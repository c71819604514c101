"""Our two layers against what they stand in for."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_resnet.nets.layers import BatchNormalization, ChannelZeroPad


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_computes_what_keras_batch_norm_computes(policy, rng):
    keras.mixed_precision.set_global_policy(policy)
    try:
        inputs = tf.constant(rng.normal(2.0, 3.0, (8, 6, 6, 5)).astype("float32"))
        ours = BatchNormalization(momentum=0.9, epsilon=1.001e-5)
        reference = keras.layers.BatchNormalization(momentum=0.9, epsilon=1.001e-5)
        for layer in (ours, reference):
            layer.build(inputs.shape)
        ours.set_weights([rng.uniform(0.5, 2, 5), rng.normal(0, 1, 5), rng.normal(0, 1, 5), rng.uniform(1, 3, 5)])
        reference.set_weights(ours.get_weights())
        tolerance = 1e-5 if policy == "float32" else 3e-2
        # Inference: the moving statistics.
        np.testing.assert_allclose(ours(inputs, training=False).numpy().astype("float32"), reference(inputs, training=False).numpy().astype("float32"), atol=tolerance)
        # Training: batch statistics, the same gradients, and moving averages updated.
        results = []
        for layer in (ours, reference):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                outputs = layer(inputs, training=True)
                loss = tf.reduce_sum(tf.cast(outputs, "float32") * tf.range(5, dtype="float32"))
            results.append((outputs, *tape.gradient(loss, [inputs, layer.gamma, layer.beta])))
        for mine, theirs in zip(*results):
            mine, theirs = tf.cast(mine, "float32").numpy(), tf.cast(theirs, "float32").numpy()
            # Sums over 288 positions: absolute error relative to the largest value.
            np.testing.assert_allclose(mine, theirs, atol=tolerance * 30 * max(1.0, np.abs(theirs).max()))
        np.testing.assert_allclose(ours.moving_mean.numpy(), reference.moving_mean.numpy(), rtol=tolerance)
        # The moving variance takes the unbiased batch variance (n / (n - 1), n = 8 * 6 * 6), as tf.keras and PyTorch.
        batch_variance = np.var(inputs.numpy(), axis=(0, 1, 2))
        np.testing.assert_allclose(
            ours.moving_variance.numpy() - reference.moving_variance.numpy(),
            0.1 * batch_variance * (288 / 287 - 1),
            rtol=0.05 if policy == "float32" else 1.0,
            atol=1e-6 if policy == "float32" else 5e-3,
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_fused_batch_norm_falls_back_where_the_kernel_does_not_apply(rng):
    inputs = tf.constant(rng.normal(size=(4, 3, 3, 2)).astype("float32"))
    synchronized = BatchNormalization(synchronized=True)
    tiny_epsilon = BatchNormalization(epsilon=1e-6)
    rank2 = BatchNormalization()
    for layer, data in ((synchronized, inputs), (tiny_epsilon, inputs), (rank2, tf.reshape(inputs, (4, 18)))):
        reference = keras.layers.BatchNormalization(epsilon=layer.epsilon)
        layer.build(data.shape)
        reference.build(data.shape)
        np.testing.assert_allclose(layer(data, training=True).numpy(), reference(data, training=True).numpy(), atol=1e-6)


def test_layers_serialize_under_their_registered_names():
    for layer in (BatchNormalization(momentum=0.8, name="bn"), ChannelZeroPad(3, name="pad")):
        config = keras.saving.serialize_keras_object(layer)
        assert config["registered_name"].startswith("keras_resnet>")
        rebuilt = keras.saving.deserialize_keras_object(config)
        assert type(rebuilt) is type(layer) and rebuilt.get_config() == layer.get_config()


def test_channel_zero_pad_appends_zero_channels(rng):
    inputs = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    outputs = ChannelZeroPad(5)(inputs).numpy()
    assert outputs.shape == (2, 3, 3, 9)
    np.testing.assert_array_equal(outputs[..., :4], inputs)
    assert not np.any(outputs[..., 4:])
    with pytest.raises(ValueError, match=r"channels must be a non-negative int. Received: channels=-1"):
        ChannelZeroPad(-1)
