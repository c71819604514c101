"""train.py: recipes, the run directory, resuming after kill -9 and Ctrl-C, distribution, bad input."""

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds

import keras_resnet
import train
from support.assertions import one_line_error, one_line_error_in_process
from support.pictures import write_folder
from support.requirements import require_strace
from support.programs import REPOSITORY, TINY, UNEVEN_VALIDATION, backup_step, load_models_in_fresh_processes, run_train, wait_for_backup_step
from keras_resnet.data import pipeline, sources, synthetic
from keras_resnet.run import config as config_lib
from keras_resnet.run.directory import LOCK_FILE, RunDirectory
from keras_resnet.run.resolve import resolve
from keras_resnet.runtime.preprocessing import Preprocessing
from keras_resnet.training import distribute, schedules, trainer

# -- recipes ------------------------------------------------------------------------------------


def test_cifar_recipe_is_the_papers():
    config = resolve(depth=20, dataset="cifar10")
    training = config.training
    assert (training.batch_size, training.learning_rate, training.steps, training.epochs) == (128, 0.1, 64_000, None)
    assert training.step_boundaries == (0.5, 0.75) and training.momentum == 0.9
    assert config.model.weight_decay == 1e-4 and config.model.shortcut == "A"
    assert config.data.augmentation == "cifar" and config.model.input_shape == (32, 32, 3)


def test_imagenet_recipe_is_the_papers_and_lr_scales_with_the_global_batch():
    config = resolve(depth=50, dataset="imagenet2012", batch_size=1024)
    training = config.training
    assert training.epochs == 90 and training.learning_rate == pytest.approx(0.4)
    assert training.step_boundaries == pytest.approx((1 / 3, 2 / 3)) and training.warmup_epochs == 0
    assert config.model.shortcut == "B" and config.data.augmentation == "imagenet"
    cosine = resolve(depth=50, dataset="imagenet2012", schedule="cosine")
    assert cosine.training.warmup_epochs == 5
    assert resolve(depth=56, plain=True).model.name == "plain56"
    assert resolve(model="resnet50v2").model == resolve(depth=50, version="v2").model


def test_step_plan_derives_epochs_boundaries_and_warmup_once():
    config = resolve(depth=20, dataset="cifar10", steps=1000, batch_size=100, warmup_epochs=0.5)
    plan = config.plan(2_050)  # 20 whole batches per epoch; the rest is dropped
    assert (plan.steps_per_epoch, plan.total_steps, plan.epochs, plan.warmup_steps) == (20, 1000, 50, 10)
    assert plan.boundaries == (500, 750)
    by_epochs = resolve(depth=50, dataset="imagenet2012", epochs=3, batch_size=8).plan(20)
    assert (by_epochs.steps_per_epoch, by_epochs.total_steps, by_epochs.epochs, by_epochs.boundaries) == (2, 6, 3, (2, 4))
    with pytest.raises(config_lib.UsageError, match="fewer than one batch of 100"):
        config.plan(99)


def test_config_json_round_trips_and_reads_what_version_0_1_wrote(tmp_path):
    config = resolve(depth=56, plain=True, dataset="cifar10", lr=0.05, seed=3).with_class_names(["a", "b"])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_json()))
    assert config_lib.RunConfig.read(path) == config
    assert config.model.classes == 2 and config.to_json()["model"]["input_shape"] == [32, 32, 3]
    old = config_lib.RunConfig.read(os.path.join(REPOSITORY, "tests", "fixtures", "run-0.1.0", "config.json"))
    assert old.model.name == "resnet8" and old.model.classes == 10 and old.class_names[:2] == ("circle", "square")
    assert old.training.learning_rate == 0.025 and old.data.train_examples == 256
    # Written before the evaluation transform was recorded: its family's, which its evaluation used.
    assert old.data.evaluation_crop is None and old.data.preprocessing() == Preprocessing(1.0)


