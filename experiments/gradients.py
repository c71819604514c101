"""Why plain nets degrade: the gradient that reaches each block. For a trained run, the norm of the
loss gradient with respect to each block's convolution kernels, on one batch of training images, for
the network as initialised (same seed as the run) and as trained (its last.keras)."""

import json
import re

import keras
import numpy as np
import tensorflow as tf

import keras_resnet
from keras_resnet.data import pipeline, sources


def norms_at_start_and_end(run, *, batch):
    """{"blocks": [names, input to output], "initialisation": [norms], "trained": [norms], "steps": N}."""
    config = run.read_config()
    data, seed = config.data, config.training.seed
    source = sources.open_configured(data, seed=seed)
    images, labels = next(iter(pipeline.training_dataset(
        source,
        image_size=data.image_size,
        augmentation=data.augmentation,
        batch_size=batch,
        seed=seed,
        min_crop_area=data.min_crop_area,
    )))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")  # the gradients themselves, not bfloat16's rounding of them
    try:
        keras.utils.set_random_seed(seed)  # the run's own initialisation
        initial = keras_resnet.build(**config.model.build_arguments())
        trained = keras_resnet.build(**config.model.build_arguments())
        trained.set_weights(keras.saving.load_model(run.last_model, compile=False).get_weights())
    finally:
        keras.config.set_dtype_policy(previous)
    blocks, start = block_gradient_norms(initial, images, labels)
    _, end = block_gradient_norms(trained, images, labels)
    with open(run.metrics) as file:
        steps = json.load(file)["steps"]
    return {"blocks": blocks, "initialisation": start, "trained": end, "steps": steps}


def block_gradient_norms(model, images, labels):
    """(block names, L2 norms of d loss / d kernels per block) in the order of the layers: the stem,
    each residual (or plain) block, the classifier."""
    kernels = {}
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernels.setdefault(_block_of(layer.name), []).append(layer.kernel)
    loss_function = keras.losses.CategoricalCrossentropy()
    with tf.GradientTape() as tape:
        # Training mode, as the optimizer sees it: batch norm normalizes with the batch's statistics.
        loss = loss_function(labels, model(images, training=True))
    variables = [kernel for group in kernels.values() for kernel in group]
    gradients = dict(zip((id(v) for v in variables), tape.gradient(loss, variables)))
    names = list(kernels)
    norms = [
        float(np.sqrt(sum(float(tf.reduce_sum(tf.square(gradients[id(kernel)]))) for kernel in kernels[name])))
        for name in names
    ]
    return names, norms


def _block_of(layer_name):
    match = re.match(r"(stage\d+_block\d+)_", layer_name)
    if match:
        return match.group(1)
    return "head" if layer_name == "predictions" else "stem"
