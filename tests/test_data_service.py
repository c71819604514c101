"""tf.data service: `keras-resnet data-service` (a dispatcher and worker processes on localhost) and
train.py --data-service, with the real TensorFlow service."""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from keras_resnet.data import pipeline, service, sources

from support.pictures import write_folder
from support.programs import REPOSITORY, start_script


def free_port():
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def start_service(*args):
    """`keras-resnet data-service ARGS` in the background; returns (process, its first line). Its
    stderr, which its workers share, goes to a file: a pipe nobody reads would block them once full."""
    errors = tempfile.TemporaryFile("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_resnet", "data-service", *map(str, args)],
        env={**os.environ, "PYTHONPATH": REPOSITORY},
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    line = process.stdout.readline()
    if not line.startswith("tf.data service: dispatcher at"):
        process.wait(timeout=60)
        errors.seek(0)
        pytest.fail(f"the service did not start: {line}{errors.read()}")
    return process, line


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.stdout.read()


@pytest.fixture
def folder(tmp_path):
    return write_folder(tmp_path / "pictures", per_class=16, size=48)


def served_and_local(folder, port, *, augmentation, batch_size, job_name):
    """The training pipeline of `folder` (24 px crops, seed 3) as the service at `port` makes it, and
    as it is made here."""
    source = sources.open_dataset(f"folder:{folder}", image_size=24)

    def made():
        return pipeline.training_dataset(source, image_size=24, augmentation=augmentation, batch_size=batch_size, seed=3)

    return service.distributed(made(), service.Address("localhost", port), job_name=job_name), made()


@pytest.mark.integration
@pytest.mark.parametrize("augmentation, cache_limit", [("imagenet", 0), ("cifar", pipeline.CACHE_LIMIT_BYTES)], ids=["crops-from-bytes", "kept-decoded"])
def test_the_service_makes_exactly_the_batches_the_local_pipeline_makes(folder, monkeypatch, augmentation, cache_limit):
    """One worker makes the epochs in order: the same crops (rounded to 8 bits, as they travel),
    labels and order as training here, whether each crop is decoded from its file's bytes or the
    pictures are kept decoded in the worker's memory."""
    monkeypatch.setattr(pipeline, "CACHE_LIMIT_BYTES", cache_limit)
    port = free_port()
    process, _ = start_service("--port", port, "--workers", 1)
    try:
        served, local = served_and_local(folder, port, augmentation=augmentation, batch_size=6, job_name="same-batches")
        # The client's dataset is a new one: it keeps the pipeline's options (pipeline.with_input_options).
        assert served.options().autotune.enabled is False and served.options().autotune.initial_parallelism >= 1024
        # Over two epochs of 44 pictures: the batches run across the epochs' boundary.
        for (local_images, local_labels), (images, labels) in zip(local.take(16), served.take(16)):
            np.testing.assert_array_equal(images.numpy(), np.round(local_images.numpy()))
            np.testing.assert_array_equal(labels.numpy(), local_labels.numpy())
    finally:
        stop(process)


@pytest.mark.integration
def test_each_worker_makes_whole_epochs_of_the_pictures_it_keeps_decoded(folder):
    """Two workers, pictures kept decoded: each epoch is made whole by one worker (the epochs are the
    only thing split between them), so every batch that arrives is one a local run makes, and the
    epochs go on for as long as training asks (a worker handed no pictures used to spin for ever)."""
    port = free_port()
    process, _ = start_service("--port", port, "--workers", 2)
    try:
        # Batches of 4 end where the epochs of 44 pictures end: each is within one epoch.
        served, local = served_and_local(folder, port, augmentation="cifar", batch_size=4, job_name="whole-epochs")
        made_here = {np.round(images.numpy()).tobytes() for images, _ in local.take(11 * 12)}  # epochs 0-11
        arrived = [np.round(images.numpy()).tobytes() for images, _ in served.take(11 * 8)]
    finally:
        stop(process)
    assert len(arrived) == 11 * 8 and len(set(arrived)) == len(arrived)
    assert set(arrived) <= made_here


@pytest.mark.integration
def test_training_goes_on_when_a_worker_is_killed_mid_run(folder, tmp_path):
    port = free_port()
    process, line = start_service("--port", port, "--workers", 2)
    worker_pids = [int(pid) for pid in re.search(r"\(pid ([\d, ]+)\)", line).group(1).split(", ")]
    assert len(worker_pids) == 2
    try:
        training = start_script(
            "train.py", "--depth", "8", "--dataset", f"folder:{folder}", "--image-size", "24", "--batch-size", "6",
            "--epochs", "6", "--data-service", f"grpc://localhost:{port}", "--output", tmp_path / "run",
        )
        seen = []
        for output_line in training.stdout:
            seen.append(output_line)
            if output_line.startswith("Epoch 3/"):
                os.kill(worker_pids[0], signal.SIGKILL)  # mid-run: its epoch is lost, the other worker goes on
                break
        rest, err = training.communicate(timeout=300)  # both pipes read at once: neither fills up
        out = "".join(seen) + rest
        assert training.returncode == 0, err
    finally:
        served = stop(process)
    assert "prepared by the tf.data service at grpc://localhost:" in out
    assert "(44 training, " in out  # the same examples as a local run's
    assert "Finished 42 steps" in out  # 6 epochs of 7 steps of 6: as many as a local run
    assert f"warning: worker 1 (pid {worker_pids[0]}) exited" in served