def test_the_evaluation_transform_is_chosen_at_training_time_and_recorded():
    assert resolve(depth=18).data.evaluation_crop == 0.875  # ImageNet-style: the paper's
    assert resolve(depth=20).data.evaluation_crop == 1.0  # CIFAR-style: the whole picture
    chosen = resolve(depth=18, eval_crop=1.0)
    assert chosen.data.preprocessing() == Preprocessing(1.0) and chosen.to_json()["data"]["evaluation_crop"] == 1.0
    with pytest.raises(config_lib.UsageError, match=r"--eval-crop must be a number from 0.1 to 1. Received: 0.05."):
        resolve(depth=18, eval_crop=0.05)
    # A run recorded before the field existed is the same run as one that names its family's crop.
    recorded = resolve(depth=18, dataset="folder:x")
    unrecorded = dataclasses.replace(recorded, data=dataclasses.replace(recorded.data, evaluation_crop=None))
    assert recorded.same_training(unrecorded) and not recorded.same_training(resolve(depth=18, dataset="folder:x", eval_crop=1.0))


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "not a run configuration: it holds a JSON list"),
        ('{"model": {}}', "'model' lacks name, family"),
        ('{"weights": 1}', "unknown section(s) weights"),
    ],
)
def test_a_corrupt_or_foreign_config_json_is_named_with_its_problem(tmp_path, content, problem):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(config_lib.ConfigFileError) as error:
        config_lib.RunConfig.read(path)
    assert str(path) in str(error.value) and problem in str(error.value)


def test_step_schedule_divides_by_ten_at_its_boundaries_after_warmup():
    config = resolve(depth=20, dataset="cifar10", steps=1000, batch_size=100, warmup_epochs=1, lr=0.1)
    plan = config.plan(1000)  # 10 steps per epoch: 10 warm-up steps, boundaries at 500 and 750
    schedule = schedules.learning_rate_schedule(config.training, plan)
    rates = {step: float(schedule(step)) for step in (0, 4, 9, 10, 499, 500, 749, 750, 999)}
    assert rates[0] == pytest.approx(0.01) and rates[4] == pytest.approx(0.05) and rates[9] == pytest.approx(0.1)
    assert rates[10] == rates[499] == pytest.approx(0.1)
    assert rates[500] == rates[749] == pytest.approx(0.01)
    assert rates[750] == rates[999] == pytest.approx(0.001)
    rebuilt = schedules.StepDecay.from_config(json.loads(json.dumps(schedule.get_config())))
    assert float(rebuilt(600)) == pytest.approx(0.01)
    cosine_config = resolve(depth=20, dataset="cifar10", steps=100, batch_size=100, schedule="cosine", warmup_epochs=1, lr=0.1)
    cosine = schedules.learning_rate_schedule(cosine_config.training, cosine_config.plan(1000))
    assert float(cosine(10)) == pytest.approx(0.1) and float(cosine(100)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "done, total, per_epoch, expected",
    [
        (0, 12, 4, [(0, 3, 4)]),
        (6, 12, 4, [(1, 2, 2), (2, 3, 4)]),
        (0, 10, 4, [(0, 2, 4), (2, 3, 2)]),
        (5, 10, 4, [(1, 2, 3), (2, 3, 2)]),
        (12, 12, 4, []),
    ],
)
def test_plan_fits_continues_exactly_where_training_stopped(done, total, per_epoch, expected):
    calls = trainer.plan_fits(done, total, per_epoch)
    assert calls == expected
    assert sum((last - first) * steps for first, last, steps in calls) == total - done


def fits_step_by_step(done, total, per_epoch, breaks):
    """The fit() calls found by walking the steps one epoch at a time (the reference)."""
    calls, step = [], done
    while step < total:
        epoch, offset = divmod(step, per_epoch)
        steps = min(per_epoch - offset, total - step)
        if calls and calls[-1][2] == steps == per_epoch and calls[-1][1] == epoch and step not in breaks:
            calls[-1] = (calls[-1][0], epoch + 1, steps)
        else:
            calls.append((epoch, epoch + 1, steps))
        step += steps
    return calls


def test_plan_fits_is_arithmetic_and_agrees_with_walking_the_steps(rng):
    for _ in range(2000):
        per_epoch = int(rng.integers(1, 9))
        total = int(rng.integers(0, 60))
        done = int(rng.integers(0, total + 1))
        breaks = (per_epoch * int(rng.integers(0, 8)),)
        assert trainer.plan_fits(done, total, per_epoch, breaks=breaks) == fits_step_by_step(done, total, per_epoch, breaks), (done, total, per_epoch, breaks)
    # An absurd but valid length is planned at once (before: one loop turn per epoch, a hang).
    epochs = 10**15
    assert trainer.plan_fits(3, epochs * 8, 8, breaks=(16,)) == [(0, 1, 5), (1, 2, 8), (2, epochs, 8)]


