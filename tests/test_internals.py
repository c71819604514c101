"""keras_resnet/internals.py against the pinned Keras, TFMOT and LiteRT: each private name the
package relies on still exists and still means what it meant. An upgrade that changes one fails
here, by name."""

import os
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resnet
from keras_resnet import internals
from keras_resnet.training.callbacks import AtomicModelCheckpoint, StepBackup, StepCounter, saved_model_step


def test_keras_symbolic_build_hooks():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1), "mse", metrics=["mae"])
    seen = []

    def build(iterator=None, data_batch=None):
        seen.append(data_batch is not None or iterator is not None)
        internals.keras_symbolic_build(model, data_batch or (np.zeros((4, 3)), np.zeros((4, 2)), None))

    internals.keras_replace_symbolic_build(model, build)
    model.fit(np.zeros((8, 3)), np.zeros((8, 2)), epochs=1, batch_size=4, verbose=0)
    assert seen and all(seen)  # fit() asked the replacement, which built the model through Keras
    assert model.optimizer.built and model.built


def test_keras_reduce_per_replica_is_replaced_only_inside_the_block():
    from keras.src.backend.tensorflow import trainer as keras_trainer

    original = keras_trainer.reduce_per_replica
    calls = []

    def replacement(values, original_function, strategy, reduction):
        calls.append(reduction)
        return original_function(values, strategy, reduction)

    strategy = tf.distribute.get_strategy()
    with internals.keras_reduce_per_replica_replaced(replacement):
        assert keras_trainer.reduce_per_replica is not original
        assert keras_trainer.reduce_per_replica(tf.constant(1.0), strategy, "auto").numpy() == 1.0
    assert keras_trainer.reduce_per_replica is original and calls == ["auto"]
    assert internals.keras_is_multi_worker_all_reduce(strategy) is False


def test_backup_internals_save_and_restore_the_step(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.fit(np.ones((12, 3)), np.ones((12, 2)), epochs=1, batch_size=4, verbose=0)
    backup = StepBackup(str(tmp_path / "backup"), save_every_steps=1, counter=StepCounter(3))
    backup.set_model(model)
    backup.save_now()
    weights, previous = internals.backup_weights_paths(backup)
    assert weights.endswith("latest.weights.h5") and previous == f"{weights}.bkp"
    backup.save_now()  # renamed over the first: no copy beside it, no temporary file left
    assert os.listdir(tmp_path / "backup") == ["latest.weights.h5"]
    expected = [weight.numpy() for weight in model.weights]
    model.fit(np.ones((12, 3)), np.ones((12, 2)), epochs=1, batch_size=4, verbose=0)
    backup.counter.step = 6
    assert backup.restore() == 3 and backup.counter.step == 3
    for weight, value in zip(model.weights, expected):
        np.testing.assert_array_equal(weight.numpy(), value)
    assert model._initial_epoch is None


def test_fit_still_saves_through_the_hooks_the_atomic_callbacks_override(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    counter = StepCounter()
    backup = StepBackup(str(tmp_path / "backup"), save_every_steps=1, counter=counter)
    last = AtomicModelCheckpoint(str(tmp_path / "last.keras"), counter=counter)
    model.fit(np.ones((4, 3)), np.ones((4, 2)), epochs=1, batch_size=2, verbose=0, callbacks=[counter, backup, last])
    assert backup.saved_step == 2 and sorted(os.listdir(tmp_path)) == ["backup", "last.keras"]
    assert os.listdir(tmp_path / "backup") == ["latest.weights.h5"]
    # The step rides in the .keras file's metadata.json: still Keras' three entries (a fourth would
    # make Keras unpack the whole model to a temporary folder on every load), and it loads as written.
    assert saved_model_step(tmp_path / "last.keras") == 2
    with zipfile.ZipFile(tmp_path / "last.keras") as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
    assert keras.saving.load_model(tmp_path / "last.keras").optimizer.iterations.numpy() == 2


def test_checkpoint_internals_name_the_file_and_keep_the_best(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "best-{epoch}.keras"), monitor="val_accuracy", mode="max", save_best_only=True, initial_value_threshold=0.5
    )
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"val_accuracy": 0.1})  # as in fit(): below the threshold, nothing saved
    assert os.listdir(tmp_path) == []
    path = internals.checkpoint_file_path(checkpoint, 2, None, {"val_accuracy": 0.4})
    assert path == str(tmp_path / "best-3.keras")
    assert not internals.checkpoint_should_save(checkpoint, 2, None, {"val_accuracy": 0.4}, path)
    assert internals.checkpoint_should_save(checkpoint, 2, None, {"val_accuracy": 0.6}, path)
    assert not internals.checkpoint_should_save(checkpoint, 3, None, {"val_accuracy": 0.55}, path)  # 0.6 is the best now


