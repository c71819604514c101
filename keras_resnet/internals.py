"""Every use of a library's private API, one small named function each.

Keras, TFMOT and LiteRT do not promise these names across versions; the pinned ones
(requirements.txt) have them, and tests/test_internals.py calls each function on the real library,
so an upgrade that moves one fails there, by name, rather than deep inside a training run. Each
library is imported only by the functions that need it.
"""

import contextlib
import io

# -- Keras 3: training under MultiWorkerMirroredStrategy (training/distribute.py) -------------------


def keras_replace_symbolic_build(model, function):
    """Makes `model` learn its input shapes before training with `function(iterator=None,
    data_batch=None)` instead of Keras' Trainer._maybe_symbolic_build (this model only)."""
    model._maybe_symbolic_build = function


def keras_symbolic_build(model, data_batch):
    """Keras' Trainer._symbolic_build: builds the model, its metrics and optimizer from one batch."""
    model._symbolic_build(data_batch=data_batch)


def keras_is_multi_worker_all_reduce(strategy):
    from keras.src.backend.tensorflow import trainer as keras_trainer

    return keras_trainer._collective_all_reduce_multi_worker(strategy)


@contextlib.contextmanager
def keras_reduce_per_replica_replaced(replacement):
    """Within the block, Keras' TensorFlow trainer reduces per-replica outputs with
    `replacement(values, original, strategy, reduction)`. Keras-wide (a module function), so it is
    put back when the block ends."""
    from keras.src.backend.tensorflow import trainer as keras_trainer

    original = keras_trainer.reduce_per_replica
    keras_trainer.reduce_per_replica = lambda values, strategy, reduction: replacement(values, original, strategy, reduction)
    try:
        yield
    finally:
        keras_trainer.reduce_per_replica = original


# -- Keras 3: network weights from a .weights.h5 file (weights/own.py) --------------------------------


def keras_load_network_weights(model, path):
    """Keras' load_weights for the network alone, never the optimizer: a file saved from a compiled,
    trained model carries its optimizer (its step count with it), one saved from a model that was
    never compiled carries none (which Keras' load_weights refuses for a compiled model)."""
    from keras.src.saving import saving_lib

    optimizer = getattr(model, "optimizer", None)
    saving_lib.load_weights_only(model, path, objects_to_skip=[optimizer] if optimizer is not None else None)


# -- Keras 3: a folder's index of pictures (data/sources.py) --------------------------------------


def keras_index_image_folder(folder, *, class_names, shuffle, seed):
    """The pictures in `folder`'s class folders as keras.utils.image_dataset_from_directory indexes
    them (its file formats, its order, its seeded shuffle), without the two decoding datasets that
    it also builds and that data/sources.py does not use (a tenth of a second at 4,000 files: a
    third of opening the folder).

    Args:
        folder: A folder with one subfolder of pictures per class.
        class_names: The class subfolders, in the order of their labels.
        shuffle: Whether the files are shuffled (with `seed`); False: in alphanumeric order.
        seed: The shuffle's seed.

    Returns:
        (paths, labels): lists of str and int.

    Raises:
        ValueError: `class_names` are not subfolders of `folder` (Keras' message).
    """
    from keras.src.utils import dataset_utils, image_dataset_utils

    paths, labels, _ = dataset_utils.index_directory(
        folder, "inferred", formats=image_dataset_utils.ALLOWLIST_FORMATS, class_names=class_names, shuffle=shuffle, seed=seed,
        verbose=False,
    )
    return list(paths), [int(label) for label in labels]


def keras_training_or_validation_split(items, *, validation_split, subset):
    """The part of `items` that image_dataset_from_directory(validation_split=…, subset=…) keeps.
    Keras prints "Using N files for training." (or validation) on stdout, as that call did.

    Args:
        items: The indexed files (keras_index_image_folder's order), a list.
        validation_split: The share of the files held out for validation.
        subset: "training" or "validation".

    Returns:
        The list of the items in that part.
    """
    from keras.src.utils import dataset_utils

    return dataset_utils.get_training_or_validation_split(items, None, validation_split, subset)[0]


# -- Keras 3: BackupAndRestore (training/callbacks.py) ----------------------------------------------