def test_precision_auto_follows_the_cpu():
    expected = "mixed_bfloat16" if distribute.cpu_has_bfloat16() else "float32"
    assert distribute.resolve_precision("auto", strategy_name="default") == expected
    assert distribute.resolve_precision("auto", strategy_name="tpu") == "mixed_bfloat16"
    assert distribute.resolve_precision("float32", strategy_name="default") == "float32"


# -- a run directory ----------------------------------------------------------------------------


@pytest.fixture
def finished_run(tiny_run):
    return RunDirectory(tiny_run)


def test_run_directory_holds_everything_conversion_needs(finished_run):
    run = finished_run
    for path in (run.best_model, run.last_model, run.config, run.labels, run.history, run.curves, run.metrics):
        assert os.path.getsize(path) > 0, path
    assert os.listdir(run.tensorboard) and not os.path.exists(run.backup)
    assert run.read_labels() == list(synthetic.CLASS_NAMES)
    metrics = json.load(open(run.metrics))
    assert metrics["steps"] == 8 and metrics["epochs"] == 2
    assert 0 <= metrics["top1"] <= metrics["top5"] <= 1 and metrics["images_per_second"] > 0
    with open(run.history) as file:
        assert len(file.read().strip().splitlines()) == 1 + 2
    with open(run.curves, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_finished_runs_best_model_top1_is_what_evaluate_prints(finished_run, tmp_path, capsys):
    # Training's epoch figures are in its precision (bfloat16 on CPUs that have it); the last line
    # and metrics.json's best_model_top1 are best.keras in float32, as --evaluate measures it.
    run = tmp_path / "run"  # a copy: evaluation writes its figures into the run
    shutil.copytree(finished_run.path, run)
    best = json.load(open(run / "metrics.json"))["best_model_top1"]
    assert train.main(["--evaluate", str(run)]) == 0
    printed = re.search(r"top-1 ([0-9.]+) %", capsys.readouterr().out)
    assert printed and float(printed.group(1)) == round(100 * best, 2)


def test_config_json_rebuilds_the_trained_model(finished_run, rng):
    config = finished_run.read_config()
    rebuilt = keras_resnet.build(**config.model.build_arguments(), weights=finished_run.last_model)
    trained = keras.saving.load_model(finished_run.last_model)
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in trained.layers]
    for mine, saved in zip(rebuilt.weights, trained.weights):
        np.testing.assert_array_equal(mine.numpy(), saved.numpy())
    # The saved model computes in bfloat16 as it trained (mixed_bfloat16 here); the rebuild in float32.
    images = rng.uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(rebuilt(images).numpy(), trained(images).numpy(), atol=2e-2)
    assert list(config.class_names) == finished_run.read_labels()


@pytest.mark.integration
def test_saved_models_load_compiled_in_a_fresh_process_as_the_readme_says(finished_run):
    # The README: `import keras, keras_resnet; keras.saving.load_model("RUN/best.keras")`, safe mode,
    # compiled (its optimizer holds the paper's StepDecay schedule), in either import order.
    report = "type(model).__name__, model.optimizer.get_config()['learning_rate']['class_name'], int(model.optimizer.iterations.numpy())"
    for best, last in load_models_in_fresh_processes([finished_run.best_model, finished_run.last_model], report):
        assert best.split()[:2] == ["ResNetModel", "StepDecay"] and last == "ResNetModel StepDecay 8"


def modification_times(run):
    """Every file's modification time, but the lock's (each process that takes it writes its PID)."""
    return {name: os.path.getmtime(os.path.join(run.path, name)) for name in os.listdir(run.path) if name != LOCK_FILE}


def test_the_same_command_on_a_finished_run_changes_nothing_and_another_length_asks_for_resume(finished_run, capsys):
    before = modification_times(finished_run)
    assert train.main([*TINY, "--epochs", "2", "--output", finished_run.path]) == 0
    assert "has already finished: nothing to do. Validation: top-1" in capsys.readouterr().out
    result = one_line_error_in_process(train.main, [*TINY, "--epochs", "3", "--output", finished_run.path], capsys)
    assert "holds a run of another length (2 epochs): pass --resume to train it to 3 epochs" in result
    result = one_line_error_in_process(train.main, [*TINY, "--epochs", "1", "--output", finished_run.path, "--resume"], capsys)
    assert "--resume trains a run longer: " in result and "is set to 8 steps and this command asks for 4" in result
    assert modification_times(finished_run) == before


