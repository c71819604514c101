"""train.py --weights / --freeze-epochs: the fine-tuning recipe, the frozen phase, starting weights
recorded and loaded, crash-resume during fine-tuning, and bad input."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_resnet
import train
from support.assertions import one_line_error, one_line_error_in_process
from support.checkpoints import write_preset
from support.pictures import write_folder
from support.programs import REPOSITORY, run_train, TINY, wait_for_backup_step
from keras_resnet.run import config as config_lib
from keras_resnet.run import recipes
from keras_resnet.run.directory import RunDirectory
from keras_resnet.run.resolve import resolve
from keras_resnet.training import pretrained, schedules, trainer


def test_weights_switch_to_the_fine_tuning_recipe_and_leave_the_layout_to_them():
    config = resolve(model="resnet18", weights="timm/resnet18.a1_in1k", dataset="folder:/photos")
    training = config.training
    assert (training.batch_size, training.learning_rate, training.epochs, training.schedule) == (64, 0.01, 20, "cosine")
    assert training.freeze_epochs == recipes.FREEZE_EPOCHS and training.warmup_epochs == 0
    assert config.data.min_crop_area == recipes.FINE_TUNING_MIN_CROP_AREA and config.data.augmentation == "imagenet"
    # The weights decide the layout, resolved with the rest: timm's v1.5 with projection shortcuts.
    model = config.model
    assert (model.version, model.shortcut, model.input_normalization, model.conv_bias) == ("v1.5", "B", "torch", False)
    assert config.weights_source.image_size == 288 and config.weights_source.weights == "timm/resnet18.a1_in1k"
    scaled = resolve(model="resnet50", weights="imagenet", batch_size=256, freeze_epochs=0)
    assert scaled.training.learning_rate == pytest.approx(0.04) and scaled.training.freeze_epochs == 0
    assert (scaled.model.version, scaled.model.input_normalization, scaled.model.conv_bias) == ("v1", "caffe", True)
    with pytest.raises(config_lib.UsageError, match=r"--weights imagenet: weights='imagenet' exist for resnet50, resnet101 and resnet152"):
        resolve(model="resnet18", weights="imagenet")  # refused with the other flags, before anything trains
    assert resolve(weights="timm/resnet50.tv_in1k").model.name == "resnet50"  # the network from the name
    scratch = resolve(model="resnet18", dataset="folder:/photos")
    assert (scratch.training.schedule, scratch.training.freeze_epochs, scratch.model.version) == ("step", 0, "v1.5")


def test_plan_puts_the_schedule_after_the_frozen_phase(tmp_path):
    keras_resnet.build("resnet20", version="v1", shortcut="B").save(tmp_path / "x.keras")
    config = resolve(depth=20, weights=str(tmp_path / "x.keras"), epochs=10, freeze_epochs=2, batch_size=10)
    assert (config.model.version, config.model.shortcut) == ("v1", "B")  # the model's layout, not the family's
    assert config.weights_source.own_model and config.training.weights == str(tmp_path / "x.keras")
    plan = config.plan(100)
    assert (plan.freeze_steps, plan.total_steps) == (20, 100)
    with pytest.raises(config_lib.UsageError, match=r"--freeze-epochs 10 \(100 steps\) leaves nothing of the 100"):
        resolve(depth=20, weights=str(tmp_path / "x.keras"), epochs=10, freeze_epochs=10, batch_size=10).plan(100)
    with pytest.raises(config_lib.UsageError, match=r"--weights .*x.keras were trained with --shortcut B. Received: --shortcut A"):
        resolve(depth=20, weights=str(tmp_path / "x.keras"), shortcut="A")


def test_frozen_phase_rate_then_the_whole_networks_schedule_and_it_saves():
    inner = keras.optimizers.schedules.CosineDecay(0.01, decay_steps=80)
    schedule = schedules.AfterFrozenPhase(0.1, 20, inner)
    rates = [float(schedule(step)) for step in (0, 19, 20, 60, 100)]
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, float(inner(40)), float(inner(80))], rtol=1e-6)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert float(restored(50)) == pytest.approx(float(schedule(50)))


def test_frozen_backbone_trains_only_the_classifier_with_batch_norm_in_inference_mode(tmp_path):
    keras_resnet.build("resnet8", input_shape=(16, 16, 3), shortcut="A").save(tmp_path / "x.keras")
    config = resolve(depth=8, image_size=16, weights=str(tmp_path / "x.keras"), epochs=4, freeze_epochs=1, batch_size=8)
    config = config.with_class_names(["a", "b", "c"])
    model = trainer.build_and_compile(config, config.plan(16))
    images = np.random.default_rng(0).uniform(0, 255, (16, 16, 16, 3)).astype("float32")
    labels = keras.utils.to_categorical(np.arange(16) % 3, 3)

    def snapshot():
        return {variable.path: variable.numpy().copy() for variable in model.variables if "predictions" not in variable.path}

    pretrained.set_backbone_frozen(model, True)
    model.make_train_function(force=True)
    before, classifier = snapshot(), model.get_layer("predictions").get_weights()[0].copy()
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    after = snapshot()
    assert all(np.array_equal(before[path], after[path]) for path in before), "the frozen backbone changed"
    assert any("moving_mean" in path for path in before)  # batch-norm statistics are among them
    assert not np.array_equal(classifier, model.get_layer("predictions").get_weights()[0])
    # Saved while frozen (a best.keras of the first epochs), the model loads whole and trainable,
    # its optimizer state (built for every variable) with it.
    model.save(str(tmp_path / "frozen.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "frozen.keras"))
    assert all(layer.trainable for layer in loaded.layers)
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    assert int(loaded.optimizer.iterations.numpy()) == 2

    pretrained.set_backbone_frozen(model, False)
    model.make_train_function(force=True)
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    changed = snapshot()
    assert not np.array_equal(after["stem_conv/kernel"], changed["stem_conv/kernel"])
    moving = [path for path in after if path.endswith("moving_mean")]
    assert any(not np.array_equal(after[path], changed[path]) for path in moving)


@pytest.fixture
def source_run(tiny_run):
    """A finished ResNet-8 run on the synthetic dataset: the weights to continue from."""
    return tiny_run


def history(run_dir):
    with open(os.path.join(run_dir, "history.csv")) as file:
        return list(csv.DictReader(file))


@pytest.mark.integration
def test_continued_training_loads_the_run_keeps_its_classifier_and_records_the_source(source_run, tmp_path, capsys):
    # Learning rate 0: a frozen first epoch then changes nothing, so it scores exactly the source model.
    output = tmp_path / "continued"
    assert train.main([*TINY, "--weights", str(source_run), "--freeze-epochs", "1", "--epochs", "2", "--lr", "0",
                       "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert f"Starting from {source_run / 'best.keras'} (classifier kept)." in out
    assert "Epoch 1: the classifier only, backbone frozen." in out and "Epoch 2: the whole network." in out
    source_best = max(float(row["val_accuracy"]) for row in history(source_run))
    assert float(history(output)[0]["val_accuracy"]) == pytest.approx(source_best, abs=1e-6)
    config = RunDirectory(output).read_config()
    assert config.training.weights == str(source_run / "best.keras") and config.training.freeze_epochs == 1
    assert (config.model.version, config.model.shortcut) == ("v1.5", "A")  # the source's layout
    # --evaluate and a second identical command work on it unchanged.
    assert train.main(["--evaluate", str(output)]) == 0
    assert train.main([*TINY, "--weights", str(source_run), "--freeze-epochs", "1", "--epochs", "2", "--lr", "0",
                       "--output", str(output), "--resume"]) == 0
    assert "nothing to do" in capsys.readouterr().out


@pytest.mark.integration
def test_timm_file_fine_tunes_on_folders_with_their_own_splits(tmp_path, capsys):
    weights = write_preset(str(tmp_path / "timm"), 18)
    photos = write_folder(tmp_path / "photos", per_class=6, splits=("train", "val"))
    output = tmp_path / "tuned"
    # No --model: the file's keys say it holds a ResNet-18 (before: "Name a network").
    assert train.main(["--weights", weights, "--dataset", f"folder:{photos}", "--image-size", "32",
                       "--batch-size", "6", "--epochs", "2", "--freeze-epochs", "1", "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert f"Starting from {weights} (classifier new (3 classes))." in out
    assert "(18 training, 9 validation images, 3 classes)" in out  # train/ and val/ as they are
    config = RunDirectory(output).read_config()
    assert (config.model.version, config.model.input_normalization, config.training.weights) == ("v1.5", "torch", weights)
    assert config.model.name == "resnet18"
    model = keras.saving.load_model(output / "last.keras")
    assert model.output_shape == (None, 3)


@pytest.mark.integration
def test_fine_tuning_killed_in_its_second_phase_resumes_at_the_step(source_run, tmp_path):
    args = [*TINY, "--weights", str(source_run), "--epochs", "6", "--freeze-epochs", "2", "--save-every-steps", "3",
            "--output", str(tmp_path / "run")]
    process = subprocess.Popen(
        [sys.executable, os.path.join(REPOSITORY, "train.py"), *args],
        env={**os.environ, "PYTHONPATH": REPOSITORY}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    backed_up = wait_for_backup_step(tmp_path, 12, process)  # past the frozen 8 steps
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=120)
    result = run_train(*args)
    assert result.returncode == 0, result.stderr
    assert "Resuming" in result.stdout and "Starting from" not in result.stdout  # the backup, not the weights
    resumed_at = int(result.stdout.split("Resuming ")[1].split(" at step ")[1].split(" ")[0])
    assert resumed_at >= backed_up and "the whole network." in result.stdout and "backbone frozen" not in result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 24


@pytest.mark.parametrize(
    "args, message",
    [
        (["--weights", "timm/resnet18.fb_ssl"], r"Unknown pretrained weights 'timm/resnet18.fb_ssl'. Valid: timm/resnet18.tv_in1k"),
        # Without --model: the network comes from the name, and a name that is no checkpoint says so
        # (before: "Unknown model name. Received: 'resnetNone'", and a long name echoed whole).
        (["--weights", "timm/../../x"], r"^error: --weights: Unknown pretrained weights 'timm/\.\./\.\./x'. Valid: timm/resnet18.tv_in1k"),
        (["--weights", "timm/" + "a" * 5000], r"Unknown pretrained weights 'timm/a{74}…'. Valid: "),
        (["--weights", "timm/resnet18.a1_in1k", "--depth", "34"], r"are for resnet18 \(ImageNet-style\). Received: an ImageNet-style resnet34"),
        (["--weights", "timm/resnet18.a1_in1k", "--model", "resnet18", "--version", "v1"], r"were trained with --version v1.5. Received: --version v1"),
        (["--weights", "no/such/file.safetensors", "--depth", "18"], r"no such file or directory"),
        (["--freeze-epochs", "1", "--depth", "20"], r"--freeze-epochs freezes a pretrained backbone: it needs --weights"),
        (["--weights", "imagenet", "--depth", "18"], r"weights='imagenet' exist for resnet50, resnet101 and resnet152"),
    ],
)
def test_bad_weights_are_one_line_exit_2_and_nothing_written(args, message, tmp_path, capsys):
    error = one_line_error_in_process(train.main, [*args, "--output", str(tmp_path / "run")], capsys)
    assert re.search(message, error), error
    assert not (tmp_path / "run").exists()


@pytest.mark.integration
def test_own_weights_file_loads_whole_and_its_classifier_is_kept(source_run, tmp_path, capsys):
    # Saved from a compiled, trained model: its optimizer (8 steps) is in the file, and must not be
    # loaded (before: "Finished 16 steps" for a run of 8, history.csv and metrics.json at 16).
    # last.keras: the model after both epochs (best.keras may be the first epoch's, at 4 steps).
    model = keras.saving.load_model(source_run / "last.keras")
    assert int(model.optimizer.iterations.numpy()) == 8
    model.save_weights(str(tmp_path / "own.weights.h5"))
    assert train.main([*TINY, "--weights", str(tmp_path / "own.weights.h5"), "--epochs", "2", "--freeze-epochs", "1",
                       "--output", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "(classifier kept)." in out and "Finished 8 steps." in out
    assert json.load(open(tmp_path / "run" / "metrics.json"))["steps"] == 8
    assert [row["step"] for row in csv.DictReader(open(tmp_path / "run" / "history.csv"))] == ["4", "8"]


@pytest.mark.integration
def test_weights_saved_as_the_readme_shows_load_into_a_training_run(tmp_path, capsys):
    # `keras_resnet.build(...).save_weights(...)`: a model never compiled, so no optimizer in the file
    # (before: refused, "Skipping variable loading for optimizer 'sgd', because it has 24 variables
    # whereas the saved optimizer has 0").
    built = keras_resnet.build("resnet8", input_shape=(16, 16, 3), classes=10)
    built.save_weights(tmp_path / "built.weights.h5")
    assert train.main([*TINY, "--weights", str(tmp_path / "built.weights.h5"), "--epochs", "1", "--freeze-epochs", "0",
                       "--lr", "0", "--output", str(tmp_path / "run")]) == 0
    assert "Finished 4 steps." in capsys.readouterr().out
    loaded = keras.saving.load_model(tmp_path / "run" / "last.keras")
    for mine, theirs in zip(built.weights, loaded.weights):  # learning rate 0: the file's weights, unchanged
        if "moving" not in mine.path:  # the batch-norm statistics follow the batches even at rate 0
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


@pytest.mark.integration
def test_resume_takes_the_weights_layout_from_the_run_not_from_the_weights(source_run, tmp_path, capsys):
    """A source that moved after the run started: resuming needs only the run directory."""
    moved = tmp_path / "source"
    shutil.copytree(source_run, moved)
    common = [*TINY, "--weights", str(moved), "--freeze-epochs", "1", "--output", str(tmp_path / "run")]
    assert train.main([*common, "--epochs", "2"]) == 0
    shutil.rmtree(moved)
    assert train.main([*common, "--epochs", "3", "--resume"]) == 0
    assert "Resuming" in capsys.readouterr().out


def test_own_model_of_another_network_is_refused(source_run, tmp_path, capsys):
    error = one_line_error_in_process(train.main, ["--depth", "20", "--weights", str(source_run), "--output", str(tmp_path / "r")], capsys)
    assert "is a CIFAR-style resnet8. Received: a CIFAR-style resnet20; leave --model and --depth out to take its network" in error
    assert not (tmp_path / "r").exists()


@pytest.mark.integration
@pytest.mark.parametrize("existing", [False, True], ids=["new-directory", "empty-directory"])
def test_weights_refused_at_start_up_leave_nothing_and_the_corrected_command_runs(existing, tmp_path, capsys):
    # Before: .lock, config.json and labels.txt stayed, and the corrected command was refused
    # ("holds a run with another configuration").
    keras_resnet.build("resnet20", input_shape=(16, 16, 3), classes=10).save_weights(tmp_path / "resnet20.weights.h5")
    output = tmp_path / "run"
    if existing:
        output.mkdir()
    refused = [*TINY, "--epochs", "1", "--weights", str(tmp_path / "resnet20.weights.h5"), "--output", str(output)]
    assert "does not fit resnet8" in one_line_error_in_process(train.main, refused, capsys)
    assert (os.listdir(output) == []) if existing else not output.exists()
    assert train.main([*TINY, "--epochs", "1", "--output", str(output)]) == 0


@pytest.mark.integration
@pytest.mark.parametrize("offline", [False, True], ids=["hub-unreachable", "HF_HUB_OFFLINE=1"])
def test_offline_download_in_a_real_process_says_where_to_put_the_file(offline, tmp_path):
    # No network here: one look at the hub (not huggingface_hub's half-minute of retries), one line,
    # nothing written. With HF_HUB_OFFLINE=1 the hub is not looked at.
    env = {"HF_HOME": str(tmp_path / "hf"), **({"HF_HUB_OFFLINE": "1"} if offline else {})}
    result = run_train("--model", "resnet18", "--weights", "timm/resnet18.a1_in1k", "--output", str(tmp_path / "run"), env=env, timeout=240)
    error = one_line_error(result)
    if offline:
        assert "timm/resnet18.a1_in1k is not in the hub's cache and HF_HUB_OFFLINE=1 forbids downloading it" in error
    else:
        assert "Cannot reach the Hugging Face hub (huggingface.co:" in error and "set HF_HUB_OFFLINE=1" in error
    assert "Download https://huggingface.co/timm/resnet18.a1_in1k/resolve/main/model.safetensors on another machine" in error
    assert "pass its path as the weights" in error
    assert not (tmp_path / "run").exists()
