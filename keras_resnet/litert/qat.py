"""Quantization-aware fine-tuning with tensorflow-model-optimization (TFMOT).

TFMOT 0.8.1 works only on tf_keras (Keras 2) models, so the network is built a second time, in
tf_keras, by this package's builder (`keras_module=tf_keras`), the trained weights are copied layer
by layer, and the two are checked to agree before anything is quantized.

Three kinds of layer need a hand in the twin, because TFMOT would leave them in float:
- the input normalization (a Rescaling layer): TFMOT does not quantize its constants (DEQUANTIZE,
  MUL, ADD, QUANTIZE in the .tflite);
- batch normalization that TFMOT cannot fold into the convolution before it (v2's pre-activation
  and final BN, whose input also feeds the shortcut): TFMOT's registry has no configuration for it,
  and quantizing only its output leaves the MUL inside it without a range.
Both are per-channel affine maps, x * scale + offset, at inference: each becomes a 1x1 depthwise
convolution holding that scale and offset, which TFMOT quantizes like any convolution (the BN's
statistics are frozen into it for the fine-tuning).
- ChannelZeroPad (the option-A shortcut) has no TFMOT configuration: its output is its input's
  quantized values next to zeros, so it is annotated to pass quantization through unchanged.
"""

import numpy as np

from keras_resnet import internals
from keras_resnet.litert.trained import ConversionError

# The range of the input quantizer: uint8 pixels map to themselves (scale 1, zero point 0), so a
# camera frame goes into the integer model as it is.
PIXEL_RANGE = (0.0, 255.0)
TWIN_TOLERANCE = 5e-4


def tf_keras_twin(trained):
    """The trained model's network in tf_keras with its weights, its Rescaling layer replaced by
    an equivalent depthwise convolution. Raises ConversionError when the twin does not reproduce
    the Keras 3 model's probabilities within TWIN_TOLERANCE."""
    import tf_keras

    from keras_resnet.nets.builder import from_build_arguments

    built = from_build_arguments(trained.build_arguments, keras_module=tf_keras)
    affine = set()

    def replace_affine(layer):
        if isinstance(layer, tf_keras.layers.Rescaling):
            affine.add(layer.name)
            return tf_keras.layers.DepthwiseConv2D(1, use_bias=True, name=layer.name)
        if isinstance(layer, tf_keras.layers.BatchNormalization) and not _foldable(layer):
            affine.add(layer.name)
            return tf_keras.layers.DepthwiseConv2D(1, use_bias=True, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    twin = tf_keras.models.clone_model(built, clone_function=replace_affine)
    keras_layers = {layer.name: layer for layer in trained.model.layers}
    for layer in twin.layers:
        original = keras_layers[layer.name]
        if layer.name in affine:
            scale, offset = _scale_and_offset(original)
            layer.set_weights([scale.reshape(1, 1, -1, 1), offset])
        elif original.weights:
            layer.set_weights(original.get_weights())
    return twin


def _scale_and_offset(layer):
    """(scale, offset) per channel of a Rescaling or an inference-mode BatchNormalization layer."""
    import keras

    if isinstance(layer, keras.layers.Rescaling):
        channels = layer.output.shape[-1]
        scale, offset = (np.broadcast_to(np.asarray(value, np.float32).reshape(-1), channels) for value in (layer.scale, layer.offset))
        return scale.copy(), offset.copy()
    mean, variance = (np.asarray(variable.numpy(), np.float64) for variable in (layer.moving_mean, layer.moving_variance))
    gamma = np.asarray(layer.gamma.numpy(), np.float64) if layer.scale else np.ones_like(mean)
    beta = np.asarray(layer.beta.numpy(), np.float64) if layer.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(variance + layer.epsilon)
    return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)


def check_twin(trained, twin, images):
    """Both models' probabilities on `images` must agree; returns the largest difference."""
    expected = trained.model.predict_on_batch(images)
    received = twin.predict_on_batch(images)
    difference = float(np.max(np.abs(expected - received)))
    if not difference <= TWIN_TOLERANCE:
        raise ConversionError(
            f"The tf_keras twin of {trained.name} disagrees with the Keras model by {difference:.2e} "
            f"(tolerance {TWIN_TOLERANCE}): cannot fine-tune it for int8-qat."
        )
    return difference