@pytest.mark.integration
def test_resume_continues_a_finished_run_with_more_epochs(finished_run, tmp_path):
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", finished_run.path, str(copy)], check=True)
    assert train.main([*TINY, "--epochs", "3", "--output", str(copy), "--resume"]) == 0
    assert json.load(open(copy / "metrics.json"))["steps"] == 12
    assert json.load(open(copy / "config.json"))["training"]["epochs"] == 3
    with open(copy / "history.csv") as file:
        assert [line.split(",")[0] for line in file.read().split()[1:]] == ["1", "2", "3"]


@pytest.mark.integration
def test_steps_skipped_by_the_loss_scale_still_count_for_the_plan_the_files_and_the_resume(tmp_path, monkeypatch, capsys):
    # A loss scale so high that the float16 gradients overflow: Keras' LossScaleOptimizer skips those
    # steps (halving the scale each time) and does not count them in `iterations`.
    original = keras.optimizers.LossScaleOptimizer.__init__

    def overflowing(self, inner_optimizer, initial_scale=2.0**15, **options):
        original(self, inner_optimizer, initial_scale=3e7, **options)

    monkeypatch.setattr(keras.optimizers.LossScaleOptimizer, "__init__", overflowing)
    output = tmp_path / "float16"
    args = [*TINY, "--precision", "mixed_float16", "--output", str(output)]
    assert train.main([*args, "--epochs", "2"]) == 0
    assert "Finished 8 steps." in capsys.readouterr().out
    applied = keras.saving.load_model(output / "last.keras").optimizer.iterations.numpy()
    assert applied < 8  # steps were skipped
    assert json.load(open(output / "metrics.json"))["steps"] == 8
    # Continued from last.keras (a finished run has no backup): one more epoch of 4 steps, not 4 + the skipped.
    assert train.main([*args, "--epochs", "3", "--resume"]) == 0
    assert "Resuming" in capsys.readouterr().out and json.load(open(output / "metrics.json"))["steps"] == 12
    with open(output / "history.csv") as file:
        assert [line.split(",")[:2] for line in file.read().split()[1:]] == [["1", "4"], ["2", "8"], ["3", "12"]]


def test_evaluate_a_run_and_a_model_file(finished_run, capsys):
    assert train.main(["--evaluate", finished_run.path]) == 0
    out = capsys.readouterr().out
    assert "best.keras on 32 pictures of synthetic (validation split): top-1" in out and "top-5" in out and "loss" in out
    assert train.main(["--evaluate", finished_run.last_model]) == 0
    assert "last.keras on 32 pictures of synthetic (validation split)" in capsys.readouterr().out


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--depth", "21"], "error: Invalid depth. Received: depth=21."),
        (["--model", "vgg16"], "error: Unknown model name. Received: 'vgg16'"),
        (["--depth", "8", "--dataset", "no_such_dataset"], "error: Unknown dataset 'no_such_dataset'"),
        (["--depth", "8", "--epochs", "0"], "error: argument --epochs: must be an integer of at least 1. Received: 0."),
        (["--depth", "8", "--epochs", "2", "--steps", "5"], "error: Pass --epochs or --steps, not both."),
        (["--depth", "8", "--lr", "nan"], "error: argument --lr: must be a number from 0 to 1e+06. Received: nan."),
        (["--depth", "8", "--epochs", "2", "--warmup-epochs", "1e308"], "error: --warmup-epochs 1e+308 is longer than the training it warms up"),
        (["--depth", "8", "--seed", "-1"], "error: argument --seed: must be an integer from 0 to 4294967295. Received: -1."),
        (["--depth", "8", "--image-size", "4"], "error: argument --image-size: must be an integer from 8 to 2048. Received: 4."),
        (["--depth", "8", "--label-smoothing", "1"], "error: argument --label-smoothing: must be a number from 0 to below 1. Received: 1."),
        (["--depth", "eight"], "error: argument --depth: invalid int value: 'eight' (see "),
        (["--evaluate", "/nonexistent/run"], "error: No such run directory or model file: /nonexistent/run."),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert one_line_error_in_process(train.main, args, capsys).startswith(message)
    assert not os.path.exists(tmp_path / "runs") or not os.listdir(tmp_path / "runs")


