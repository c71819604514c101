"""edge_demo/: classify.py and serve.py as a board runs them (TensorFlow made unimportable), on a
ResNet-8 converted by convert/to_tflite.py, and the LiteRT.js page in Debian's headless Chromium
agreeing with classify.py."""

import ast
import base64
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from support.assertions import one_line_error, one_line_error_in_process
from support.programs import REPOSITORY
from support.requirements import CHROMIUM, require_browser
from keras_resnet.cli import classify, serve
from keras_resnet.runtime import classifier
from keras_resnet.runtime import server as server_lib

EDGE_DEMO = os.path.join(REPOSITORY, "edge_demo")
SAMPLES = os.path.join(EDGE_DEMO, "samples")
CLASS_NAMES = ["circle", "square", "triangle", "star", "ring", "cross", "crescent", "stripes", "checkerboard", "dots"]
OUTPUT = os.path.join(REPOSITORY, "tests", "output", "edge_demo")  # screenshots, kept after the run
CHROMIUM_ARGS = [  # as root, on a machine with no internet (STACK-NOTES.md)
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A camera for getUserMedia: Chromium's generated test pattern, allowed without asking.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]

# A board: importing TensorFlow, Keras or OpenCV fails, and every attempt is written down.
BOARD_SITECUSTOMIZE = '''
import os, sys

class NotOnThisBoard:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in os.environ["BOARD_BLOCKED"].split(","):
            with open(os.environ["BOARD_IMPORT_LOG"], "a") as log:
                log.write(name + "\\n")
            raise ModuleNotFoundError(f"No module named {name!r} (not installed on this board)", name=name)
        return None

sys.meta_path.insert(0, NotOnThisBoard())
'''
WITHOUT_TENSORFLOW = ("tensorflow", "keras", "tf_keras", "tensorflow_datasets", "tensorflow_model_optimization")


@pytest.fixture
def board(tmp_path):
    """Environment for a subprocess that behaves like a board without TensorFlow (and, with
    `without_opencv`, without OpenCV); `attempts()` lists the imports it tried of what is blocked."""
    site = tmp_path / "board-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BOARD_SITECUSTOMIZE)
    log = tmp_path / "blocked-imports.txt"

    class Board:
        def env(self, *, without_opencv=False):
            blocked = WITHOUT_TENSORFLOW + (("cv2",) if without_opencv else ())
            environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            return {**environment, "PYTHONPATH": str(site), "BOARD_BLOCKED": ",".join(blocked), "BOARD_IMPORT_LOG": str(log)}

        def attempts(self):
            return log.read_text().split() if log.exists() else []

    return Board()


def run_classify(board, *args, without_opencv=False, timeout=120):
    return subprocess.run(
        [sys.executable, os.path.join(EDGE_DEMO, "classify.py"), *map(str, args)],
        capture_output=True,
        text=True,
        env=board.env(without_opencv=without_opencv),
        timeout=timeout,
        cwd=REPOSITORY,
    )


def parse_results(stdout):
    """{image path: [(class name, score)]} from classify.py's output."""
    results, current = {}, None
    for line in stdout.splitlines():
        header = re.match(r"^(\S.*?)  \(\d+\.\d+ ms\)$", line)
        entry = re.match(r"^  (\d+)\. (.+?)\s+(\d+\.\d+)$", line)
        if header:
            current = results.setdefault(header.group(1), [])
        elif entry and current is not None:
            current.append((entry.group(2), float(entry.group(3))))
    return results


@pytest.fixture(scope="module")
def models(committed_run):
    """The committed ResNet-8's .tflite models (test_packaging classifies freshly converted ones)."""
    tflite = committed_run / "tflite"
    return {
        "int8": tflite / "resnet8_int8-qat.tflite",
        "float": tflite / "resnet8_gpu.tflite",
        "fp32": tflite / "resnet8_fp32.tflite",
    }


def sample(name):
    return os.path.join(SAMPLES, f"{name}.png")


# -- classify.py on a board -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["int8", "float"])
def test_classify_runs_without_tensorflow_and_names_the_samples(board, models, kind):
    result = run_classify(board, "--model", models[kind], SAMPLES, "--top-k", "3")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert board.attempts() == []  # not even a guarded import of TensorFlow or Keras
    dtype = "uint8" if kind == "int8" else "float32"
    assert result.stdout.splitlines()[0].startswith(f"{models[kind].name}: {dtype} input 32×32, 10 classes, on CPU")
    results = parse_results(result.stdout)
    assert sorted(results) == sorted(os.path.join(SAMPLES, f"{name}.png") for name in CLASS_NAMES)
    for path, top in results.items():
        assert len(top) == 3 and [score for _, score in top] == sorted((score for _, score in top), reverse=True)
        assert {name for name, _ in top} <= set(CLASS_NAMES)  # the names packed inside the model file
    # The ResNet-8 scores 95.7 % on the embedded dataset: wrong preprocessing (channel order,
    # scaling, crop) would not name most samples right.
    right = [path for path, top in results.items() if top[0][0] == os.path.basename(path)[:-4]]
    assert len(right) >= 8, results


def test_scores_match_the_keras_model_on_the_same_picture(board, models, committed_run):
    import keras_resnet
    from keras_resnet.run.directory import RunDirectory

    config = RunDirectory(committed_run).read_config()
    keras_model = keras_resnet.build(**config.model.build_arguments(), weights=str(committed_run / "best.keras"))
    names = ["circle", "star", "dots"]
    result = run_classify(board, "--model", models["fp32"], *[sample(n) for n in names], "--top-k", "10")
    assert result.returncode == 0, result.stderr
    results = parse_results(result.stdout)
    for name in names:
        with Image.open(sample(name)) as image:
            pixels = np.asarray(image.convert("RGB").resize((32, 32), Image.BILINEAR), np.float32)
        expected = keras_model.predict(pixels[None], verbose=0)[0]
        printed = dict(results[sample(name)])
        for index, class_name in enumerate(CLASS_NAMES):
            assert printed[class_name] == pytest.approx(expected[index], abs=1e-3), (name, class_name)


def test_picture_modes_sizes_and_orientation_give_the_pictures_scores(board, models, tmp_path):
    with Image.open(sample("crescent")) as opened:
        rgb = opened.convert("RGB")
    gray = rgb.convert("L")
    variants = {
        "rgb.png": rgb,
        "rgba-opaque.png": rgb.convert("RGBA"),
        "cmyk.tif": rgb.convert("CMYK"),  # lossless: RGB → CMYK → RGB is exact in Pillow
        "wide.png": _padded_sideways(rgb),  # the centre crop is the sample
        "gray.png": gray,
        "gray16.png": Image.fromarray(np.asarray(gray).astype(np.uint16) * 257),  # 16-bit: scaled, not clipped
        "palette.png": rgb.quantize(256),
        "cmyk.jpg": rgb.convert("CMYK"),
    }
    for file_name, image in variants.items():
        image.save(tmp_path / file_name)
    rotated = tmp_path / "rotated.jpg"  # stored sideways, upright once EXIF orientation 6 is applied
    exif = Image.Exif()
    exif[0x0112] = 6
    rgb.transpose(Image.Transpose.ROTATE_90).save(rotated, exif=exif, quality=100)
    result = run_classify(board, "--model", models["float"], *[tmp_path / f for f in variants], rotated, "--top-k", "10")
    assert result.returncode == 0, result.stderr
    results = {os.path.basename(path): dict(top) for path, top in parse_results(result.stdout).items()}
    for exact in ("rgba-opaque.png", "cmyk.tif"):
        assert results[exact] == results["rgb.png"], exact
    # The centre crop of the padded picture is the sample, but the antialiased resize reads its
    # filter's support across the crop's edge: the two border columns differ a little, the scores
    # by far less than a class.
    for name, score in results["rgb.png"].items():
        assert results["wide.png"][name] == pytest.approx(score, abs=0.005), name
    assert results["gray16.png"] == results["gray.png"]
    for approximate in ("palette.png", "cmyk.jpg", "rotated.jpg"):
        best = max(results[approximate], key=results[approximate].get)
        assert best == max(results["rgb.png"], key=results["rgb.png"].get), approximate


def _padded_sideways(image):
    width, height = image.size
    wide = Image.new("RGB", (width + 64, height), (255, 0, 0))
    wide.paste(image, (32, 0))
    return wide


def test_transparency_is_laid_over_white():
    image = Image.new("RGBA", (4, 4), (10, 20, 30, 255))
    image.putpixel((0, 0), (10, 20, 30, 0))
    image.putpixel((1, 0), (0, 0, 0, 128))
    rgb = np.asarray(classifier.to_rgb(image))
    assert rgb[0, 0].tolist() == [255, 255, 255]
    assert rgb[0, 1].tolist() == [127, 127, 127]
    assert rgb[3, 3].tolist() == [10, 20, 30]
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 0, 200, 100, 50])
    palette.putpixel((1, 0), 1)
    palette.info["transparency"] = 0
    assert np.asarray(classifier.to_rgb(palette)).tolist() == [[[255, 255, 255], [200, 100, 50]]]