def backup_weights_paths(callback):
    """(the backup's weights file, the previous backup kept while the next is written)."""
    return callback._weights_path, callback._prev_weights_path


def backup_load(callback):
    """Loads the backup into the callback's model (weights and optimizer state)."""
    callback._load_model()
    # Keras would let the epoch it recorded override fit()'s initial_epoch; the trainer plans
    # epochs from the optimizer's step instead.
    callback.model._initial_epoch = None


# training/callbacks.py also overrides one private hook in each of these two callbacks:
# `_save_model`, which both call to write their file (StepBackup and AtomicModelCheckpoint write it
# atomically). tests/test_internals.py checks that fit() still reaches it.


def checkpoint_file_path(callback, epoch, batch, logs):
    """The file keras.callbacks.ModelCheckpoint would write now (its `filepath`, formatted).

    Args:
        callback: The keras.callbacks.ModelCheckpoint (or subclass) whose `filepath` is formatted.
        epoch: The epoch's 0-based index (Keras formats `{epoch}` as `epoch + 1`).
        batch: The batch's 0-based index in the epoch, or None when saving at the end of an epoch.
        logs: The metrics that Keras passed to the callback (the names `filepath` may use).

    Returns:
        The path, a str.
    """
    return callback._get_file_path(epoch, batch, logs)


def checkpoint_should_save(callback, epoch, batch, logs, path):
    """ModelCheckpoint's own decision (save_best_only, monitor, initial_value_threshold).

    It also records a new best in the callback.

    Args:
        callback: The keras.callbacks.ModelCheckpoint (or subclass) that decides.
        epoch: The epoch's 0-based index.
        batch: The batch's 0-based index in the epoch, or None when saving at the end of an epoch.
        logs: The metrics that Keras passed to the callback (the monitored one among them).
        path: The file it would write (from `checkpoint_file_path`), named in its verbose messages.

    Returns:
        True if the model should be saved now.
    """
    return callback._should_save_model(epoch, batch, logs, path)


# -- TFMOT 0.8.1 and tf_keras (litert/qat.py) -------------------------------------------------------


def tfmot_default_8bit_quantize_configs():
    """TFMOT's module of default 8-bit QuantizeConfigs (NoOpQuantizeConfig, …): not exported."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import default_8bit_quantize_configs

    return default_8bit_quantize_configs


def tfmot_freeze_wrapper(wrapper):
    """Makes a QuantizeWrapperV2's weights non-trainable. It copies its layer's trainable weights
    into its own list when it builds, so the layer's `trainable` flag no longer reaches them."""
    frozen = list(wrapper._trainable_weights)  # the kernel (listed twice) and the bias
    wrapper._trainable_weights = []
    listed = {id(weight) for weight in wrapper._non_trainable_weights}
    wrapper._non_trainable_weights.extend({id(weight): weight for weight in frozen if id(weight) not in listed}.values())
    wrapper.layer.trainable = False


def tfmot_input_quantizer(model):
    """TFMOT's QuantizeLayer after the input: named quantize_layer, _1, … as tf_keras counts, and
    not in TFMOT's public API, so found by its type's name."""
    return next(layer for layer in model.layers if type(layer).__name__ == "QuantizeLayer")


def tf_keras_producer(layer):
    """The layer whose output a tf_keras functional layer takes (its first inbound node)."""
    return layer._inbound_nodes[0].inbound_layers


def tf_keras_consumer_count(layer):
    """How many layers take a tf_keras functional layer's output."""
    return len(layer._outbound_nodes)


# -- LiteRT 2.3 (litert/inspection.py) ---------------------------------------------------------------


def litert_operators(interpreter):
    """The operators of an interpreter's graph: [{"op_name", "inputs", "outputs", …}]."""
    return interpreter._get_ops_details()


def litert_analyzer_report(content):
    """The text that tf.lite.experimental.Analyzer prints for a .tflite model with its GPU
    compatibility check: an experimental API whose only output is that text (Op#N lines, "GPU
    COMPATIBILITY WARNING" lines, "looks compatible with GPU delegate"), which inspection.py parses."""
    import tensorflow as tf

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        tf.lite.experimental.Analyzer.analyze(model_content=bytes(content), gpu_compatibility=True)
    return text.getvalue()
