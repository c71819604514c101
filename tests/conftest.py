import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


import numpy as np  # noqa: E402
import pytest  # noqa: E402

# LiteRT's GPU accelerator runs on Vulkan: with no GPU here, on SwiftShader, the software Vulkan
# driver of Debian's chromium package (subprocesses inherit the choice). KERAS_RESNET_GPU_REQUIRED=1
# (CI) makes the GPU tests fail instead of skipping when it is missing.
SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json"
if os.path.exists(SWIFTSHADER_ICD) and not (os.environ.get("VK_ICD_FILENAMES") or os.environ.get("VK_DRIVER_FILES")):
    os.environ["VK_ICD_FILENAMES"] = SWIFTSHADER_ICD
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # the Vulkan loader warns without one

import keras_resnet  # noqa: E402
from keras_resnet.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # once, before any test imports TensorFlow loudly


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def layer_names(model):
    return [layer.name for layer in model.layers]


def layers_of_type(model, type_name):
    return [layer for layer in model.layers if type(layer).__name__ == type_name]


def one_line_error(result, code=2):
    """Asserts a finished subprocess failed as users are promised: exit `code`, one line on stderr
    starting "error: ", no traceback. Returns that line."""
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def require_gpu():
    """Skips a test that needs LiteRT's GPU accelerator where no Vulkan driver is configured (fails
    instead under KERAS_RESNET_GPU_REQUIRED=1)."""
    if os.environ.get("VK_ICD_FILENAMES") or os.environ.get("VK_DRIVER_FILES"):
        return
    message = f"no Vulkan driver for LiteRT's GPU accelerator: apt install chromium libvulkan1 (SwiftShader, {SWIFTSHADER_ICD})"
    if os.environ.get("KERAS_RESNET_GPU_REQUIRED") == "1":
        pytest.fail(message)
    pytest.skip(message)


def one_line_error_in_process(main, args, capsys, code=2, *, no_output=False):
    """The same promise as one_line_error, for a command-line `main(args)` called in this process
    (a traceback would surface as the exception itself); with no_output, nothing on stdout either.
    Returns the line."""
    try:
        returned = main(args)
    except SystemExit as exit:  # argparse's errors (keras_resnet.cli.ArgumentParser): one line, exit 2
        returned = exit.code
    assert returned == code
    captured = capsys.readouterr()
    assert not no_output or captured.out == "", captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


@contextlib.contextmanager
def small_filesystem(path, size, *, read_only=False):
    """A tmpfs of `size` mounted at `path` (root only); skips the test where mounting is not allowed,
    fails instead under KERAS_RESNET_FAULTS_REQUIRED=1 (CI, as root)."""
    import subprocess

    os.makedirs(path)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        message = f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.strip()}"
        if os.environ.get("KERAS_RESNET_FAULTS_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def load_models_in_fresh_processes(paths, report):
    """Loads each .keras file in `paths` with `keras.saving.load_model` (safe mode) in a new Python
    process, once with `import keras` before `import keras_resnet` and once after, as users write it.
    `report` is a Python expression of `model` printed per file. Returns each run's output lines."""
    import subprocess

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


def load_script(path):
    """A script of the repository (experiments/, bench/, edge_demo/) as a module, to call its main()."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Short training on the embedded dataset that still gives a model worth quantizing: ResNet-8 (95.7 %
# top-1 in 45 s on 2 cores). The conversion bounds are checked on its 1000 validation images.
TRAINED = ["--depth", "8", "--epochs", "6", "--validation-examples", "1000"]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A train.py run directory of a trained ResNet-8 (shared by the conversion and edge tests)."""
    import train

    output = tmp_path_factory.mktemp("runs") / "resnet8"
    assert train.main([*TRAINED, "--output", str(output)]) == 0
    return output


@pytest.fixture(scope="session")
def converted_run(trained_run):
    """trained_run/tflite: every LiteRT target of convert/to_tflite.py, with its report."""
    from keras_resnet.cli import convert

    assert convert.main(["--run", str(trained_run), "--latency-runs", "50"]) == 0
    return trained_run / "tflite"