def test_broken_and_missing_pictures_are_reported_and_the_good_ones_still_classified(board, models, tmp_path):
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(open(sample("ring"), "rb").read()[:2000])
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    result = run_classify(board, "--model", models["int8"], truncated, sample("ring"), text, tmp_path / "gone.png", sample("dots"))
    assert result.returncode == 2
    assert sorted(parse_results(result.stdout)) == sorted([sample("ring"), sample("dots")])
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors), result.stderr
    assert "truncated.png: not an image Pillow can read" in errors[0]
    assert "notes.jpg: not an image Pillow can read" in errors[1]
    assert "gone.png: no such file" in errors[2]
    assert "Traceback" not in result.stderr


def test_a_directory_without_pictures_is_reported(board, models, tmp_path):
    result = run_classify(board, "--model", models["int8"], tmp_path, sample("star"))
    assert result.returncode == 2
    assert list(parse_results(result.stdout)) == [sample("star")]
    assert result.stderr.strip() == f"error: {tmp_path}: no image files (.jpg, .jpeg, .png, .bmp, .gif, .webp, .tif, .tiff, .ppm, .pgm) in this directory"


def test_files_that_are_not_models_are_one_line(board, models, tmp_path, capsys):
    text = tmp_path / "model.tflite"
    text.write_text("hello")
    # One in a real process on a board: exit code 2, one line, no traceback and no C++ log.
    assert "is not a .tflite model" in one_line_error(run_classify(board, "--model", text, sample("star")))

    def error(*arguments):
        return one_line_error_in_process(classify.main, [*map(str, arguments), sample("star")], capsys)

    cut = tmp_path / "cut.tflite"
    cut.write_bytes(models["int8"].read_bytes()[:4096])
    assert "LiteRT cannot load this model" in error("--model", cut)
    assert "cannot read model" in error("--model", tmp_path / "absent.tflite")
    # What edgetpu_compiler writes cannot run without the Edge TPU: say so instead of LiteRT's error.
    compiled = tmp_path / "resnet8_edgetpu.tflite"
    compiled.write_bytes(models["int8"].read_bytes() + b"edgetpu-custom-op")
    assert "compiled for the Edge TPU" in error("--model", compiled)


def test_labels_from_a_file_and_a_wrong_count(board, models, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"shape {i}\n" for i in range(10)))
    result = run_classify(board, "--model", models["int8"], "--labels", labels, sample("circle"), "--top-k", "1")
    assert result.returncode == 0, result.stderr
    assert parse_results(result.stdout)[sample("circle")][0][0].startswith("shape ")
    labels.write_text("only\ntwo\n")
    line = one_line_error_in_process(classify.main, ["--model", str(models["int8"]), "--labels", str(labels), sample("circle")], capsys)
    assert "names 2 classes but the model has 10" in line


def test_missing_delegate_libraries_name_what_to_install(models, capsys):
    def error(*arguments):
        return one_line_error_in_process(classify.main, [*map(str, arguments), sample("star")], capsys)

    edgetpu = error("--model", models["int8"], "--delegate", "edgetpu")
    assert "libedgetpu.so.1" in edgetpu and "libedgetpu1-std" in edgetpu
    other = error("--model", models["float"], "--delegate", "gpu", "--delegate-library", "/nowhere/libgpu.so")
    assert "/nowhere/libgpu.so" in other and "leave out --delegate-library to use LiteRT's GPU accelerator" in other


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["float", "int8"])
def test_delegate_gpu_runs_the_samples_on_the_gpu_accelerator_as_the_cpu_does(board, models, kind):
    on_cpu = run_classify(board, "--model", models[kind], SAMPLES, "--top-k", "1")
    on_gpu = run_classify(board, "--model", models[kind], SAMPLES, "--top-k", "1", "--delegate", "gpu", "--benchmark", "5")
    assert on_gpu.returncode == 0, on_gpu.stderr
    assert on_gpu.stderr == ""  # LiteRT's C++ log (environment, adapter, teardown) kept out
    first = on_gpu.stdout.splitlines()[0]
    assert re.search(r"on GPU \(.+; LiteRT GPU accelerator, every op on the GPU\) with ai_edge_litert$", first), first
    if "SwiftShader" in first:
        assert "is a software renderer: the GPU code path runs, at CPU speed" in on_gpu.stdout
    assert board.attempts() == []
    gpu, cpu = parse_results(on_gpu.stdout), parse_results(on_cpu.stdout)
    assert sorted(gpu) == sorted(cpu) and len(gpu) == 10
    for path in cpu:
        assert gpu[path][0][0] == cpu[path][0][0], path  # the same top-1 on every sample
        tolerance = 2 / 256 if kind == "int8" else 2e-3
        assert gpu[path][0][1] == pytest.approx(cpu[path][0][1], abs=tolerance), path
    assert re.search(r"benchmark: 5 runs .* median \d+\.\d+ ms", on_gpu.stdout)