def test_tfmot_internals_on_a_quantized_resnet():
    import tensorflow_model_optimization as tfmot
    import tf_keras

    twin = keras_resnet.ResNet(8, classes=3, input_shape=(16, 16, 3), shortcut="B", include_preprocessing=False, keras_module=tf_keras)
    configs = internals.tfmot_default_8bit_quantize_configs()
    assert hasattr(configs, "NoOpQuantizeConfig")
    first_bn = twin.get_layer("stem_bn")
    producer = internals.tf_keras_producer(first_bn)
    assert producer.name == "stem_conv" and internals.tf_keras_consumer_count(producer) == 1
    quantized = tfmot.quantization.keras.quantize_model(
        tf_keras.models.clone_model(twin, clone_function=lambda layer: layer.__class__.from_config(layer.get_config()))
    )
    assert type(internals.tfmot_input_quantizer(quantized)).__name__ == "QuantizeLayer"
    wrapper = next(layer for layer in quantized.layers if layer.name == "quant_stem_conv")
    trainable = len(wrapper.trainable_weights)
    assert trainable > 0
    internals.tfmot_freeze_wrapper(wrapper)
    assert wrapper.trainable_weights == [] and len(wrapper.non_trainable_weights) >= trainable


def test_litert_operators_of_a_converted_model():
    from ai_edge_litert import interpreter as litert

    from keras_resnet.litert import targets

    keras.config.set_dtype_policy("float32")
    content = targets.convert(keras_resnet.build("resnet8", input_shape=(16, 16, 3)), "fp32", image_size=(16, 16))
    interpreter = litert.Interpreter(model_content=content)
    interpreter.allocate_tensors()
    operators = internals.litert_operators(interpreter)
    assert {"CONV_2D", "ADD", "FULLY_CONNECTED", "SOFTMAX"} <= {op["op_name"] for op in operators}
    assert all({"op_name", "inputs", "outputs"} <= set(op) for op in operators)
    report = internals.litert_analyzer_report(content)
    assert "Op#0" in report and "looks compatible with GPU delegate" in report, report[:500]


def test_network_weights_load_without_the_optimizer(tmp_path):
    def small(compiled):
        keras.utils.set_random_seed(int(compiled))
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        if compiled:
            model.compile(optimizer="sgd", loss="mse")
        return model

    trained = small(compiled=True)
    trained.fit(np.ones((8, 4)), np.ones((8, 3)), epochs=1, batch_size=4, verbose=0)
    trained.save_weights(tmp_path / "trained.weights.h5")
    target = small(compiled=True)
    target.fit(np.ones((4, 4)), np.ones((4, 3)), epochs=1, batch_size=4, verbose=0)  # its optimizer at step 1
    internals.keras_load_network_weights(target, tmp_path / "trained.weights.h5")
    np.testing.assert_array_equal(target.layers[0].kernel.numpy(), trained.layers[0].kernel.numpy())
    assert int(target.optimizer.iterations.numpy()) == 1  # not the file's 2
    # A file without an optimizer into a compiled model (Keras' own load_weights refuses it).
    small(compiled=False).save_weights(tmp_path / "bare.weights.h5")
    internals.keras_load_network_weights(target, tmp_path / "bare.weights.h5")
    np.testing.assert_array_equal(target.layers[0].kernel.numpy(), small(compiled=False).layers[0].kernel.numpy())


@pytest.mark.parametrize("name", ["_maybe_symbolic_build", "_symbolic_build"])
def test_keras_model_still_has(name):
    assert callable(getattr(keras.Model, name, None)), f"keras {keras.__version__}: Model.{name} is gone"


def test_the_folder_index_is_image_dataset_from_directorys_own(tmp_path):
    for number in range(23):
        folder = tmp_path / ("cats", "dogs", "owls")[number % 3]
        folder.mkdir(exist_ok=True)
        (folder / f"{number}.{('jpg', 'png', 'jpeg')[number % 3]}").write_bytes(b"")  # Keras indexes by name only
    (tmp_path / "dogs" / "notes.txt").write_text("not a picture")
    classes = ["owls", "cats", "dogs"]  # a given order is the labels' order
    for shuffle, seed in ((True, 3), (False, None)):
        paths, labels = internals.keras_index_image_folder(str(tmp_path), class_names=classes, shuffle=shuffle, seed=seed)
        options = dict(labels="inferred", label_mode="int", class_names=classes, batch_size=None, shuffle=shuffle, seed=seed, verbose=False)
        keras_dataset = keras.utils.image_dataset_from_directory(str(tmp_path), **options)
        assert paths == keras_dataset.file_paths and len(paths) == 23
        assert labels == [classes.index(os.path.basename(os.path.dirname(path))) for path in paths]
    training, validation = keras.utils.image_dataset_from_directory(str(tmp_path), validation_split=0.2, subset="both", **{**options, "shuffle": True, "seed": 3})
    paths, _ = internals.keras_index_image_folder(str(tmp_path), class_names=classes, shuffle=True, seed=3)
    assert internals.keras_training_or_validation_split(paths, validation_split=0.2, subset="training") == training.file_paths
    assert internals.keras_training_or_validation_split(paths, validation_split=0.2, subset="validation") == validation.file_paths