@pytest.mark.integration
def test_bad_input_in_a_real_process_is_one_line_without_traceback(tmp_path):
    # In its own process: logical CPUs can only be configured before TensorFlow starts.
    result = run_train(*TINY, "--cpu-replicas", "2", "--batch-size", "15", cwd=tmp_path)
    assert one_line_error(result).startswith("error: --batch-size 15 (the global batch) does not split evenly over 2 replicas")
    assert not os.path.exists(tmp_path / "runs")


def test_bad_paths(tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "b").mkdir()
    assert "holds no images" in one_line_error_in_process(train.main, [*TINY, "--dataset", f"folder:{empty}"], capsys)
    not_a_model = tmp_path / "model.keras"
    not_a_model.write_text("not a model")
    (tmp_path / "config.json").write_text("{}")
    assert "config.json is not a keras_resnet run configuration" in one_line_error_in_process(
        train.main, ["--evaluate", str(not_a_model)], capsys
    )
    shutil.copy(os.path.join(REPOSITORY, "tests", "fixtures", "run-0.1.0", "config.json"), tmp_path / "config.json")
    assert "Cannot load" in one_line_error_in_process(train.main, ["--evaluate", str(not_a_model)], capsys)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "Cannot write to the run directory" in one_line_error_in_process(train.main, [*TINY, "--output", str(blocker / "run")], capsys)


def test_evaluate_a_run_directory_of_version_0_1(tmp_path, capsys):
    run = tmp_path / "run-0.1.0"  # a copy: evaluation writes its figures into the run
    shutil.copytree(os.path.join(REPOSITORY, "tests", "fixtures", "run-0.1.0"), run)
    assert train.main(["--evaluate", str(run)]) == 0
    assert "best.keras on 64 pictures of synthetic (validation split): top-1" in capsys.readouterr().out
    assert (run / "evaluation-synthetic.json").exists() and (run / "confusion-synthetic.png").exists()


@pytest.mark.integration
def test_tfds_offline_is_one_line_and_exit_code_2(tmp_path, capsys):
    args = ["--depth", "20", "--dataset", "cifar10", "--data-dir", str(tmp_path)]
    line = one_line_error_in_process(train.main, args, capsys)
    assert "Could not download or prepare TFDS dataset 'cifar10'" in line and "--dataset synthetic" in line


@pytest.mark.integration
def test_non_finite_loss_stops_with_a_clear_message_and_the_same_command_is_no_dead_end(tmp_path, capsys):
    output = tmp_path / "exploding"
    # 10 steps per epoch: the loss diverges at step 5, before anything is saved.
    args = [*TINY, "--train-examples", "160", "--epochs", "1", "--lr", "1e6", "--precision", "float32", "--output", str(output)]
    for attempt in range(2):  # the same command again: the same stop, not "already holds a run"
        assert train.main(args) == 1
        err = capsys.readouterr().err
        assert "The loss became NaN or infinite at step" in err and "Nothing was saved yet: the same command starts the run afresh" in err
        assert not os.path.exists(output / "last.keras") and not os.path.exists(output / "metrics.json")


# -- data sources through train.py --------------------------------------------------------------


def test_trains_on_a_tfds_dataset(tmp_path):
    with tfds.testing.mock_data(num_examples=40):
        assert train.main(["--depth", "8", "--dataset", "cifar10", "--steps", "3", "--batch-size", "8", "--output", str(tmp_path / "c")]) == 0
    config = json.load(open(tmp_path / "c" / "config.json"))
    assert config["model"]["classes"] == 10 and config["data"]["augmentation"] == "cifar"
    assert json.load(open(tmp_path / "c" / "metrics.json"))["steps"] == 3