@pytest.mark.integration
def test_training_says_when_its_first_step_waits_on_a_service_without_workers(folder, tmp_path):
    import tensorflow as tf

    dispatcher = tf.data.experimental.service.DispatchServer(tf.data.experimental.service.DispatcherConfig(port=0))
    port = int(dispatcher.target.rsplit(":", 1)[1])
    # train.py as it runs, waiting 3 s instead of FIRST_STEP_PATIENCE_S before it says so.
    program = (
        "import sys; from keras_resnet.data import service; service.FIRST_STEP_PATIENCE_S = 3; "
        "from keras_resnet.cli.train import main; sys.exit(main(sys.argv[1:]))"
    )
    training = subprocess.Popen(
        [sys.executable, "-c", program, "--depth", "8", "--dataset", f"folder:{folder}", "--image-size", "24", "--batch-size", "6",
         "--epochs", "1", "--data-service", f"grpc://localhost:{port}", "--output", str(tmp_path / "run")],
        env={**os.environ, "PYTHONPATH": REPOSITORY}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        said = next((line for line in training.stdout if line.startswith("The first step has not ended")), None)
    finally:
        training.kill()
        training.wait()
    assert said == (
        f"The first step has not ended after 3 s: it waits for batches from the tf.data service at grpc://localhost:{port}. "
        f"If no worker serves it, start one: `keras-resnet data-service --dispatcher localhost:{port}` "
        f"(on a machine that sees the dataset at the same path).\n"
    )


def test_the_first_step_watch_speaks_once_when_no_step_ends_and_never_after_training_stops():
    from keras_resnet.training.callbacks import FirstStepWatch

    said = []
    waiting = FirstStepWatch("waiting", after_seconds=0.2, log=said.append)
    waiting.on_train_begin()
    time.sleep(0.6)
    stepped = FirstStepWatch("stepped", after_seconds=0.2, log=said.append)
    stepped.on_train_begin()
    stepped.on_train_batch_end(0)
    failed = FirstStepWatch("failed", after_seconds=0.2, log=said.append)
    failed.on_train_begin()
    failed.stop()  # what the trainer does when fit() raises (Keras skips on_train_end then)
    time.sleep(0.6)
    assert said == ["waiting"]


@pytest.mark.integration
def test_the_service_stops_its_workers_and_refuses_a_taken_port():
    port = free_port()
    process, line = start_service("--port", port, "--workers", 2)
    worker_pids = [int(pid) for pid in re.search(r"\(pid ([\d, ]+)\)", line).group(1).split(", ")]
    second = subprocess.run(
        [sys.executable, "-m", "keras_resnet", "data-service", "--port", str(port)], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": REPOSITORY}, timeout=120,
    )
    assert second.returncode == 2 and second.stderr == f"error: Port {port} is in use on this machine (another tf.data service?): choose another --port.\n"
    process.send_signal(signal.SIGTERM)  # as a service manager stops it
    assert process.wait(timeout=60) == 0
    assert "tf.data service stopped." in process.stdout.read()
    for pid in worker_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_address_is_checked_and_kept_in_the_run_configuration():
    from keras_resnet.run import config as config_lib
    from keras_resnet.run.resolve import resolve

    config = resolve(depth=8, data_service="localhost:5050")
    assert config.runtime.data_service == "grpc://localhost:5050"
    again = config_lib.RunConfig.from_json(config.to_json())
    assert again.runtime.data_service == "grpc://localhost:5050"
    assert config_lib.RunConfig.from_json({k: v for k, v in config.to_json().items()} | {"runtime": {}}).runtime.data_service is None
    for wrong in ("grpc://host", "http://host:1/x", "host:99999", ":5050"):
        with pytest.raises(config_lib.UsageError, match="--data-service must be grpc://HOST:PORT"):
            resolve(depth=8, data_service=wrong)


@pytest.mark.integration
def test_service_mistakes_are_one_line(tmp_path, folder):
    port = free_port()  # nothing listens there
    for args, message in [
        (["--dispatcher", f"localhost:{port}"], f"Cannot reach the tf.data service dispatcher at grpc://localhost:{port}"),
        ([], "data-service needs --port PORT"),
        (["--dispatcher", "localhost:1", "--workers", "2"], "--workers starts workers beside a dispatcher"),
        (["--dispatcher", "no-port"], "--dispatcher must be grpc://HOST:PORT"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "keras_resnet", "data-service", *args], capture_output=True, text=True,
            env={**os.environ, "PYTHONPATH": REPOSITORY}, timeout=120,
        )
        assert result.returncode == 2 and result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"], result.stderr
        assert message in result.stderr
    import train

    run = tmp_path / "run"
    started = time.monotonic()
    assert train.main(["--depth", "8", "--dataset", f"folder:{folder}", "--data-service", f"grpc://localhost:{port}", "--output", str(run)]) == 2
    assert time.monotonic() - started < 60 and not run.exists()  # refused before anything is written
    assert train.main(["--depth", "8", "--data-service", "http://x/y", "--output", str(run)]) == 2
