"""Tiny .tflite classifiers written in seconds, for what the trained fixtures cannot show: a few
classes, or a graph LiteRT's GPU accelerator computes wrongly."""

import numpy as np


def pointwise_classifier(*, classes=10, size=8, subsampled=False):
    """Pixels → a 1x1 convolution of stride 2 (or, subsampled, a 1x1 max-pool of stride 2 and the
    convolution at stride 1: the same function) → a sharp softmax classifier. As int8, LiteRT's GPU
    accelerator (ai-edge-litert 2.3.0) computes the strided form wrongly."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3), batch_size=1)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    if subsampled:
        x = keras.layers.MaxPooling2D(1, strides=2)(x)
    x = keras.layers.Conv2D(4, 1, strides=1 if subsampled else 2, use_bias=False)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, activation="softmax", kernel_initializer=keras.initializers.RandomNormal(stddev=3.0))(x)
    return keras.Model(inputs, outputs)


def write_int8(model, path, *, class_names, preprocessing=None, gpu=None, selftest=()):
    """`model` as a full-int8 .tflite with our metadata at `path`; returns the bare flatbuffer."""
    from keras_resnet.litert import targets
    from keras_resnet.runtime import metadata
    from keras_resnet.runtime.preprocessing import Preprocessing

    size = tuple(model.input_shape[1:3])
    rng = np.random.default_rng(1)
    calibration = [rng.uniform(0, 255, (1, *size, 3)).astype(np.float32) for _ in range(16)]
    content = targets.convert(model, "int8-ptq", image_size=size, representative_images=lambda: calibration)
    path.write_bytes(
        metadata.pack(content, class_names=class_names, preprocessing=preprocessing or Preprocessing(1.0), selftest=selftest, gpu=gpu)
    )
    return content