def test_delegate_gpu_without_a_vulkan_driver_says_what_to_install(board, models):
    environment = {**board.env(), "VK_ICD_FILENAMES": "/nonexistent/icd.json"}
    result = subprocess.run(
        [sys.executable, os.path.join(EDGE_DEMO, "classify.py"), "--model", str(models["float"]), "--delegate", "gpu", sample("star")],
        capture_output=True, text=True, timeout=120, env=environment,
    )
    line = one_line_error(result)  # one line: none of LiteRT's C++ log
    assert "found no GPU adapter" in line and "Vulkan driver" in line and "VK_ICD_FILENAMES" in line
    assert result.stdout == ""


def test_a_library_that_is_not_a_delegate_is_one_line(board, models):
    # libm loads, but has no tflite_plugin_create_delegate (LiteRT's load_delegate would raise, then
    # print a traceback from its half-built Delegate's __del__: so in a real process).
    line = one_line_error(run_classify(board, "--model", models["float"], "--delegate", "gpu", "--delegate-library", "libm.so.6", sample("star")))
    assert "libm.so.6 is not a TFLite delegate library (it has no tflite_plugin_create_delegate)" in line


@pytest.fixture(scope="module")
def noop_delegate(tmp_path_factory):
    """A real external-delegate library (tests/noop_delegate.c, built with gcc) that takes no operator."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build the test delegate")
    library = tmp_path_factory.mktemp("delegate") / "libnoop_delegate.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), os.path.join(REPOSITORY, "tests", "noop_delegate.c")], check=True)
    return library


def test_a_delegate_library_is_loaded_through_load_delegate(board, models, noop_delegate):
    arguments = ["--model", models["float"], sample("square"), "--top-k", "10"]
    on_cpu = run_classify(board, *arguments)
    delegated = run_classify(board, *arguments, "--delegate", "gpu", "--delegate-library", noop_delegate)
    assert delegated.returncode == 0, delegated.stderr
    assert f"on GPU delegate ({noop_delegate}) with ai_edge_litert" in delegated.stdout.splitlines()[0]
    assert parse_results(delegated.stdout) == parse_results(on_cpu.stdout)  # the delegate took no op


def test_a_delegate_that_fails_to_start_is_one_line_with_its_reason(board, models, noop_delegate):
    environment = board.env()
    result = subprocess.run(
        [sys.executable, os.path.join(EDGE_DEMO, "classify.py"), "--model", str(models["int8"]), "--delegate", "edgetpu",
         "--delegate-library", str(noop_delegate), sample("star")],
        capture_output=True, text=True, timeout=120, env={**environment, "KERAS_RESNET_TEST_DELEGATE_FAILS": "1"},
    )
    line = one_line_error(result)
    assert f"{noop_delegate} loaded but gave no delegate: no device found; is the Edge TPU plugged in" in line


def test_benchmark_reports_median_p90_and_frames_per_second(board, models):
    for arguments in (["--benchmark", "50"], ["--benchmark", "50", sample("ring")]):
        result = run_classify(board, "--model", models["int8"], "--threads", "1", *arguments)
        assert result.returncode == 0, result.stderr
        assert "on CPU (1 thread)" in result.stdout
        match = re.search(r"benchmark: 50 runs .* median (\d+\.\d+) ms, p90 (\d+\.\d+) ms, (\d+\.\d+) frames/s", result.stdout)
        assert match, result.stdout
        median, p90, frames_per_second = map(float, match.groups())
        assert 0 < median <= p90
        # Frames per second come from the mean: at most the median's rate times the spread.
        assert 0 < frames_per_second <= 1000 / median * 1.5


def test_camera_frames_are_classified_through_opencv(board, models, tmp_path):
    # OpenCV reads an image sequence as it reads a camera: the same VideoCapture, BGR frames.
    for index, name in enumerate(["cross", "stripes", "circle"]):
        shutil.copy(sample(name), tmp_path / f"frame{index:02d}.png")
    still = run_classify(board, "--model", models["float"], *[sample(n) for n in ["cross", "stripes", "circle"]], "--top-k", "1")
    expected = [top[0][0] for top in parse_results(still.stdout).values()]
    result = run_classify(board, "--model", models["float"], "--camera", tmp_path / "frame%02d.png")
    assert result.returncode == 0, result.stderr
    frames = re.findall(r"^frame (\d+): (\S+) (\d\.\d\d)", result.stdout, flags=re.MULTILINE)
    assert [name for _, name, _ in frames] == expected  # BGR frames turned to RGB, as the pictures are
    assert result.stdout.strip().endswith("3 frames classified")
    limited = run_classify(board, "--model", models["float"], "--camera", tmp_path / "frame%02d.png", "--frames", "2")
    assert limited.stdout.strip().endswith("2 frames classified")


def test_camera_without_opencv_or_without_a_camera_is_one_line(board, models, tmp_path):
    line = one_line_error(run_classify(board, "--model", models["int8"], "--camera", "0", without_opencv=True))
    assert "pip install opencv-python-headless" in line
    line = one_line_error(run_classify(board, "--model", models["int8"], "--camera", tmp_path / "none%02d.png"))
    assert "could not be opened" in line


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--top-k", "0", "x.png"], "argument --top-k: must be an integer of at least 1. Received: 0."),
        (["--threads", "-1", "x.png"], "argument --threads: must be an integer from 1 to 1024. Received: -1."),
        (["--benchmark", "1e3"], "argument --benchmark: expects an integer from 1 to 1000000. Received: '1e3'."),
        ([], "nothing to classify"),
        (["--camera", "0", "x.png"], "give images or --camera, not both"),
        (["--frames", "-3", "--camera", "0"], "argument --frames: must be an integer of at least 0. Received: -3."),
    ],
)
def test_bad_flags_are_one_line(models, arguments, message, capsys):
    assert message in one_line_error_in_process(classify.main, ["--model", str(models["int8"]), *arguments], capsys)


BOARD_FILES = [
    "edge_demo/classify.py",
    "edge_demo/serve.py",
    "keras_resnet/__init__.py",
    "keras_resnet/quiet.py",
    "keras_resnet/ranges.py",
    "keras_resnet/cli/__init__.py",
    "keras_resnet/cli/classify.py",
    "keras_resnet/cli/serve.py",
    *(f"keras_resnet/runtime/{name}" for name in os.listdir(os.path.join(REPOSITORY, "keras_resnet", "runtime")) if name.endswith(".py")),
]


def test_the_board_code_parses_as_python_3_7():
    # The Coral Dev Board's Mendel Linux has Python 3.7 with Coral's tflite_runtime.
    for name in BOARD_FILES:
        with open(os.path.join(REPOSITORY, name)) as file:
            tree = ast.parse(file.read(), filename=name, feature_version=(3, 7))
        assert not runtime_annotations_newer_than_3_7(tree), (name, runtime_annotations_newer_than_3_7(tree))


def runtime_annotations_newer_than_3_7(tree):
    """Annotations that Python 3.7 evaluates (a dataclass field's, a signature's) written in a syntax
    it cannot run: `X | None` (3.10) and `list[int]`-style generics (3.9). They parse; they fail at
    import. Lines of the offending annotations; none where `from __future__ import annotations`."""
    if any(isinstance(node, ast.ImportFrom) and node.module == "__future__" and any(a.name == "annotations" for a in node.names) for node in tree.body):
        return []
    annotations = [node.annotation for node in ast.walk(tree) if isinstance(node, (ast.AnnAssign, ast.arg)) and node.annotation is not None]
    annotations += [node.returns for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None]
    found = []
    for annotation in annotations:
        for node in ast.walk(annotation):
            union = isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)
            generic = isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in ("list", "dict", "tuple", "set", "frozenset", "type")
            if union or generic:
                found.append(annotation.lineno)
                break
    return found


def test_the_board_check_finds_annotations_python_3_7_cannot_run():
    assert runtime_annotations_newer_than_3_7(ast.parse("import dataclasses\n@dataclasses.dataclass\nclass A:\n    gpu: int | None = None\n")) == [4]
    assert runtime_annotations_newer_than_3_7(ast.parse("def f(x: list[int]) -> None:\n    pass\n")) == [1]
    assert runtime_annotations_newer_than_3_7(ast.parse("from typing import Optional\nx: Optional[int] = None\n")) == []
    assert runtime_annotations_newer_than_3_7(ast.parse("from __future__ import annotations\nx: int | None = None\n")) == []


@pytest.mark.integration
def test_committed_samples_are_what_make_samples_draws(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(EDGE_DEMO, "make_samples.py"), "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == sorted(f"{name}.png" for name in CLASS_NAMES)
    for name in CLASS_NAMES:
        with Image.open(tmp_path / f"{name}.png") as drawn, Image.open(sample(name)) as committed:
            assert drawn.size == committed.size == (128, 128)
            difference = np.abs(np.asarray(drawn, np.int16) - np.asarray(committed, np.int16))
            assert difference.max() <= 1, name


# -- serve.py and the page in Chromium ---------------------------------------------------------------


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, board, model, *extra):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(EDGE_DEMO, "serve.py"), "--model", str(model), "--host", "127.0.0.1", "--port", str(self.port), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=board.env(),
            cwd=REPOSITORY,
        )
        self.banner = []
        for line in self.process.stdout:
            self.banner.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C"):
                break
        assert self.process.poll() is None, self.process.stderr.read()
        # The address as serve.py prints it (http, or https with a certificate).
        self.url = re.search(rf"https?://127\.0\.0\.1:{self.port}/", "\n".join(self.banner)).group(0)

    def get(self, path, *, context=None):
        return urllib.request.urlopen(self.url.rstrip("/") + path, timeout=30, context=context)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        return self.process.stderr.read()


@pytest.fixture
def server(board, models):
    servers = []

    def start(model=models["int8"], *extra):
        servers.append(Server(board, model, *extra))
        return servers[-1]

    yield start
    for running in servers:
        running.stop()


def test_serve_prints_the_address_and_the_camera_note_and_serves_only_its_files(server, board, models):
    running = server()
    banner = "\n".join(running.banner)
    assert banner.startswith("Serving resnet8_int8-qat.tflite (uint8 input 32×32, 10 classes)")
    assert running.url in banner
    assert "https:// or http://localhost" in banner and "--certfile" in banner
    description = json.load(running.get("/model.json"))
    assert description["input"] == {"shape": [1, 32, 32, 3], "dtype": "uint8", "scale": 1.0, "zero_point": 0}
    assert description["labels"] == CLASS_NAMES and description["top_k"] == 5
    assert description["preprocessing"] == {"crop_fraction": 1.0, "filter": "bilinear"}
    # The self-test the page runs on WebGPU: the model's own pictures, with the CPU's scores for them.
    test = description["selftest"]
    assert len(test["pictures"]) == len(test["expected"]) == 8 and test["tolerance"] == 0.1
    cpu = classifier.Classifier(str(models["int8"]))
    for encoded, expected in zip(test["pictures"], test["expected"]):
        pixels = np.frombuffer(base64.b64decode(encoded), np.uint8).reshape(32, 32, 3)
        cpu.model.set_image(pixels.astype(np.float32))
        cpu.model.invoke()
        np.testing.assert_allclose(expected, cpu.model.probabilities(), atol=1e-6)
    # The sample strip: the run's validation pictures the conversion wrote beside the model.
    samples = json.load(running.get("/samples.json"))
    assert samples == sorted(os.listdir(models["int8"].parent / "samples")) and len(samples) == 12
    assert running.get(f"/samples/{samples[0]}").headers["Content-Type"] == "image/png"
    assert "Sample pictures: " in banner
    assert running.get("/labels.txt").read().decode().split() == CLASS_NAMES
    wasm = running.get("/vendor/litertjs/core/wasm/litert_wasm_internal.wasm")
    assert wasm.headers["Content-Type"] == "application/wasm"
    assert wasm.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    for outside in ("/../serve.py", "/vendor/litertjs/core/../../../../classify.py", "/samples/../serve.py", "/nothing.js"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            running.get(outside)
        assert refused.value.code == 404, outside
    assert board.attempts() == []


def test_serve_refuses_a_bad_model_and_a_busy_port(board, server, models, tmp_path):
    def run_serve(*args):
        return subprocess.run(
            [sys.executable, os.path.join(EDGE_DEMO, "serve.py"), *map(str, args)], capture_output=True, text=True, env=board.env(), timeout=60
        )

    text = tmp_path / "notes.tflite"
    text.write_text("hello")
    assert "is not a .tflite model" in one_line_error(run_serve("--model", text))
    running = server()
    line = one_line_error(run_serve("--model", models["int8"], "--host", "127.0.0.1", "--port", running.port))
    assert f"cannot listen on 127.0.0.1:{running.port}" in line
    assert "--keyfile" in one_line_error(run_serve("--model", models["int8"], "--certfile", "cert.pem"))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_serve_over_https_with_a_certificate(server, models, tmp_path):
    certificate, key = self_signed_certificate(tmp_path)
    running = server(models["int8"], "--certfile", str(certificate), "--keyfile", str(key))
    assert running.url.startswith("https://")
    assert "Browsers allow the camera only" not in "\n".join(running.banner)  # the camera works over https
    trusting = ssl.create_default_context(cafile=str(certificate))
    assert running.get("/labels.txt", context=trusting).read().decode().split() == CLASS_NAMES


def self_signed_certificate(directory):
    key, certificate = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(certificate)],
        check=True,
        capture_output=True,
    )
    return certificate, key


def raw_request(port, request, *, tls=None):
    """Sends `request` (bytes) as it is and returns the response's status code (None if the server
    hung up without one). http.server answers a request line it cannot parse HTTP/0.9-style, with
    the error page alone: its code is read from the page."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as connection:
        if tls is not None:
            connection = tls.wrap_socket(connection, server_hostname="127.0.0.1")
        connection.sendall(request)
        response = b""
        while chunk := connection.recv(65536):
            response += chunk
    if response.startswith(b"HTTP/"):
        return int(response.split()[1])
    page = re.search(rb"Error code: (\d+)", response)
    return int(page.group(1)) if page else None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize("scheme", ["https", "http"])
