"""The repository's programs as tests run them: in a subprocess (as a user types them) or loaded as
a module (to call main() in this process), and what they leave behind (backups, saved models)."""

import importlib.util
import os
import subprocess
import sys
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# A tiny, fast train.py configuration: ResNet-8 on 16x16 synthetic images, 4 steps per epoch.
TINY_MODEL = ["--depth", "8", "--image-size", "16", "--batch-size", "16", "--train-examples", "64"]
TINY = [*TINY_MODEL, "--validation-examples", "32"]
# TINY with 33 validation pictures: in batches of 16 over 2 replicas, the last batch (1 picture)
# leaves the second replica an empty batch in every evaluation (distribute.empty_evaluation_batches_skipped).
UNEVEN_VALIDATION = [*TINY_MODEL, "--validation-examples", "33"]
# Short training on the embedded dataset that still gives a model worth quantizing: ResNet-8 (about
# 95 % top-1 in under a minute on 2 cores). The conversion bounds are checked on its 1000 validation
# images. The session fixture trained_run and the committed fixture (support/fixtures.py) are this.
TRAINED = ["--depth", "8", "--epochs", "6", "--validation-examples", "1000"]


def run_script(script, *args, cwd=None, env=None, timeout=300):
    """`python SCRIPT ARGS` (a path relative to the repository) in a new process, as a user runs it."""
    return subprocess.run(
        [sys.executable, os.path.join(REPOSITORY, script), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": REPOSITORY, **(env or {})},
        timeout=timeout,
    )


def run_train(*args, cwd=None, env=None, timeout=300):
    return run_script("train.py", *args, cwd=cwd, env=env, timeout=timeout)


def run_python(code, *, timeout=300):
    """`python -c CODE` in a fresh interpreter (nothing imported yet); asserts that it exited 0 and
    returns the finished process."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result


def start_script(script, *args, cwd=None, env=None):
    """`python SCRIPT ARGS` started in the background (to interrupt it), its output piped."""
    return subprocess.Popen(
        [sys.executable, os.path.join(REPOSITORY, script), *map(str, args)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": REPOSITORY, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def load_script(path):
    """A script of the repository (experiments/, bench/, edge_demo/) as a module, to call its main();
    its folder goes first on sys.path, as Python puts it for a script it runs (for the script's
    own modules beside it: experiments/plots.py)."""
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def backup_step(weights_path):
    """The global step a backup holds (the step count saved with the weights, which the resume
    itself reads)."""
    import h5py

    # Without HDF5's file lock: a reader holding it makes the trainer's next backup write fail.
    with h5py.File(weights_path, "r", locking=False) as file:
        return int(file.attrs["keras_resnet_step"])


def wait_for_backup_step(run_root, minimum, process, timeout=240):
    """Waits until a run under `run_root` has backed up step `minimum` or later; returns that step."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        for weights in run_root.glob("*/backup/latest.weights.h5"):
            try:
                step = backup_step(weights)
            except (OSError, KeyError):  # replaced by the next backup while being read
                continue
            if step >= minimum:
                return step
        time.sleep(0.02)
    raise AssertionError(f"no backup at step >= {minimum} before the run ended: {process.communicate()}")


def load_models_in_fresh_processes(paths, report):
    """Loads each .keras file in `paths` with `keras.saving.load_model` (safe mode) in a new Python
    process, once with `import keras` before `import keras_resnet` and once after, as users write it.
    `report` is a Python expression of `model` printed per file. Returns each run's output lines."""
    code = (
        "import sys\n{first}\n{second}\n"
        "for path in sys.argv[1:]:\n"
        "    model = keras.saving.load_model(path)\n"
        f"    print({report})\n"
    )
    outputs = []
    for first, second in (("import keras", "import keras_resnet"), ("import keras_resnet", "import keras")):
        result = subprocess.run(
            [sys.executable, "-c", code.format(first=first, second=second), *map(str, paths)],
            capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout.splitlines())
    return outputs
