"""The LiteRT targets, as data, and their conversion with TensorFlow's converter.

Every model has a fixed batch of 1: LiteRT.js and the Edge TPU need static shapes. Float models take
float32 pixels in [0, 255]; integer models take uint8 pixels (input scale 1, zero point 0: camera
frames as they are) and output uint8 scores (probability = score / 256).
"""

import contextlib
import dataclasses
import io
import warnings

from keras_resnet.quiet import native_stderr_silenced


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    description: str
    integer: bool  # uint8 in and out, every tensor between them integer
    float16_weights: bool = False
    dynamic_range: bool = False
    needs_training_data: bool = False
    quantization_aware: bool = False


TARGETS = {
    target.name: target
    for target in (
        Target("fp32", "reference float model", integer=False),
        Target("gpu", "float16 weights, float input/output: the mobile GPU delegate", integer=False, float16_weights=True),
        Target("dynamic", "dynamic-range int8 weights, float activations", integer=False, dynamic_range=True),
        Target("int8-ptq", "full int8 by post-training quantization", integer=True, needs_training_data=True),
        Target(
            "int8-qat",
            "full int8 after quantization-aware fine-tuning: Coral / Edge TPU",
            integer=True,
            needs_training_data=True,
            quantization_aware=True,
        ),
    )
}


def parse_targets(text):
    """"all" or a comma-separated list of target names, in TARGETS' order. Raises ValueError."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return list(TARGETS)
    unknown = [name for name in names if name not in TARGETS]
    if unknown or not names:
        raise ValueError(f"Unknown --targets {','.join(unknown) or repr(text)}. Valid: all or a list of {', '.join(TARGETS)}.")
    return [name for name in TARGETS if name in names]


def file_name(model_name, target):
    return f"{model_name}_{target}.tflite"


def convert(model, target, *, image_size, representative_images=None):
    """The .tflite bytes of `model` (Keras 3, or the tf_keras QAT model for int8-qat) for `target`.
    `representative_images`: a callable returning an iterable of float32 [1, H, W, 3] pixel
    batches, for int8-ptq's calibration."""
    import tensorflow as tf  # here, so that the table above serves command-line help without it

    target = TARGETS[target]
    converter = tf.lite.TFLiteConverter.from_keras_model(_batch_of_one(model, image_size))
    if target.float16_weights:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif target.dynamic_range:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif target.integer:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if not target.quantization_aware:
            # The calibrator sees a white frame first: the input range then ends at exactly 255,
            # so uint8 pixels are the input's quantized values (scale 1, zero point 0).
            white = tf.fill([1, *image_size, 3], 255.0).numpy()
            converter.representative_dataset = lambda: ([images] for images in (white, *representative_images()))
            # Refuse any op without an integer kernel instead of leaving it in float. (QAT models
            # carry their ranges in fake-quant ops; inspection checks them instead.)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    # The converter prints every captured tensor on stdout; its verdict comes as an exception. It
    # also warns that a uint8 input has no "statistics": the input range is in the model already.
    with contextlib.redirect_stdout(io.StringIO()), native_stderr_silenced(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        return converter.convert()


def _batch_of_one(model, image_size):
    """The same layers (shared weights) behind an input of batch size 1."""
    keras_module = _keras_module_of(model)
    inputs = keras_module.Input((*image_size, 3), batch_size=1, name="images")
    return keras_module.Model(inputs, model(inputs, training=False), name=model.name)


def _keras_module_of(model):
    if type(model).__module__.startswith("tf_keras"):
        import tf_keras

        return tf_keras
    import keras

    return keras