def test_an_idle_client_does_not_block_the_others(scheme, server, models, tmp_path):
    # Before: the TLS handshake ran inside accept() on the serving thread, with no timeout, so one
    # connection that sent nothing froze the server for every client.
    certificate, key = self_signed_certificate(tmp_path)
    running = server(models["int8"], *(["--certfile", str(certificate), "--keyfile", str(key)] if scheme == "https" else []))
    trusting = ssl.create_default_context(cafile=str(certificate)) if scheme == "https" else None
    idle = [socket.create_connection(("127.0.0.1", running.port)) for _ in range(3)]
    try:
        started = time.monotonic()
        labels = urllib.request.urlopen(running.url + "labels.txt", timeout=10, context=trusting).read()
        assert labels.decode().split() == CLASS_NAMES and time.monotonic() - started < 10
    finally:
        for connection in idle:
            connection.close()
    assert "Traceback" not in running.stop()


def threads_of(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(next(line.split()[1] for line in status if line.startswith("Threads:")))


def closed_by_the_server(connection):
    """Whether the server has closed `connection` (reads nothing, without waiting)."""
    connection.setblocking(False)
    try:
        return connection.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        connection.setblocking(True)


@pytest.mark.integration
def test_a_connection_flood_from_one_address_is_bounded_and_the_others_are_served(server):
    # Before: one thread per connection without a limit, trickling clients dropped only per idle
    # read: thousands of threads, and no answer to anyone for minutes after the flood.
    running = server()
    pid = running.process.pid
    idle_threads = threads_of(pid)
    started = time.monotonic()
    flood = [socket.create_connection(("127.0.0.1", running.port), timeout=10) for _ in range(200)]
    for connection in flood:
        connection.sendall(b"G")  # the start of a request that never comes whole
    time.sleep(1)
    admitted = [connection for connection in flood if not closed_by_the_server(connection)]
    assert len(admitted) == server_lib.MAX_CONNECTIONS_PER_CLIENT, running.stop()
    assert threads_of(pid) <= idle_threads + 2 * server_lib.MAX_CONNECTIONS_PER_CLIENT  # a thread and a deadline timer each
    # Another machine (another loopback address) is served during the flood.
    other = socket.create_connection(("127.0.0.1", running.port), source_address=("127.0.0.2", 0), timeout=10)
    other.sendall(b"GET /labels.txt HTTP/1.0\r\n\r\n")
    assert other.makefile("rb").readline().split()[1] == b"200"
    other.close()
    # Trickling never idles long enough for the read timeout; the request deadline cuts it.
    while time.monotonic() - started < server_lib.REQUEST_DEADLINE_SECONDS + 2:
        for connection in admitted:
            try:
                connection.sendall(b"E")
            except OSError:
                pass
        time.sleep(1)
    assert all(closed_by_the_server(connection) for connection in admitted)
    for connection in flood:
        connection.close()
    assert raw_request(running.port, b"GET /labels.txt HTTP/1.0\r\n\r\n") == 200  # at once, from the flooding address too
    log = running.stop()
    assert "127.0.0.1: too many connections (at most 64, 16 per address): 1 refused so far" in log and "Traceback" not in log, log


def test_request_paths_are_answered_4xx_and_logged_without_their_control_characters(server):
    running = server()
    requests = {
        b"GET /\x1b[2J\x1b[31mred\x07 HTTP/1.0\r\n\r\n": 404,  # raw escape sequences in the path
        b"GET /%1b%5b2J%1b%5b31mred HTTP/1.0\r\n\r\n": 404,  # the same, percent-encoded
        b"GET /\x1b]0;owned\x07 HTTP/1.0\r\nX-Note: \x1b[31m\r\n\r\n": 404,  # a title-setting sequence
        b"\x1b[31m\r\n\r\n": 400,
        b"GET http://[::1 HTTP/1.0\r\n\r\n": 400,  # urlsplit refuses it
        b"GET /%00 HTTP/1.0\r\n\r\n": 400,
        b"GET /a%ff%fe HTTP/1.0\r\n\r\n": 400,  # not UTF-8
        b"GET * HTTP/1.0\r\n\r\n": 400,
        b"GET //etc/passwd HTTP/1.0\r\n\r\n": 404,
        b"GET /..%2f..%2fserve.py HTTP/1.0\r\n\r\n": 404,
        b"GET /" + b"a" * 70000 + b" HTTP/1.0\r\n\r\n": 414,  # http.server's own limit, kept
        b"POST /model.json HTTP/1.0\r\nContent-Length: 0\r\n\r\n": 405,
        b"BREW /pot HTTP/1.0\r\n\r\n": 501,
    }
    for request, status in requests.items():
        assert raw_request(running.port, request) == status, request[:60]
    assert raw_request(running.port, b"GET /labels.txt HTTP/1.0\r\n\r\n") == 200  # still serving
    log = running.stop()
    assert "\x1b" not in log and "\x07" not in log and "Traceback" not in log, log
    assert "not found: /\\x1b[2J\\x1b[31mred\\x07" in log


def test_serve_refuses_files_that_are_not_a_certificate(board, models, tmp_path):
    notes = tmp_path / "notes.pem"
    notes.write_text("not a certificate")
    result = subprocess.run(
        [sys.executable, os.path.join(EDGE_DEMO, "serve.py"), "--model", str(models["int8"]), "--host", "127.0.0.1",
         "--port", str(free_port()), "--certfile", str(notes), "--keyfile", str(notes)],
        capture_output=True, text=True, env=board.env(), timeout=60,
    )
    assert f"cannot use {notes} / {notes} for https" in one_line_error(result)


def test_serve_refuses_a_pipe_as_certificate_instead_of_waiting_on_it(models, tmp_path, capsys):
    # Before: serve.py blocked for ever reading the pipe.
    os.mkfifo(tmp_path / "cert.pem")
    (tmp_path / "key.pem").write_text("key")
    line = one_line_error_in_process(
        serve.main, ["--model", str(models["int8"]), "--port", "0", "--certfile", str(tmp_path / "cert.pem"), "--keyfile", str(tmp_path / "key.pem")], capsys
    )
    assert line == f"error: --certfile {tmp_path / 'cert.pem'}: not a regular file (a pipe or a device): pass a PEM file"


def test_serve_without_litertjs_installed_says_how_to_install_it(tmp_path, models, capsys):
    page = tmp_path / "web"
    page.mkdir()
    shutil.copy(os.path.join(EDGE_DEMO, "web", "index.html"), page / "index.html")  # the page without `npm ci`
    line = one_line_error_in_process(serve.main, ["--model", str(models["int8"]), "--web", str(page)], capsys)
    assert "LiteRT.js is not installed in" in line and f"npm ci --prefix {os.path.relpath(page)}" in line


def test_serve_without_the_pages_files_says_where_they_are(tmp_path, models, capsys):
    # An installed wheel carries the program but not edge_demo/web: --web names a checkout's.
    line = one_line_error_in_process(serve.main, ["--model", str(models["int8"]), "--web", str(tmp_path)], capsys)
    assert line == f"error: --web {tmp_path}: the page's files (index.html) are not there: pass --web with the edge_demo/web folder of a checkout of keras-resnet"


@pytest.mark.integration
def test_the_serve_script_serves_the_page_beside_it_wherever_the_package_comes_from(tmp_path, models, board):
    # edge_demo/serve.py with the package installed elsewhere (a wheel in site-packages, as on a
    # board): the page is its own web/ folder, not one beside the package.
    demo = tmp_path / "edge_demo"
    (demo / "web").mkdir(parents=True)
    shutil.copy(os.path.join(EDGE_DEMO, "serve.py"), demo / "serve.py")
    shutil.copy(os.path.join(EDGE_DEMO, "web", "index.html"), demo / "web" / "index.html")  # without `npm ci`
    result = subprocess.run(
        [sys.executable, str(demo / "serve.py"), "--model", str(models["int8"])], capture_output=True, text=True, env=board.env(), timeout=60, cwd=tmp_path
    )
    assert result.returncode == 2
    assert one_line_error(result) == "error: LiteRT.js is not installed in edge_demo/web/node_modules: run `npm ci --prefix edge_demo/web` first"


# WebGPU in headless Chromium: without --disable-gpu, with --enable-unsafe-webgpu (Linux), the page
# gets Chromium's SwiftShader adapter, a software GPU: the page's real WebGPU code path.
WEBGPU_ARGS = [argument for argument in CHROMIUM_ARGS if argument != "--disable-gpu"] + ["--enable-unsafe-webgpu"]


@pytest.fixture(scope="module", params=["wasm", "webgpu"])
def chromium(request):
    """Headless Chromium, once as the WASM page sees it (no GPU) and once with WebGPU."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        arguments = WEBGPU_ARGS if request.param == "webgpu" else CHROMIUM_ARGS
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=arguments)
        browser.backend = request.param
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def pages_closed_after_each_test(request):
    """A page left open goes on running: the camera test's loop kept classifying frames on the same
    (software) GPU through the next tests, slowing their start several-fold on 2 cores."""
    yield
    if "chromium" in request.fixturenames:
        for context in request.getfixturevalue("chromium").contexts:
            context.close()


def open_page(chromium, url, *, init_script=None):
    page = chromium.new_page(viewport={"width": 1000, "height": 820})
    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    if init_script:
        page.add_init_script(init_script)
    if "gpu-timeout" not in url:  # a loaded machine must not turn a slow software GPU into a fallback
        url += "?gpu-timeout=600"
    page.goto(url)
    page.wait_for_function("['ready', 'error'].includes(document.body.dataset.state)", timeout=120_000)
    assert page.get_attribute("body", "data-state") == "ready", page.inner_text("#status")
    return page, problems


def classify_in_page(page, path):
    page.set_input_files("#file-input", path)
    page.wait_for_function("['classified', 'error'].includes(document.body.dataset.state)", timeout=60_000)
    return [(item.get_attribute("data-label"), float(item.get_attribute("data-score"))) for item in page.query_selector_all("#top5 li")]


@pytest.mark.parametrize("kind", ["int8", "float"])
def test_the_page_in_chromium_agrees_with_classify_py(chromium, server, board, models, kind):
    expected = parse_results(run_classify(board, "--model", models[kind], SAMPLES, "--top-k", "5").stdout)
    page, problems = open_page(chromium, server(models[kind]).url)
    # The page says where it runs, and why: WASM when the browser has no GPU adapter.
    assert page.get_attribute("#backend", "data-accelerator") == chromium.backend
    if chromium.backend == "wasm":
        assert re.match(r"Running on WASM with XNNPACK \(\d+ threads?\): WebGPU found no GPU adapter\.", page.inner_text("#backend"))
    else:
        assert page.inner_text("#backend") == "Running on WebGPU (every op on the GPU; its answers checked against the CPU's)."
        assert page.get_attribute("body", "data-gpu-check") == "passed"
    for name in CLASS_NAMES:
        started = time.monotonic()
        top = classify_in_page(page, sample(name))  # a hang fails here (60 s); a picture takes well under 1 s
        assert len(top) == 5 and page.inner_text("#status") == f"{name}.png classified.", (name, time.monotonic() - started)
        printed = expected[sample(name)]
        # The page resizes as Pillow does, so both runtimes see the same pixels: the same winner
        # with the same score (to the printed 3 decimals; one uint8 step for the integer model). The
        # GPU computes in float16 (and the integer model in float): a few steps more.
        assert top[0][0] == printed[0][0], (name, top, printed)
        if chromium.backend == "wasm":
            tolerance = 1 / 256 + 5e-4 if kind == "int8" else 2e-3
        else:
            tolerance = 4 / 256 if kind == "int8" else 1e-2
        assert top[0][1] == pytest.approx(printed[0][1], abs=tolerance), (name, top, printed)
    assert re.fullmatch(r"\d+\.\d ms per frame", page.inner_text("#latency"))
    os.makedirs(OUTPUT, exist_ok=True)
    page.screenshot(path=os.path.join(OUTPUT, f"page-{models[kind].stem}-{chromium.backend}.png"), full_page=True)
    assert problems == []


def test_the_camera_loop_survives_a_failed_frame(chromium, server, models):
    page, problems = open_page(chromium, server(models["float"]).url)
    page.click("#camera-button")
    page.wait_for_function("Number(document.body.dataset.frames || 0) >= 2", timeout=60_000)
    # The next three frames fail inside the page's preprocessing, as a lost camera frame would.
    page.evaluate(
        """() => {
            const original = CanvasRenderingContext2D.prototype.getImageData;
            let failing = 3;
            CanvasRenderingContext2D.prototype.getImageData = function (...args) {
                if (failing > 0) { failing -= 1; throw new Error('injected frame failure'); }
                return original.apply(this, args);
            };
        }"""
    )
    page.wait_for_function("document.getElementById('status').textContent.includes('injected frame failure')", timeout=60_000)
    assert page.inner_text("#status").startswith("A camera frame could not be classified (injected frame failure)")
    failed_at = int(page.get_attribute("body", "data-frames"))
    # The loop goes on: later frames are classified, and the page says so again.
    page.wait_for_function(f"Number(document.body.dataset.frames) >= {failed_at + 3}", timeout=60_000)
    assert page.get_attribute("body", "data-frame-failures") == "3"
    assert page.get_attribute("body", "data-state") == "camera"
    assert page.inner_text("#status") == "Classifying the camera’s frames."
    assert len(page.query_selector_all("#top5 li")) == 5 and problems == []


# The stall once seen on WebGPU (no answer within 120 s), made deterministic: every GPU read-back and
# every wait for submitted GPU work never completes.
GPU_NEVER_ANSWERS = """
    GPUBuffer.prototype.mapAsync = function () { return new Promise(() => {}); };
    GPUQueue.prototype.onSubmittedWorkDone = function () { return new Promise(() => {}); };
"""


def test_a_webgpu_that_never_answers_falls_back_to_wasm_instead_of_hanging(chromium, server, board, models):
    if chromium.backend != "webgpu":
        pytest.skip("needs the WebGPU adapter")
    page, problems = open_page(chromium, server(models["float"]).url + "?gpu-timeout=3", init_script=GPU_NEVER_ANSWERS)
    backend = page.inner_text("#backend")
    assert page.get_attribute("#backend", "data-accelerator") == "wasm", backend
    assert re.fullmatch(r"Running on WASM with XNNPACK \(1 thread\): WebGPU did not answer within 3 s \((compiling the model|its first run)\)\.", backend)
    top = classify_in_page(page, sample("star"))  # the page works, on the CPU, as classify.py does
    printed = parse_results(run_classify(board, "--model", models["float"], sample("star")).stdout)[sample("star")]
    assert top[0][0] == printed[0][0] and page.inner_text("#status") == "star.png classified." and problems == []


def test_the_page_reports_a_picture_it_cannot_read(chromium, server, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_text("not a picture")
    page, _ = open_page(chromium, server().url)
    classify_in_page(page, str(broken))
    assert page.get_attribute("body", "data-state") == "error"
    assert page.inner_text("#status") == "broken.png: not a picture this browser can read."
    # A sample picked from the strip is classified after it.
    page.click("#samples button[title='ring-1.png']")  # the run's own validation pictures, written by the conversion
    page.wait_for_function("document.body.dataset.state === 'classified'", timeout=60_000)
    assert page.inner_text("#status") == "ring-1.png classified."


# -- one evaluation transform, and checked GPU answers, in the page ---------------------------------

# The page's own transform (edge_demo/web/preprocess.js) on a picture Chromium decodes itself.
PAGE_INPUT = """async ([url, size, cropFraction]) => {
    const {inputPixels} = await import('/preprocess.js');
    const picture = new Image();
    picture.src = url;
    await picture.decode();
    const canvas = document.createElement('canvas');
    return Array.from(inputPixels(picture, picture.naturalWidth, picture.naturalHeight, {width: size, height: size, cropFraction, canvas}));
}"""


def test_the_page_gives_the_model_the_pixels_keras_and_classify_py_give_it(chromium, server, board, models, committed_run, tmp_path):
    """The same picture files (sizes, shapes, grayscale, transparency, PNG and JPEG) through the
    three implementations of the evaluation transform, each with its own decoder: within one 8-bit
    step per pixel; and the model's top-1 the same in Keras, classify.py and the page."""
    if chromium.backend != "wasm":
        pytest.skip("the transform is the page's JavaScript whatever runs the model")
    import keras
    import tensorflow as tf

    from keras_resnet.data import pipeline, sources
    from keras_resnet.data.pictures import decode_picture
    from keras_resnet.runtime.preprocessing import Preprocessing
    from support.pictures import write_parity_pictures

    pictures = write_parity_pictures(tmp_path)
    page, problems = open_page(chromium, server(models["fp32"], "--samples", str(tmp_path)).url)
    worst = 0
    for path in pictures:
        for crop in (1.0, 0.875):
            for size in (32, 64):
                preprocessing = Preprocessing(crop)
                in_page = np.array(page.evaluate(PAGE_INPUT, [f"/samples/{path.name}", size, crop]), np.float32).reshape(size, size, 3)
                pillow = preprocessing.apply(classifier.load_image(path), (size, size)).astype(np.float32)
                in_keras = pipeline.evaluation_transform(decode_picture(tf.io.read_file(str(path)), sources.picture_orientation(path)), size, preprocessing).numpy()
                for name, other in (("classify.py", pillow), ("Keras", in_keras)):
                    difference = np.abs(in_page - other).max()
                    assert difference <= 1, (path.name, crop, size, name, difference)
                    worst = max(worst, difference)
    # The model's answer: the page (its transform from model.json), classify.py and Keras agree.
    model = keras.saving.load_model(committed_run / "best.keras", compile=False)
    expected = parse_results(run_classify(board, "--model", models["fp32"], *pictures, "--top-k", "1").stdout)
    for path in pictures:
        top = classify_in_page(page, str(path))
        keras_input = pipeline.evaluation_transform(decode_picture(tf.io.read_file(str(path)), sources.picture_orientation(path)), 32, Preprocessing(1.0))
        keras_top1 = CLASS_NAMES[int(np.argmax(model.predict(keras_input[None], verbose=0)))]
        assert top[0][0] == expected[str(path)][0][0] == keras_top1, (path.name, top[0], expected[str(path)], keras_top1)
    assert problems == []


# A GPU that answers wrongly, made deterministic: every buffer the page reads back from WebGPU arrives
# with its bytes reversed (float scores become other numbers, or NaN).
GPU_ANSWERS_WRONG = """
    const getMappedRange = GPUBuffer.prototype.getMappedRange;
    GPUBuffer.prototype.getMappedRange = function (...args) {
        const range = getMappedRange.apply(this, args);
        if (this.usage & GPUBufferUsage.MAP_READ) new Uint8Array(range).reverse();
        return range;
    };
"""


def test_a_gpu_whose_answers_are_wrong_is_not_used(chromium, server, board, models):
    if chromium.backend != "webgpu":
        pytest.skip("needs the WebGPU adapter")
    page, problems = open_page(chromium, server(models["float"]).url, init_script=GPU_ANSWERS_WRONG)
    backend = page.inner_text("#backend")
    assert page.get_attribute("body", "data-gpu-check") == "failed", backend
    assert page.get_attribute("#backend", "data-accelerator") == "wasm"
    assert re.fullmatch(
        r"Running on WASM with XNNPACK \(1 thread\): WebGPU's answers were wrong for this model: on 8 self-test pictures a "
        r"class's probability differs from the CPU's by up to (\d\.\d\d|a score that is not a number|more than 1 \(scores that are "
        r"not probabilities\)) \(picture \d; tolerance 0\.10\)\.",
        backend,
    ), backend
    # What the page then shows is the CPU's answer, as classify.py gives it.
    top = classify_in_page(page, sample("star"))
    printed = parse_results(run_classify(board, "--model", models["float"], sample("star")).stdout)[sample("star")]
    assert top[0][0] == printed[0][0] and top[0][1] == pytest.approx(printed[0][1], abs=2e-3) and problems == []


def test_a_model_the_conversion_marked_cpu_only_runs_on_wasm_and_the_heading_fits_its_classes(chromium, server, tmp_path):
    if chromium.backend != "webgpu":
        pytest.skip("needs the WebGPU adapter")
    from keras_resnet.runtime import metadata
    from support.tiny_models import pointwise_classifier, write_int8

    marked = tmp_path / "three.tflite"
    verdict = metadata.GpuVerdict(usable=False, reason="42.50 % top-1 agreement with its CPU run on 200 validation pictures (needs 99 %)")
    write_int8(pointwise_classifier(classes=3, size=8, subsampled=True), marked, class_names=["bag", "boot", "sandal"], gpu=verdict)
    Image.new("RGB", (8, 8), (200, 30, 30)).save(tmp_path / "red.png")
    page, problems = open_page(chromium, server(marked, "--samples", str(tmp_path)).url)
    assert page.get_attribute("body", "data-gpu-check") == "cpu-only"
    assert re.fullmatch(
        r"Running on WASM with XNNPACK \(\d+ threads?\): the conversion marked this model CPU only \(on LiteRT's GPU "
        r"accelerator 42\.50 % top-1 agreement with its CPU run on 200 validation pictures \(needs 99 %\)\)\.",
        page.inner_text("#backend"),
    ), page.inner_text("#backend")
    assert page.inner_text("#top-heading") == "Top 3"
    page.click("#samples button[title='red.png']")
    page.wait_for_function("document.body.dataset.state === 'classified'", timeout=60_000)
    assert len(page.query_selector_all("#top5 li")) == 3 and problems == []


# -- what the device gets on a folder of pictures -----------------------------------------------------


def test_class_folders_give_the_accuracy_a_csv_and_the_confusion_matrix(board, models, tmp_path):
    photos = tmp_path / "photos"
    folders = {name: (name.upper() if name == "circle" else name) for name in CLASS_NAMES}  # CIRCLE/: matched loosely
    for name, folder in folders.items():
        (photos / "val" / folder).mkdir(parents=True)
        shutil.copy(sample(name), photos / "val" / folder / f"{name}.png")
    shutil.copy(sample("star"), photos / "val" / "circle".upper() / "misfiled-star.png")  # a star filed as a circle
    shutil.copy(sample("ring"), photos / "stray.png")  # in no class folder: classified, not counted
    result = run_classify(
        board, "--model", models["int8"], photos, "--csv", tmp_path / "answers.csv", "--confusion", tmp_path / "confusion.png", "--top-k", "2"
    )
    assert result.returncode == 0, result.stderr
    printed = parse_results(result.stdout)
    assert len(printed) == 12
    # The hand count: a picture is right when the printed winner is its folder's class.
    truth = {path: next((name for name, folder in folders.items() if os.path.basename(os.path.dirname(path)) == folder), None) for path in printed}
    counted = [path for path in printed if truth[path] is not None]
    right = sum(printed[path][0][0] == truth[path] for path in counted)
    assert len(counted) == 11 and printed[str(photos / "val" / "CIRCLE" / "misfiled-star.png")][0][0] != "circle"
    assert f"top-1 {100 * right / 11:.2f} % on 11 pictures whose folder names their class ({right} right, resnet8_int8-qat.tflite on the CPU); 1 other picture not counted" in result.stdout
    rows = (tmp_path / "answers.csv").read_text().splitlines()
    assert rows[0] == "path,true_class,class_1,score_1,class_2,score_2" and len(rows) == 13
    for row in rows[1:]:
        path, true_class, class_1, score_1, class_2, score_2 = row.split(",")
        assert true_class == (truth[path] or "") and [class_1, class_2] == [name for name, _ in printed[path]]
        assert float(score_1) == pytest.approx(printed[path][0][1], abs=5e-4)
    with Image.open(tmp_path / "confusion.png") as picture:
        assert picture.format == "PNG" and picture.width > 600
    assert "wrote " + str(tmp_path / "confusion.png") in result.stdout


def test_the_confusion_matrix_counts_and_per_class_figures():
    from keras_resnet.runtime import confusion

    counts = confusion.matrix([0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 0, 2], 4)
    np.testing.assert_array_equal(counts, [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    figures = confusion.per_class(counts)
    assert figures["recall"] == [0.5, 2 / 3, 1.0, None] and figures["precision"] == [0.5, 2 / 3, 1.0, None]