def quantization_aware(twin):
    """The twin with TFMOT's default 8-bit fake quantization on every layer; its weights kept."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    from keras_resnet.nets.layers import channel_zero_pad_layer

    pad_class = channel_zero_pad_layer(tf_keras)
    quantize = tfmot.quantization.keras
    configs = internals.tfmot_default_8bit_quantize_configs()

    def annotate(layer):
        if isinstance(layer, pad_class):
            return quantize.quantize_annotate_layer(layer, quantize_config=configs.NoOpQuantizeConfig())
        return quantize.quantize_annotate_layer(layer)

    annotated = tf_keras.models.clone_model(twin, clone_function=annotate)
    annotated.set_weights(twin.get_weights())
    with quantize.quantize_scope(
        {
            "ChannelZeroPad": pad_class,
            "NoOpQuantizeConfig": configs.NoOpQuantizeConfig,
        }
    ):
        model = quantize.quantize_apply(annotated)
    _pin_input_range(model)
    if "quant_normalize" in {layer.name for layer in model.layers}:
        _freeze(model.get_layer("quant_normalize"))
    return model


def _freeze(wrapper):
    """The input normalization is not learned: its gradient (pixels up to 255, summed over every
    position) is ~50 times its weights' size and throws fine-tuning off within a few steps."""
    internals.tfmot_freeze_wrapper(wrapper)


def _foldable(layer):
    """Whether TFMOT folds this batch normalization into the convolution before it: it does when
    it is that convolution's only consumer."""
    import tf_keras

    inbound = internals.tf_keras_producer(layer)
    return isinstance(inbound, tf_keras.layers.Conv2D) and internals.tf_keras_consumer_count(inbound) == 1


def _pin_input_range(model):
    """Start the input quantizer at the pixel range. TFMOT's input quantizer keeps the smallest and
    largest value it has seen, so with pixels in [0, 255] the range stays exactly that."""
    layer = internals.tfmot_input_quantizer(model)
    for variable in layer.weights:
        if variable.name.endswith("min:0") or "_min" in variable.name:
            variable.assign(PIXEL_RANGE[0])
        elif variable.name.endswith("max:0") or "_max" in variable.name:
            variable.assign(PIXEL_RANGE[1])


def calibrate_ranges(model, twin, batches):
    """Starts every activation quantizer at the range its layer's output really has.

    TFMOT starts them at [-6, 6] and follows the batch range by an exponential moving average
    (decay 0.999), so a short fine-tuning would clip activations that exceed 6 — a ResNet's do —
    and lose accuracy. The ranges start instead at the mean per-batch min and max of the float
    twin's outputs over `batches` (the same statistic the moving average tracks)."""
    import tf_keras

    layers = {layer.name: layer for layer in twin.layers}
    targets = []  # (variables to set, tensor whose range they take)
    for wrapper in model.layers:
        name = wrapper.name.removeprefix("quant_")
        if name not in layers or name == wrapper.name:
            continue
        scalars = [v for v in wrapper.weights if len(v.shape) == 0 and v.name.endswith(("min:0", "max:0"))]
        post = [v for v in scalars if "post_activation_m" in v.name or "output_m" in v.name]
        pre = [v for v in scalars if "pre_activation_m" in v.name]
        if post:
            targets.append((post, layers[name].output))
        if pre:
            # Quantized before a non-ReLU activation (the classifier's softmax): the logits' range.
            targets.append((pre, _without_activation(layers[name])(layers[name].input)))
    probe = tf_keras.Model(twin.input, [tensor for _, tensor in targets])
    lows, highs = [], []
    for images in batches:
        outputs = probe.predict_on_batch(images)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        lows.append([min(0.0, float(np.min(output))) for output in outputs])
        highs.append([max(0.0, float(np.max(output))) for output in outputs])
    low, high = np.mean(lows, axis=0), np.mean(highs, axis=0)
    for (variables, _), minimum, maximum in zip(targets, low, high):
        for variable in variables:
            variable.assign(minimum if variable.name.endswith("min:0") else maximum)
    return len(targets)


def _without_activation(layer):
    """A copy of `layer` (sharing its weights) that stops before its activation."""
    config = {**layer.get_config(), "activation": "linear", "name": f"{layer.name}_logits"}
    copy = layer.__class__.from_config(config)
    copy.build(layer.input.shape)
    copy.set_weights(layer.get_weights())
    return copy


def fine_tune(model, dataset, *, epochs, steps_per_epoch, learning_rate, momentum=0.9, verbose=1):
    """Quantization-aware fine-tuning: SGD with momentum at a small constant rate (the network is
    already trained; the rate only has to let weights settle onto the quantization grid)."""
    import tf_keras

    model.compile(
        optimizer=tf_keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum),
        loss=tf_keras.losses.CategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    history = model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=verbose)
    return {key: [float(value) for value in values] for key, values in history.history.items()}


def input_range(model):
    """The (min, max) the QAT model's input quantizer ends with."""
    layer = internals.tfmot_input_quantizer(model)
    values = {variable.name: float(variable.numpy()) for variable in layer.weights}
    low = next(value for name, value in values.items() if "min" in name)
    high = next(value for name, value in values.items() if "max" in name)
    return low, high