@pytest.mark.integration
@pytest.mark.parametrize("by_file", [False, True], ids=["decoded-and-cached", "crops-from-bytes"])
def test_a_folder_of_pictures_that_all_fail_to_decode_is_one_line(tmp_path, capfd, monkeypatch, by_file):
    from keras_resnet.data import pipeline

    if by_file:
        monkeypatch.setattr(pipeline, "CACHE_LIMIT_BYTES", 0)  # as for a folder too large to keep decoded
    root = write_folder(tmp_path / "pictures", per_class=4, splits=("train", "val"))
    for path in (root / "train").rglob("*.jpg"):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # headers whole, data cut short
    for path in (root / "train").rglob("*.png"):
        path.unlink()
    network = ["--depth", "18", "--image-size", "32"] if by_file else ["--depth", "8"]  # the ImageNet family's crops, by file
    assert train.main([*network, "--dataset", f"folder:{root}", "--epochs", "1", "--output", str(tmp_path / "run")]) == 1
    err = capfd.readouterr().err
    how = "training files, read one after another (a run of up to 4,096; those of the first pass named above)" if by_file else "training files (each named above)"
    # The input pipeline's threads may still be decoding when the error is printed: TensorFlow's C++
    # log lines about the damaged pictures ("E0000 … jpeg_mem.cc …") can come after it.
    ours = [line for line in err.splitlines() if not re.match(r"[IWEF]\d{4} ", line)]
    assert ours[-1] == f"error: None of the training pictures could be decoded {'in' if by_file else 'in a whole pass over'} folder:{root}'s 6 {how}: repair or replace them."
    assert "cannot be decoded (damaged, or not an image): skipped." in err


def test_trains_on_a_folder_of_images(tmp_path):
    from test_data import write_folder

    root = write_folder(tmp_path / "photos", per_class=20)
    assert train.main(["--depth", "18", "--image-size", "32", "--dataset", f"folder:{root}", "--epochs", "1",
                       "--batch-size", "8", "--output", str(tmp_path / "f")]) == 0
    assert RunDirectory(tmp_path / "f").read_labels() == ["cats", "dogs", "owls"]


