"""Each stage checked against the next, on a folder of real picture files: what `train.py --evaluate`
and the conversion report say about a model is what classify.py then gets on the same pictures, on
the CPU and on LiteRT's GPU accelerator. The evaluation transform is the paper's 87.5 % centre crop
(chosen at training time with --eval-crop: ImageNet-style nets take it by default, but a ResNet-8
learns these pictures in seconds), the shortcuts projections (strided 1x1 convolutions, which
LiteRT's GPU accelerator computes wrongly in int8 unless the conversion subsamples first), on pictures
of several sizes and shapes, PNG and JPEG."""

import json
import os
import re

import numpy as np
import pytest
from PIL import Image

import train
from keras_resnet.cli import classify, convert
from keras_resnet.data import synthetic

CLASSES = ("circle", "stripes", "checkerboard")  # of the embedded dataset's: learnt in a few epochs
TRAIN_PER_CLASS, VALIDATION_PER_CLASS = 60, 34  # 102 validation pictures: one picture is under 1 point


def write_photos(root):
    """The embedded dataset's shapes as files: 48 px pictures stretched to several shapes and sizes."""
    rng = np.random.default_rng(0)
    wanted = {synthetic.CLASS_NAMES.index(name): TRAIN_PER_CLASS + VALIDATION_PER_CLASS for name in CLASSES}
    counts = {label: 0 for label in wanted}
    for image, label in synthetic.dataset("train", image_size=48, examples=5000).as_numpy_iterator():
        label = int(label)
        if label not in wanted or counts[label] >= wanted[label]:
            continue
        split = "train" if counts[label] < TRAIN_PER_CLASS else "val"
        counts[label] += 1
        width, height = (int(48 * factor) for factor in rng.uniform(0.8, 1.6, 2))
        picture = Image.fromarray(image).resize((width, height), Image.BICUBIC)
        folder = root / split / synthetic.CLASS_NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        extension = ".png" if counts[label] % 2 else ".jpg"
        picture.save(folder / f"{counts[label]:03d}{extension}", **({"quality": 92} if extension == ".jpg" else {}))
        if counts == {label: wanted[label] for label in wanted}:
            break
    return root


def top1_line(output):
    found = re.findall(r"top-1 (\d+\.\d\d) %", output)
    assert found, output
    return float(found[-1])


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    """A run trained on the folder, evaluated, converted: (photos, run directory, report)."""
    base = tmp_path_factory.mktemp("device-path")
    photos = write_photos(base / "photos")
    run = base / "run"
    assert train.main([
        "--depth", "8", "--shortcut", "B", "--eval-crop", "0.875", "--dataset", f"folder:{photos}", "--image-size", "32",
        "--epochs", "15", "--batch-size", "16", "--output", str(run),
    ]) == 0
    assert convert.main([
        "--run", str(run), "--targets", "fp32,gpu,int8-ptq", "--latency-runs", "3", "--calibration-steps", "2",
    ]) == 0
    report = json.loads((run / "tflite" / "report.json").read_text())
    return photos, run, report


@pytest.mark.e2e
def test_evaluate_report_and_classify_give_the_same_top1(story, capsys):
    photos, run, report = story
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["evaluation_crop"] == 0.875  # the paper's evaluation, chosen at training time
    assert report["preprocessing"]["crop_fraction"] == 0.875

    capsys.readouterr()
    assert train.main(["--evaluate", str(run)]) == 0
    evaluated = top1_line(capsys.readouterr().out)
    assert evaluated == pytest.approx(100 * report["keras"]["top1"], abs=0.005)
    assert evaluated > 60, "the model must have learnt something for the comparison to mean anything"

    for target in ("fp32", "gpu", "int8-ptq"):
        assert classify.main(["--model", str(run / "tflite" / f"resnet8_{target}.tflite"), str(photos / "val")]) == 0
        output = capsys.readouterr().out
        classified = top1_line(output)
        assert f"on {3 * VALIDATION_PER_CLASS} pictures whose folder names their class" in output
        # The report's device column is classify.py's figure: the same code on the same files.
        assert classified == pytest.approx(100 * report["targets"][target]["device_top1"], abs=0.005), target
        if target == "fp32":
            assert abs(classified - evaluated) <= 1.0  # Keras in TensorFlow and the device: one transform
    # A finding may only be a quantization's: never the pictures' preparation.
    for finding in report["findings"]:
        preparation = float(re.search(r"([-+]\d+\.\d\d) points from preparing the pictures", finding).group(1))
        assert abs(preparation) <= 1.0, finding


@pytest.mark.gpu
@pytest.mark.e2e
def test_the_gpu_answers_as_the_cpu_does_or_says_it_fell_back(story, capsys):
    photos, run, report = story
    for target in ("gpu", "int8-ptq"):
        measured = report["targets"][target]["gpu"]
        assert measured["selftest"]["pictures"] == 8 and measured["verdict"]["usable"] is True, measured
        assert measured["agreement_with_cpu"] >= 0.99
    model = str(run / "tflite" / "resnet8_int8-ptq.tflite")
    assert classify.main(["--model", model, "--delegate", "gpu", "--csv", str(run / "gpu.csv"), str(photos / "val")]) == 0
    on_gpu = capsys.readouterr().out
    assert "LiteRT GPU accelerator" in on_gpu.splitlines()[0] and "warning:" not in on_gpu
    assert classify.main(["--model", model, "--csv", str(run / "cpu.csv"), str(photos / "val")]) == 0
    capsys.readouterr()
    # Three classes: three answers per picture, as many columns as answers.
    assert (run / "gpu.csv").read_text().splitlines()[0] == "path,true_class,class_1,score_1,class_2,score_2,class_3,score_3"
    gpu_rows = (run / "gpu.csv").read_text().splitlines()[1:]
    cpu_rows = (run / "cpu.csv").read_text().splitlines()[1:]
    same = sum(g.split(",")[2] == c.split(",")[2] for g, c in zip(gpu_rows, cpu_rows))
    assert len(gpu_rows) == len(cpu_rows) == 3 * VALIDATION_PER_CLASS and same / len(cpu_rows) >= 0.99


@pytest.mark.e2e
def test_the_conversion_writes_the_runs_own_pictures_for_the_page(story):
    photos, run, _ = story
    samples = sorted(os.listdir(run / "tflite" / "samples"))
    # Two of each class, the original files (a JPEG stays a JPEG).
    assert [name.rsplit("-", 1)[0] for name in samples] == sorted([name for name in CLASSES for _ in range(2)])
    originals = {path.read_bytes() for path in (photos / "val").rglob("*.*")}
    assert all((run / "tflite" / "samples" / name).read_bytes() in originals for name in samples)
