"""convert/to_tflite.py: the five LiteRT targets of a trained run checked against its Keras model,
integer-only graphs for every variant the package builds, the report, labels inside the model file,
bad input. Every model is read back with the real LiteRT interpreter."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from ai_edge_litert import interpreter as litert

import keras_resnet
import train
from support.assertions import one_line_error, one_line_error_in_process
from support.programs import REPOSITORY
from support.requirements import small_filesystem
from keras_resnet import internals
from keras_resnet.cli import convert as to_tflite
from keras_resnet.data import synthetic
from keras_resnet.litert import targets
from keras_resnet.run.directory import RunDirectory
from keras_resnet.runtime import metadata
from keras_resnet.runtime.preprocessing import Preprocessing

# The smallest run of a variant: enough for its graph, not for its accuracy.
TINY = ["--image-size", "16", "--batch-size", "16", "--train-examples", "64", "--validation-examples", "16", "--epochs", "1"]
QUICK_CONVERSION = ["--calibration-steps", "2", "--qat-steps-per-epoch", "2", "--eval-images", "16", "--latency-runs", "5"]
INTEGER_TYPES = (np.uint8, np.int8, np.int32)


def run_convert(*args, timeout=300, env=None):
    return subprocess.run(
        [sys.executable, os.path.join(REPOSITORY, "convert", "to_tflite.py"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def interpreter(path):
    model = litert.Interpreter(model_path=str(path))
    model.allocate_tensors()
    return model


def tensor_types(model):
    """{dtype name} of every tensor an operator reads or writes."""
    tensors = {tensor["index"]: tensor for tensor in model.get_tensor_details()}
    return {
        np.dtype(tensors[index]["dtype"]).name
        for op in internals.litert_operators(model)
        for index in (*op["inputs"], *op["outputs"])
        if index >= 0
    }


def float_tensors(model):
    tensors = {tensor["index"]: tensor for tensor in model.get_tensor_details()}
    return sorted(
        f"{op['op_name']}:{tensors[index]['name']}"
        for op in internals.litert_operators(model)
        for index in (*op["inputs"], *op["outputs"])
        if index >= 0 and np.dtype(tensors[index]["dtype"]).type not in INTEGER_TYPES
    )


@pytest.fixture(scope="module")
def converted(converted_run):
    with open(converted_run / "report.json") as file:
        return converted_run, json.load(file)


# -- the five targets -----------------------------------------------------------------------------


def test_every_target_is_written_with_a_batch_of_one(converted):
    output, _ = converted
    for target in targets.TARGETS:
        model = interpreter(output / f"resnet8_{target}.tflite")
        (given,), (produced,) = model.get_input_details(), model.get_output_details()
        assert given["shape"].tolist() == given["shape_signature"].tolist() == [1, 32, 32, 3], target
        assert produced["shape"].tolist() == [1, 10], target
        if targets.TARGETS[target].integer:
            # Camera frames as they are: uint8 pixels, scale 1, zero point 0.
            assert given["dtype"] == np.uint8 and given["quantization"] == (1.0, 0), target
            assert produced["dtype"] in (np.uint8, np.int8), target
        else:
            assert given["dtype"] == produced["dtype"] == np.float32, target


def test_float16_and_dynamic_range_targets_hold_their_weight_types(converted):
    output, report = converted
    assert "float16" in tensor_types(interpreter(output / "resnet8_gpu.tflite"))
    dynamic = tensor_types(interpreter(output / "resnet8_dynamic.tflite"))
    assert "int8" in dynamic and "float32" in dynamic
    sizes = {target: os.path.getsize(output / f"resnet8_{target}.tflite") for target in targets.TARGETS}
    assert sizes["gpu"] < 0.6 * sizes["fp32"] and sizes["int8-qat"] < 0.4 * sizes["fp32"]
    assert {target: row["size_bytes"] for target, row in report["targets"].items()} == sizes


def test_integer_models_hold_no_float_tensor(converted):
    output, _ = converted
    for target in ("int8-ptq", "int8-qat"):
        assert float_tensors(interpreter(output / f"resnet8_{target}.tflite")) == [], target


def test_fp32_model_computes_what_the_keras_model_computes(trained_run, converted, rng):
    output, _ = converted
    config = RunDirectory(trained_run).read_config()
    keras.config.set_dtype_policy("float32")
    keras_model = keras_resnet.build(**config.model.build_arguments(), weights=str(trained_run / "best.keras"))
    images = rng.uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    model = interpreter(output / "resnet8_fp32.tflite")
    for image, expected in zip(images, keras_model.predict(images, verbose=0)):
        model.set_tensor(model.get_input_details()[0]["index"], image[None])
        model.invoke()
        np.testing.assert_allclose(model.get_tensor(model.get_output_details()[0]["index"])[0], expected, atol=1e-5)


# -- the report -------------------------------------------------------------------------------------


def test_report_meets_the_acceptance_bounds_on_a_trained_model(converted):
    _, report = converted
    rows = report["targets"]
    assert report["images"] == 1000 and report["failures"] == {}
    keras_top1 = report["keras"]["top1"]
    assert keras_top1 > 0.8, "the short training should give a model worth quantizing"
    assert rows["fp32"]["agreement"] == 1.0 and rows["fp32"]["max_abs_diff"] < 1e-4
    assert rows["gpu"]["agreement"] >= 0.995
    assert rows["int8-ptq"]["top1"] >= keras_top1 - 0.01
    assert rows["int8-qat"]["top1"] >= keras_top1 - 0.005
    for target in ("fp32", "gpu", "int8-ptq", "int8-qat"):
        assert rows[target]["acceptance"]["met"] is True, target
        assert rows[target]["keras_top1"] == keras_top1
    # The device path (classify.py's code on the stored 32 x 32 pictures) sees what Keras sees.
    assert report["preprocessing"]["crop_fraction"] == 1.0
    for target, row in rows.items():
        assert row["device_images"] == 1000 and abs(row["device_top1"] - row["top1"]) <= 0.002, (target, row)
    assert report["findings"] == []


@pytest.mark.gpu
def test_every_target_runs_on_the_gpu_and_agrees_with_keras(converted):
    output, report = converted
    assert report["gpu"]["adapter"] and report["gpu"]["software"] is ("SwiftShader" in report["gpu"]["adapter"])
    for target, row in report["targets"].items():
        on_gpu = row["gpu"]
        assert on_gpu is not None, target
        assert on_gpu["fully_accelerated"] is True, target
        assert on_gpu["acceptance"]["met"] is True, (target, on_gpu)
        assert 0 < on_gpu["latency"]["median_ms"] <= on_gpu["latency"]["p90_ms"], target
        assert on_gpu["images"] == 200 and 0.8 < on_gpu["device_top1"] <= 1, target  # the first 200 validation images
        # What runtimes read from the file: the GPU may be used, after the self-test they run too.
        assert on_gpu["verdict"]["usable"] is True and on_gpu["selftest"]["pictures"] == 8, target
        assert metadata.read(row["file"]).gpu == metadata.GpuVerdict(**on_gpu["verdict"])
    assert report["targets"]["gpu"]["gpu"]["agreement_with_cpu"] >= 0.995
    assert report["targets"]["fp32"]["gpu"]["max_abs_diff_with_cpu"] < 1e-3
    for target in ("dynamic", "int8-ptq", "int8-qat"):
        assert report["targets"][target]["gpu"]["agreement_with_cpu"] >= 0.99, target
    table = (output / "report.md").read_text()
    assert f"GPU: LiteRT's GPU accelerator on {report['gpu']['adapter']}" in table
    if report["gpu"]["software"]:
        assert "its timings are not GPU speed" in table


def test_report_fields(converted):
    output, report = converted
    assert report["model"] == "resnet8" and report["build_arguments"]["input_shape"] == [32, 32, 3]
    for target, row in report["targets"].items():
        assert row["file"] == str(output / f"resnet8_{target}.tflite")
        assert 0 <= row["agreement"] <= 1 and 0 <= row["top1"] <= 1
        latency = row["latency"]
        assert 0 < latency["median_ms"] <= latency["p90_ms"] and latency["runs"] == 50 and latency["threads"] >= 1
        assert row["gpu_delegate"] == {"compatible": True, "incompatible_ops": []}, target  # the Analyzer's verdict
        assert "CONV_2D" in row["ops"] and row["op_count"] > 10
        integer = targets.TARGETS[target].integer
        assert row["edgetpu"]["ready"] is integer, (target, row["edgetpu"])
        if integer:
            assert row["max_abs_diff"] is None and row["float_tensors"] == []
            assert row["input"] == {"dtype": "uint8", "shape": [1, 32, 32, 3], "scale": 1.0, "zero_point": 0}
        else:
            assert 0 <= row["mean_abs_diff"] <= row["max_abs_diff"] and row["edgetpu"]["float_model"]
    if shutil.which("edgetpu_compiler") is None:
        assert "apt-get install edgetpu-compiler" in report["edgetpu_compiler"]
    table = (output / "report.md").read_text()
    for target in targets.TARGETS:
        assert f"| {target} |" in table


def test_findings_split_a_device_gap_into_conversion_and_preparation():
    from keras_resnet.litert import report as report_lib

    def row(top1, device, verdict=None):
        return {"top1": top1, "device_top1": device, "gpu": {"verdict": verdict} if verdict else None}

    report = {
        "keras": {"top1": 0.80},
        "targets": {
            "fp32": row(0.80, 0.79),  # 1 point: within the bound
            "int8-qat": row(0.79, 0.70),
            "gpu": row(0.80, 0.80, {"usable": False, "reason": "42.50 % top-1 agreement with its CPU run on 200 validation pictures"}),
        },
    }
    assert report_lib.findings(report) == [
        "int8-qat: the device gets 70.00 % top-1, -10.00 points against Keras' 80.00 %: -1.00 points from the conversion "
        "(int8-qat on Keras' own inputs: 79.00 %), -9.00 points from preparing the pictures (the device's inputs against Keras' own).",
        "gpu: CPU only — on LiteRT's GPU accelerator 42.50 % top-1 agreement with its CPU run on 200 validation pictures; "
        "runtimes run it on the CPU.",
    ]


def test_each_target_has_its_confusion_matrix_on_the_device_path(converted):
    output, report = converted
    table = (output / "report.md").read_text()
    for target, row in report["targets"].items():
        counts = np.array(row["confusion"]["counts"])
        assert counts.shape == (10, 10) and counts.sum() == row["device_images"]
        assert np.trace(counts) / counts.sum() == pytest.approx(row["device_top1"])  # the device column's figure
        assert row["confusion"]["file"] == f"confusion-{target}.png" and (output / row["confusion"]["file"]).stat().st_size > 10_000
        assert f"[{target}](confusion-{target}.png)" in table
    assert report["missed"] == []


def test_a_missed_bound_says_what_to_try():
    from keras_resnet.litert import report as report_lib

    bound = {"bound": "b", "met": False}
    report = {
        "settings": {"calibration_steps": 4, "qat_epochs": 1},
        "targets": {
            "int8-ptq": {"acceptance": bound},
            "int8-qat": {"acceptance": bound},
            "gpu": {"acceptance": {"bound": "b", "met": True}, "gpu": {"acceptance": bound, "verdict": {"usable": False}}},
        },
    }
    assert report_lib.missed(report) == [
        "int8-ptq missed its bound (b): calibrate on more training batches (--calibration-steps 16, now 4), or use int8-qat.",
        "int8-qat missed its bound (b): fine-tune longer (--qat-epochs 3, now 1) or at a lower --qat-lr; more validation "
        "images (--eval-images) make the figure firmer.",
        "gpu on the GPU missed its bound (b): runtimes run it on the CPU (marked CPU only).",
    ]


def test_strict_exits_1_when_a_bound_is_missed_and_still_writes_everything(trained_run, tmp_path, capsys, monkeypatch):
    from keras_resnet.litert import report as report_lib

    # A bound no model meets stands for a quantization that went wrong.
    monkeypatch.setitem(report_lib.ACCEPTANCE, "int8-ptq", ("top-1 above 100 %", lambda row, keras_top1: row["top1"] > 1))
    args = ["--run", str(trained_run), "--targets", "int8-ptq", "--eval-images", "100", "--latency-runs", "2", "--gpu-eval-images", "4"]
    assert to_tflite.main([*args, "--output", str(tmp_path / "lenient")]) == 0
    capsys.readouterr()
    assert to_tflite.main([*args, "--output", str(tmp_path / "strict"), "--strict"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: --strict: 1 acceptance bound missed (see report.md): int8-ptq missed")
    assert "--calibration-steps 16" in error[0]
    assert (tmp_path / "strict" / "resnet8_int8-ptq.tflite").exists()
    assert "Acceptance bounds missed:" in (tmp_path / "strict" / "report.md").read_text()


def test_labels_travel_inside_every_model_file(converted):
    output, _ = converted
    assert (output / "labels.txt").read_text().split("\n")[:-1] == list(synthetic.CLASS_NAMES)
    for target in targets.TARGETS:
        with zipfile.ZipFile(output / f"resnet8_{target}.tflite") as packed:
            assert packed.read("labels.txt").decode().split() == list(synthetic.CLASS_NAMES)
        # The evaluation transform and the self-test pictures travel beside them: one validation
        # picture of each of the first 8 classes, as the device prepares it.
        carried = metadata.read(output / f"resnet8_{target}.tflite")
        assert carried.preprocessing == Preprocessing(1.0) and len(carried.selftest) == 8
        assert all(picture.shape == (32, 32, 3) and picture.dtype == np.uint8 for picture in carried.selftest)
        assert len({picture.tobytes() for picture in carried.selftest}) == 8


# -- every variant converts to an integer-only graph -----------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    "variant",
    [
        ["--depth", "8", "--version", "v2"],
        ["--depth", "8", "--plain"],
        ["--depth", "8", "--shortcut", "B", "--version", "v1"],
        ["--depth", "8", "--shortcut", "C"],
        ["--depth", "50", "--image-size", "32", "--version", "v2"],
    ],
    ids=["v2-option-A", "plain", "v1-option-B", "option-C", "imagenet-resnet50v2"],
)
def test_every_variant_converts_to_an_integer_only_graph(variant, tmp_path):
    run = tmp_path / "run"
    assert train.main([*TINY, *variant, "--output", str(run)]) == 0
    assert to_tflite.main(["--run", str(run), "--targets", "int8-ptq,int8-qat", *QUICK_CONVERSION]) == 0
    report = json.loads((run / "tflite" / "report.json").read_text())
    for target in ("int8-ptq", "int8-qat"):
        model = interpreter(report["targets"][target]["file"])
        assert float_tensors(model) == [], target
        assert model.get_input_details()[0]["dtype"] == np.uint8
        assert report["targets"][target]["edgetpu"]["ready"], report["targets"][target]["edgetpu"]


# -- models outside a run directory, and bad input --------------------------------------------------


@pytest.mark.integration
def test_a_run_that_is_still_training_is_converted_with_a_note(committed_run, tmp_path, capsys):
    run = RunDirectory(tmp_path / "run")
    shutil.copytree(committed_run, run.path, ignore=shutil.ignore_patterns("tflite"))
    with run.lock():  # as train.py holds it while it trains (here: this process)
        assert to_tflite.main(["--run", run.path, "--targets", "fp32", "--eval-images", "16", "--latency-runs", "2"]) == 0
    out = capsys.readouterr().out
    assert f"Note: {run} is still training (process {os.getpid()}): converting best.keras as it is now; convert again when the run has finished." in out
    assert to_tflite.main(["--run", run.path, "--targets", "fp32", "--eval-images", "16", "--latency-runs", "2"]) == 0
    assert "still training" not in capsys.readouterr().out


def test_a_model_file_with_labels_converts_without_its_run(committed_run, tmp_path):
    model = tmp_path / "mine.keras"
    shutil.copy(committed_run / "best.keras", model)
    labels = tmp_path / "names.txt"
    labels.write_text("".join(f"class {index}\n" for index in range(10)))
    assert to_tflite.main(["--model", str(model), "--labels", str(labels), "--targets", "gpu", "--latency-runs", "5"]) == 0
    with zipfile.ZipFile(tmp_path / "tflite" / "resnet8_gpu.tflite") as packed:
        assert packed.read("labels.txt").decode().splitlines() == [f"class {index}" for index in range(10)]


def test_a_target_that_cannot_be_produced_fails_alone(trained_run, tmp_path):
    model = tmp_path / "mine.keras"
    shutil.copy(trained_run / "best.keras", model)
    # No Vulkan driver either: the report says the GPU was not run, and keeps the Analyzer's verdict.
    result = run_convert("--model", str(model), "--targets", "fp32,int8-ptq", "--latency-runs", "5", env={"VK_ICD_FILENAMES": "/nonexistent"})
    line = one_line_error(result)
    assert line.startswith("error: int8-ptq: int8-ptq needs the training data") and "--dataset" in line
    assert sorted(os.listdir(tmp_path / "tflite")) == ["labels.txt", "report.json", "report.md", "resnet8_fp32.tflite"]
    report = json.loads((tmp_path / "tflite" / "report.json").read_text())
    assert report["targets"]["fp32"]["agreement"] is None and "error" in report["targets"]["int8-ptq"]
    assert report["gpu"]["adapter"] is None and report["targets"]["fp32"]["gpu"] is None
    table = (tmp_path / "tflite" / "report.md").read_text()
    assert "| not run; Analyzer: compatible |" in table and "GPU: not run (no GPU adapter)" in table


LAVAPIPE_ICD = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"


@pytest.mark.skipif(not os.path.exists(LAVAPIPE_ICD), reason="Mesa's lavapipe is not installed")
def test_a_vulkan_driver_the_gpu_accelerator_rejects_ends_in_the_report_not_in_an_abort(trained_run, tmp_path):
    """Mesa's lavapipe is a Vulkan driver that LiteRT's WebGPU (Dawn) rejects: no adapter. Tried in the
    converting process, that failure made it abort at exit ("free(): invalid pointer", exit 134)."""
    result = run_convert("--run", str(trained_run), "--targets", "fp32", "--latency-runs", "5",
                         "--output", str(tmp_path / "out"), env={"VK_ICD_FILENAMES": LAVAPIPE_ICD})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "GPU: not run (no GPU adapter)" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize(
    "case, message",
    [
        ("not-a-model", "Cannot load"),
        ("foreign-model", "was not built by keras_resnet"),
        ("run-without-model", "holds no model yet"),
        ("unknown-target", "Unknown --targets int4. Valid: all or a list of fp32"),
        ("no-such-run", "No such run directory"),
        ("corrupt-config", "config.json is not valid JSON"),
        ("old-model-file-alone", "was not built by keras_resnet (or by a version before 0.2"),
        ("wrong-shape-config", "config.json: 'data' field 'image_size' must be an integer from 8 to 2048. Received: -3."),
        ("output-is-a-file", "is a file, not a directory: choose another --output. Nothing was written."),
        ("qat-lr-out-of-range", "argument --qat-lr: must be a number above 0 and at most 1. Received: inf."),
        ("eval-crop-for-a-run", "records the evaluation transform it trained with. Nothing was written."),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(case, message, tmp_path, capsys):
    if case == "not-a-model":
        (tmp_path / "model.keras").write_text("not a model")
        args = ["--model", str(tmp_path / "model.keras")]
    elif case == "foreign-model":
        foreign = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)], name="resnet20")
        foreign.save(tmp_path / "model.keras")
        args = ["--model", str(tmp_path / "model.keras")]
    elif case == "run-without-model":
        (tmp_path / "config.json").write_text("{}")
        args = ["--run", str(tmp_path)]
    elif case == "corrupt-config":
        shutil.copytree(os.path.join(REPOSITORY, "tests", "fixtures", "run-0.1.0"), tmp_path / "run")
        (tmp_path / "run" / "config.json").write_text("{\"model\": ")
        args = ["--run", str(tmp_path / "run")]
    elif case == "old-model-file-alone":
        shutil.copy(os.path.join(REPOSITORY, "tests", "fixtures", "run-0.1.0", "best.keras"), tmp_path / "model.keras")
        args = ["--model", str(tmp_path / "model.keras"), "--dataset", "synthetic"]
    elif case == "wrong-shape-config":
        shutil.copytree(os.path.join(REPOSITORY, "tests", "fixtures", "run-0.1.0"), tmp_path / "run")
        config = json.loads((tmp_path / "run" / "config.json").read_text())
        config["data"]["image_size"] = -3
        (tmp_path / "run" / "config.json").write_text(json.dumps(config))
        args = ["--run", str(tmp_path / "run")]
    elif case == "output-is-a-file":
        (tmp_path / "out").write_text("mine")
        args = ["--run", os.path.join(REPOSITORY, "tests", "fixtures", "run-0.1.0"), "--output", str(tmp_path / "out")]
    elif case == "qat-lr-out-of-range":
        args = ["--run", str(tmp_path), "--qat-lr", "inf"]
    elif case == "eval-crop-for-a-run":
        args = ["--run", os.path.join(REPOSITORY, "tests", "fixtures", "run-0.1.0"), "--eval-crop", "0.875", "--output", str(tmp_path / "out")]
    elif case == "unknown-target":
        args = ["--run", str(tmp_path), "--targets", "fp32,int4"]
    else:
        args = ["--run", str(tmp_path / "nothing")]
    assert message in one_line_error_in_process(to_tflite.main, args, capsys)
    assert not os.path.exists(tmp_path / "tflite")
    if case == "output-is-a-file":
        assert (tmp_path / "out").read_text() == "mine"


@pytest.mark.root
def test_a_read_only_output_is_one_line_and_nothing_is_written(tmp_path, capsys):
    with small_filesystem(tmp_path / "disk", "1m", read_only=True) as disk:
        args = ["--run", os.path.join(REPOSITORY, "tests", "fixtures", "run-0.1.0"), "--output", str(disk / "tflite"), "--targets", "fp32"]
        line = one_line_error_in_process(to_tflite.main, args, capsys)
        assert line == f"error: Cannot write to {disk / 'tflite'} (Read-only file system): choose another --output. Nothing was written."


@pytest.mark.integration
def test_a_run_directory_of_version_0_1_still_converts(tmp_path):
    run = tmp_path / "run-0.1.0"
    shutil.copytree(os.path.join(REPOSITORY, "tests", "fixtures", "run-0.1.0"), run)
    assert to_tflite.main(["--run", str(run), "--targets", "fp32,int8-ptq", *QUICK_CONVERSION]) == 0
    report = json.loads((run / "tflite" / "report.json").read_text())
    assert report["model"] == "resnet8" and report["build_arguments"]["shortcut"] == "A"
    assert report["targets"]["fp32"]["agreement"] == 1.0 and report["targets"]["fp32"]["max_abs_diff"] < 1e-4
    assert report["targets"]["int8-ptq"]["edgetpu"]["ready"]


# -- the Edge TPU compiler, when installed ----------------------------------------------------------


def test_edgetpu_compiler_output_is_read_and_the_compiled_model_keeps_its_labels(trained_run, tmp_path, monkeypatch):
    """Coral's compiler is x86-64 Debian only and not installable here: a stand-in with its command
    line and summary lines (without the appended labels, as it rewrites the flatbuffer) shows that
    the compiled file is found, labelled and counted, and a failure reported."""
    compiler = tmp_path / "bin" / "edgetpu_compiler"
    compiler.parent.mkdir()
    compiler.write_text(
        "#!/bin/sh\n"
        'test "$1" = --show_operations -a "$2" = --out_dir || exit 3\n'
        'out="$3"; model="$4"; compiled="$out/$(basename "$model" .tflite)_edgetpu.tflite"\n'
        'size=$(python3 -c "import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).infolist()[0].header_offset)" "$model")\n'
        'head -c "$size" "$model" > "$compiled"\n'
        'echo "Number of operations that will run on Edge TPU: 25"\n'
        'echo "Number of operations that will run on CPU: 1"\n'
    )
    compiler.chmod(0o755)
    monkeypatch.setenv("PATH", f"{compiler.parent}{os.pathsep}{os.environ['PATH']}")
    output = tmp_path / "out"
    conversion = ["--run", str(trained_run), "--output", str(output), "--eval-images", "16", "--latency-runs", "5"]
    assert to_tflite.main([*conversion, "--targets", "int8-ptq"]) == 0
    report = json.loads((output / "report.json").read_text())
    compiled = report["targets"]["int8-ptq"]["edgetpu"]["compiled"]
    assert compiled == {"file": str(output / "resnet8_int8-ptq_edgetpu.tflite"), "tpu_ops": 25, "cpu_ops": 1}
    assert "edgetpu_compiler" not in report and "compiled: 25 ops on TPU, 1 on CPU" in (output / "report.md").read_text()
    with zipfile.ZipFile(compiled["file"]) as packed:
        assert packed.read("labels.txt").decode().split() == list(synthetic.CLASS_NAMES)

    compiler.write_text("#!/bin/sh\necho 'Model not quantized' >&2\nexit 1\n")
    assert to_tflite.main([*conversion, "--targets", "fp32,int8-ptq"]) == 0
    report = json.loads((output / "report.json").read_text())
    assert report["targets"]["int8-ptq"]["edgetpu"]["compiled"] == {"error": "edgetpu_compiler failed: Model not quantized"}
    assert "compiled" not in report["targets"]["fp32"]["edgetpu"]