# -- crash and resume ---------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("stop", ["kill -9", "ctrl-c"])
def test_interrupted_run_resumes_with_the_same_command_and_the_same_step_count(stop, tmp_path):
    # 6 epochs of 8 steps, a backup every 3 steps; the run directory is the default one under runs/.
    args = ["--depth", "20", "--batch-size", "32", "--train-examples", "256", "--validation-examples", "64",
            "--epochs", "6", "--save-every-steps", "3"]
    process = subprocess.Popen(
        [sys.executable, os.path.join(REPOSITORY, "train.py"), *args],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": REPOSITORY}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    backed_up = wait_for_backup_step(tmp_path / "runs", 12, process)
    process.send_signal(signal.SIGKILL if stop == "kill -9" else signal.SIGINT)
    out, err = process.communicate(timeout=120)
    if stop == "ctrl-c":
        assert process.returncode == 130
        assert err.strip().splitlines()[-1].startswith("Interrupted at step ") and "Traceback" not in err
    else:
        assert process.returncode == -signal.SIGKILL
    (run_path,) = (tmp_path / "runs").iterdir()
    saved = backup_step(run_path / "backup" / "latest.weights.h5")  # whole even if killed while writing the next
    assert saved >= backed_up and saved < 48

    result = run_train(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"Resuming {os.path.join('runs', run_path.name)} at step {saved} of 48." in result.stdout
    assert [path.name for path in (tmp_path / "runs").iterdir()] == [run_path.name]
    metrics = json.loads((run_path / "metrics.json").read_text())
    assert metrics["steps"] == 48
    epochs = [line.split(",")[0] for line in (run_path / "history.csv").read_text().split()[1:]]
    assert epochs == ["1", "2", "3", "4", "5", "6"]


# -- distribution -------------------------------------------------------------------------------


def assert_validation_figures_of_one_process(run_path):
    """The last epoch's validation figures, shared out over the replicas, are those of the last
    model evaluated in this one process on the same pictures: each picture counted once (one
    counted twice or left out moves the loss by about 3 %). Top-1 and top-5 within half a picture:
    another CPU's kernels may round a near tie the other way at another batch size."""
    run = config_lib.RunConfig.read(run_path / "config.json")
    source = sources.open_configured(run.data, seed=run.training.seed)
    validation = pipeline.evaluation_dataset(source, image_size=run.data.image_size, preprocessing=run.data.preprocessing(), batch_size=16)
    expected = keras.saving.load_model(run_path / "last.keras").evaluate(validation, return_dict=True, verbose=0)
    last_epoch = RunDirectory(str(run_path)).read_history()[-1]
    np.testing.assert_allclose(last_epoch["val_loss"], expected["loss"], rtol=1e-3)
    for name in ("accuracy", "top5"):
        np.testing.assert_allclose(last_epoch[f"val_{name}"], expected[name], atol=0.5 / 33, err_msg=name)


@pytest.mark.integration
def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
    result = run_train(*UNEVEN_VALIDATION, "--epochs", "1", "--cpu-replicas", "2", "--output", str(tmp_path / "m"))
    assert result.returncode == 0, result.stderr
    assert "over 2 replicas [mirrored]" in result.stdout
    assert json.load(open(tmp_path / "m" / "metrics.json"))["replicas"] == 2
    assert_validation_figures_of_one_process(tmp_path / "m")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.e2e
def test_multi_worker_training_on_two_local_processes_ends_with_identical_models(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    output = tmp_path / "mw"
    processes = [
        subprocess.Popen(
            [sys.executable, os.path.join(REPOSITORY, "train.py"), *UNEVEN_VALIDATION, "--epochs", "2", "--output", str(output)],
            env={**os.environ, "PYTHONPATH": REPOSITORY, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for index in (0, 1)
    ]
    results = [process.communicate(timeout=300) for process in processes]
    for process, (out, err) in zip(processes, results):
        assert process.returncode == 0, err
    assert "over 2 replicas [multi-worker]" in results[0][0]
    chief = keras.saving.load_model(output / "last.keras")
    worker = keras.saving.load_model(output / "worker-1" / "last.keras")
    assert len(chief.weights) == len(worker.weights)
    for mine, theirs in zip(chief.weights, worker.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.path)
    assert json.load(open(output / "metrics.json"))["steps"] == 8
    assert_validation_figures_of_one_process(output)


@pytest.mark.e2e
def test_two_workers_each_read_only_their_share_of_a_folders_pictures(tmp_path):
    require_strace()
    # Watched from outside with strace: the training files each worker's input threads open. (Its
    # main thread reads every picture's header while opening the folder; only the pipeline's threads
    # decode.)
    root = tmp_path / "pictures"
    write_folder(root, classes=("cats", "dogs", "owls"), per_class=16, size=20, splits=("train", "val"))
    training_files = {str(path) for path in (root / "train").rglob("*.*")}
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    output = tmp_path / "mw"
    traces = [tmp_path / f"worker-{index}.trace" for index in (0, 1)]
    processes = [
        subprocess.Popen(
            ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=open,openat", "-o", str(trace),
             sys.executable, os.path.join(REPOSITORY, "train.py"), "--depth", "8", "--image-size", "16", "--batch-size", "8",
             "--dataset", f"folder:{root}", "--epochs", "2", "--output", str(output)],
            env={**os.environ, "PYTHONPATH": REPOSITORY, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for index, trace in zip((0, 1), traces)
    ]
    results = [process.communicate(timeout=300) for process in processes]
    for process, (out, err) in zip(processes, results):
        assert process.returncode == 0, err
    assert "split by file over 2 workers" in results[0][0]
    shares = []
    for trace in traces:
        lines = trace.read_text().splitlines()
        main_thread = lines[0].split()[0]
        opened = {match.group(1) for line in lines if not line.startswith(main_thread + " ") for match in [re.search(r'open(?:at)?\(.*?"([^"]+)"', line)] if match}
        shares.append(opened & training_files)
    assert len(shares[0]) == len(shares[1]) == 24
    assert not shares[0] & shares[1] and shares[0] | shares[1] == training_files


def test_help_documents_every_flag_and_its_default():
    parser = train.parser()
    text = re.sub(r"-\s+", "-", " ".join(parser.format_help().split()))  # undo line wraps
    # Flags whose absence means "not used" have no default to state.
    unset_means_off = {"depth", "model", "family", "tpu", "evaluate", "train_examples", "validation_examples", "weights"}
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help, action.option_strings
        if action.nargs == 0 or action.dest in unset_means_off:
            continue
        assert "default" in action.help or f"(default: {action.default})" in text, action.option_strings
