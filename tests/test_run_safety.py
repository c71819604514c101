"""Crash-safe run directories, with real faults: kill -9 inside a save (at a known point, through
keras_resnet.files' test hook), a full filesystem (a small tmpfs, as root), two processes on one run
directory, epochs of one step, and the saved models loading as the README says."""

import json
import os
import subprocess
import sys
import threading

import h5py
import keras
import pytest

import train
from support.assertions import one_line_error_in_process
from support.programs import backup_step, load_models_in_fresh_processes, REPOSITORY, TINY, UNEVEN_VALIDATION, run_train
from support.requirements import small_filesystem
from keras_resnet import files
from keras_resnet.run.directory import RunDirectory, read_history
from keras_resnet.training import evaluate


# Real processes killed inside their writes, real disks filled: all of it trains.
pytestmark = pytest.mark.integration


def start_paused(args, file_name, *, cwd, deadline=300):
    """train.py with `args`, stopped by the test hook inside its write of `file_name` ("NAME" or
    "NAME#N"): returns the process once it says so (killed if it has not within `deadline` s)."""
    process = subprocess.Popen(
        [sys.executable, os.path.join(REPOSITORY, "train.py"), *args],
        cwd=cwd, env={**os.environ, "PYTHONPATH": REPOSITORY, files.PAUSE_VARIABLE: file_name},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    watchdog = threading.Timer(deadline, process.kill)
    watchdog.start()
    try:
        for line in process.stderr:
            if line.startswith("test hook: paused writing"):
                return process
    finally:
        watchdog.cancel()
    raise AssertionError(f"train.py ended (exit {process.wait()}) without writing {file_name}")


def kill(process):
    process.kill()
    process.wait(timeout=60)
    process.stderr.close()


def partials(path):
    return sorted(name for name in os.listdir(path) if files.is_partial(name))


def iterations(model_path):
    return int(keras.saving.load_model(model_path).optimizer.iterations.numpy())


def history_epochs(run):
    return [int(row["epoch"]) for row in read_history(run.history)]


# -- kill -9 inside a save ----------------------------------------------------------------------


@pytest.mark.parametrize("epoch", [3, 2])
def test_killed_while_saving_an_epochs_model_after_its_backup_the_same_command_ends_that_epoch(epoch, tmp_path, capsys):
    # 3 epochs of 4 steps, a backup every 4 steps: the backup already holds the epoch's last step
    # when its last.keras is written. Before, for the last epoch: last.keras truncated, "nothing to
    # do", exit 0, no metrics.json and a backup left for ever.
    run = RunDirectory(tmp_path / "run")
    args = [*TINY, "--epochs", "3", "--save-every-steps", "4", "--output", run.path]
    kill(start_paused(args, f"last.keras#{epoch}", cwd=tmp_path))
    assert backup_step(os.path.join(run.backup, "latest.weights.h5")) == 4 * epoch
    assert iterations(run.last_model) == 4 * (epoch - 1)  # the previous epoch's, whole
    assert len(partials(run.path)) == 1  # the half-written new one, under its temporary name
    assert history_epochs(run) == list(range(1, epoch))

    assert train.main(args) == 0  # the killed run is the only subprocess
    assert f"trained epoch {epoch} to its last step but stopped before the epoch ended: evaluating it now." in capsys.readouterr().out
    assert json.loads(open(run.metrics).read())["steps"] == 12
    assert iterations(run.last_model) == 12 and not os.path.exists(run.backup) and partials(run.path) == []
    rows = read_history(run.history)
    assert [(int(row["epoch"]), int(row["step"])) for row in rows] == [(1, 4), (2, 8), (3, 12)]
    assert "loss" not in rows[epoch - 1] and "val_accuracy" in rows[epoch - 1]  # its training figures died with the process


def test_an_epoch_ended_on_resuming_is_evaluated_over_two_replicas_with_an_uneven_validation_split(tmp_path):
    # The epoch ended by hand evaluates outside fit(): under the same mends (distribute.keras_mended),
    # here the empty batch that 33 validation pictures in batches of 16 leave the second replica;
    # then fit() trains the third epoch under them again, in the same process.
    run = RunDirectory(tmp_path / "run")
    args = [*UNEVEN_VALIDATION, "--epochs", "3", "--save-every-steps", "4", "--cpu-replicas", "2", "--output", run.path]
    kill(start_paused(args, "last.keras#2", cwd=tmp_path))
    assert history_epochs(run) == [1]

    result = run_train(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "trained epoch 2 to its last step but stopped before the epoch ended: evaluating it now." in result.stdout
    rows = read_history(run.history)
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3] and "val_accuracy" in rows[1] and "val_accuracy" in rows[2]
    assert json.loads(open(run.metrics).read())["steps"] == 12


def test_killed_while_writing_a_backup_resumes_from_the_previous_one(tmp_path, capsys):
    run = RunDirectory(tmp_path / "run")
    args = [*TINY, "--epochs", "3", "--save-every-steps", "3", "--output", run.path]
    kill(start_paused(args, "latest.weights.h5#2", cwd=tmp_path))  # the backup of step 6
    assert backup_step(os.path.join(run.backup, "latest.weights.h5")) == 3
    assert len(partials(run.backup)) == 1

    assert train.main(args) == 0
    assert f"Resuming {run.path} at step 3 of 12." in capsys.readouterr().out
    assert json.loads(open(run.metrics).read())["steps"] == 12 and history_epochs(run) == [1, 2, 3]
    assert partials(run.path) == [] and not os.path.exists(run.backup)


@pytest.mark.parametrize(
    "killed_in",
    ["labels.txt", "latest.weights.h5"],  # at start-up (config.json written, nothing else); before the first backup
)
def test_killed_before_anything_worth_keeping_the_same_command_starts_afresh(killed_in, tmp_path):
    # Before: "already holds a run: pass --resume", and --resume: "neither a backup nor last.keras".
    run = RunDirectory(tmp_path / "run")
    args = [*TINY, "--epochs", "2", "--save-every-steps", "3", "--output", run.path]
    kill(start_paused(args, killed_in, cwd=tmp_path))
    assert os.path.exists(run.config) and not run.has_state()

    assert train.main(args) == 0
    assert json.loads(open(run.metrics).read())["steps"] == 8 and history_epochs(run) == [1, 2]
    assert partials(run.path) == [] and run.read_labels()


# -- one process per run directory ----------------------------------------------------------------


def test_a_second_process_on_a_run_directory_gets_the_holders_pid_and_changes_nothing(tmp_path, capsys):
    run = RunDirectory(tmp_path / "run")
    args = [*TINY, "--epochs", "2", "--output", run.path]
    holder = start_paused(args, "last.keras", cwd=tmp_path)
    try:
        before = {name: os.path.getmtime(os.path.join(run.path, name)) for name in os.listdir(run.path)}
        line = one_line_error_in_process(train.main, args, capsys)
        assert line.startswith(f"error: {run.path} is in use: process {holder.pid} is training in it.")
        assert one_line_error_in_process(train.main, [*args, "--resume"], capsys) == line
        assert {name: os.path.getmtime(os.path.join(run.path, name)) for name in os.listdir(run.path)} == before
    finally:
        kill(holder)
    # kill -9 released the lock: the same command takes the run over (and continues its last.keras-less epoch 1 afresh).
    assert train.main(args) == 0


# -- a full disk ----------------------------------------------------------------------------------


def assert_every_file_whole(run):
    for name in os.listdir(run.path):
        path = os.path.join(run.path, name)
        if name.endswith(".keras"):
            keras.saving.load_model(path)
        elif name.endswith(".json"):
            json.loads(open(path).read())
    if run.has_backup():
        with h5py.File(os.path.join(run.backup, "latest.weights.h5"), "r", locking=False) as file:
            assert "optimizer" in file


@pytest.mark.root
def test_a_full_disk_is_one_line_and_the_same_command_continues_once_space_is_freed(tmp_path, capsys):
    with small_filesystem(tmp_path / "disk", "1m") as disk:
        run = RunDirectory(disk / "run")
        args = [*TINY, "--epochs", "3", "--save-every-steps", "2", "--output", run.path]
        line = one_line_error_in_process(train.main, args, capsys, code=1)
        assert line.startswith(f"error: No space left on the disk holding {run.path} while writing: free some space;")
        assert partials(run.path) == [] and not run.is_finished()
        assert_every_file_whole(run)

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        assert train.main(args) == 0
        assert json.loads(open(run.metrics).read())["steps"] == 12 and history_epochs(run) == [1, 2, 3]
        assert_every_file_whole(run)


@pytest.mark.root
def test_a_read_only_output_is_one_line_and_nothing_is_written(tmp_path, capsys):
    with small_filesystem(tmp_path / "disk", "1m", read_only=True) as disk:
        line = one_line_error_in_process(train.main, [*TINY, "--epochs", "1", "--output", str(disk / "run")], capsys)
        assert line == f"error: Cannot write to the run directory {disk / 'run'} (Read-only file system). Nothing was changed."


# -- honest metrics -------------------------------------------------------------------------------


def test_an_epoch_of_one_step_gets_its_own_row_and_the_final_figures_are_the_models(tmp_path, capsys):
    # 20 steps per epoch and 21 steps: the second epoch has one step, too few to time. Before, its
    # row lacked the throughput column, CSVLogger shifted the columns under the first row's header
    # and the run ended with "top-1 238.70 %".
    run = RunDirectory(tmp_path / "run")
    # float32: the oracle evaluates in float32 (as the model is deployed), training's own figures
    # then come from the same arithmetic on any CPU.
    args = ["--depth", "8", "--train-examples", "320", "--validation-examples", "64", "--batch-size", "16", "--steps", "21",
            "--precision", "float32"]
    assert train.main([*args, "--output", run.path]) == 0
    out = capsys.readouterr().out
    rows = read_history(run.history)
    assert [(row["epoch"], row["step"]) for row in rows] == [(1, 20), (2, 21)]
    assert "images_per_second" in rows[0] and "images_per_second" not in rows[1]
    metrics = json.loads(open(run.metrics).read())
    measured = evaluate.evaluate(run.last_model, log=lambda line: None)  # the oracle: Keras on the saved model
    assert metrics["top1"] == pytest.approx(measured["top1"]) and metrics["loss"] == pytest.approx(measured["loss"], rel=1e-4)
    assert metrics["top1"] == rows[1]["val_accuracy"] and metrics["images_per_second"] == rows[0]["images_per_second"]
    assert f"Validation: top-1 {100 * metrics['top1']:.2f} %" in out


# -- saved models load as the README says -------------------------------------------------------------


def test_models_of_every_schedule_load_compiled_in_safe_mode_after_import_keras_resnet(tmp_path):
    # The step schedule (StepDecay) is tested with train.py's own run in test_train.py.
    cosine = tmp_path / "cosine"
    assert train.main([*TINY, "--epochs", "2", "--schedule", "cosine", "--warmup-epochs", "1", "--output", str(cosine)]) == 0
    tuned = tmp_path / "tuned"
    assert train.main([*TINY, "--epochs", "2", "--weights", str(cosine), "--freeze-epochs", "1", "--output", str(tuned)]) == 0
    paths = [run / name for run in (cosine, tuned) for name in ("best.keras", "last.keras")]
    report = "model.optimizer.get_config()['learning_rate']['class_name'], int(model.optimizer.iterations.numpy())"
    for lines in load_models_in_fresh_processes(paths, report):
        schedules = [line.split()[0] for line in lines]
        assert schedules[:2] == ["CosineDecay"] * 2 and schedules[2:] == ["AfterFrozenPhase"] * 2, lines
        assert lines[1].split()[1] == lines[3].split()[1] == "8"
