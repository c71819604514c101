"""A user's own photos, end to end in train.py: defaults fitted to a small folder and announced,
fine-tuning from a run of ours without naming its network, evaluation on any folder (figures checked
against a hand count through Pillow), and the confusion outputs."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from support.assertions import one_line_error_in_process
from support.pictures import CLASS_COLOURS, write_class_folders

from keras_resnet.run.directory import dataset_slug

PICTURE_SIZE = (40, 30)  # width, height: a ResNet-18 trains at 64, the smallest default of its family


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    names = write_class_folders(root, classes=4, per_class=30, size=PICTURE_SIZE)
    return root, names


@pytest.fixture(scope="module")
def photo_run(photos, tmp_path_factory):
    """A ResNet-18 trained on the photos with every default: (run directory, its console output)."""
    import io
    from contextlib import redirect_stdout

    import train

    class Console(io.StringIO):
        def reconfigure(self, **options):  # train.main line-buffers its stdout
            pass

    root, _ = photos
    output = tmp_path_factory.mktemp("runs") / "r18"
    console = Console()
    with redirect_stdout(console):
        assert train.main(["--depth", "18", "--dataset", f"folder:{root}", "--epochs", "3", "--output", str(output)]) == 0
    return output, console.getvalue()


@pytest.mark.integration
def test_a_small_folder_gets_a_batch_and_image_size_that_fit_it_and_says_so(photo_run):
    run, console = photo_run
    config = json.loads((run / "config.json").read_text())
    # 120 pictures, 108 for training (10 % held out): 256 halves to 8 (the floor); 30 px pictures:
    # below 224, so smaller, but an ImageNet-style network gets at least 64.
    assert config["training"]["batch_size"] == 8 and config["data"]["image_size"] == 64
    assert config["training"]["learning_rate"] == pytest.approx(0.1 * 8 / 256)
    defaults = next(line for line in console.splitlines() if line.startswith("Defaults chosen for this data:"))
    assert "image size 64 (the pictures' median shorter side is 30 px; an ImageNet-style network gets at least 64)" in defaults
    assert "batch 8 (capped from 256: 108 training pictures)" in defaults
    assert "at 64 px: 39 steps (3 epochs of 13 steps)" in console
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["top1"] > 0.9  # the colours are learnt: the capped batch trains


def test_four_classes_get_no_top5_and_epochs_count_from_1(photo_run):
    run, console = photo_run
    header, *rows = (run / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["1", "2", "3"]
    assert "top5" not in header and "top-5" not in console
    assert json.loads((run / "metrics.json").read_text()).get("top5") is None


def test_training_writes_its_per_class_results_and_confusion_picture(photo_run, photos):
    run, console = photo_run
    _, names = photos
    slug = dataset_slug(f"folder:{photos[0]}")
    figures = json.loads((run / f"evaluation-{slug}.json").read_text())
    assert [row["name"] for row in figures["classes"]] == names
    counts = np.array(figures["confusion"]["counts"])
    assert counts.sum() == figures["pictures"] == 12 and sum(row["pictures"] for row in figures["classes"]) == 12
    assert figures["top1"] == pytest.approx(np.trace(counts) / counts.sum())
    assert "top5" not in figures and figures["model"].endswith("best.keras")
    with Image.open(run / f"confusion-{slug}.png") as picture:
        assert picture.format == "PNG" and picture.width > 400
    assert f"confusion-{slug}.png" in console


@pytest.mark.integration
def test_fine_tuning_from_a_run_takes_its_network_and_image_size(photo_run, photos, tmp_path, capsys):
    import train

    run, _ = photo_run
    root, _ = photos
    output = tmp_path / "tuned"
    assert train.main(["--weights", str(run), "--dataset", f"folder:{root}", "--epochs", "2", "--output", str(output)]) == 0
    console = capsys.readouterr().out
    tuned, original = (json.loads((path / "config.json").read_text()) for path in (output, run))
    for field in ("name", "family", "version", "shortcut", "input_shape"):
        assert tuned["model"][field] == original["model"][field]
    assert f"image size 64 (from {run}/best.keras)" in console
    assert "frozen phase 1 epoch (capped from 2: half the training)" in console  # --epochs 2: a default never fails
    assert "Epoch 1: the classifier only, backbone frozen." in console and "Epoch 2: the whole network." in console


def test_build_takes_the_network_and_weights_of_a_run(photo_run):
    import keras

    import keras_resnet

    run, _ = photo_run
    model = keras_resnet.build(weights=str(run))
    saved = keras.saving.load_model(run / "best.keras", compile=False)
    assert model.build_arguments["depth"] == 18 and model.input_shape == (None, 64, 64, 3) and model.output_shape == (None, 4)
    for mine, theirs in zip(model.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


def test_evaluation_on_another_folder_matches_a_hand_count(photo_run, photos, tmp_path, capsys):
    """Planted mistakes: class1's folder holds class2-coloured pictures. The JSON's confusion counts
    must be what the model answers for each file, prepared independently with Pillow."""
    import keras

    import train
    from keras_resnet.runtime.preprocessing import Preprocessing

    run, _ = photo_run
    _, names = photos
    other = tmp_path / "other"
    colours = [CLASS_COLOURS[0], CLASS_COLOURS[2], CLASS_COLOURS[2], CLASS_COLOURS[3]]
    write_class_folders(other, classes=4, per_class=6, size=(50, 36), seed=7, colours=colours)
    assert train.main(["--evaluate", str(run), "--dataset", f"folder:{other}"]) == 0
    console = capsys.readouterr().out
    slug = dataset_slug(f"folder:{other}")
    figures = json.loads((run / f"evaluation-{slug}.json").read_text())

    model = keras.saving.load_model(run / "best.keras", compile=False)
    config = json.loads((run / "config.json").read_text())
    transform = Preprocessing(config["data"]["evaluation_crop"])
    expected = np.zeros((4, 4), int)
    for label, name in enumerate(names):
        files = sorted((other / name).iterdir())
        pixels = np.stack([transform.apply(Image.open(path).convert("RGB"), (64, 64)) for path in files]).astype(np.float32)
        for answer in np.argmax(model.predict(pixels, verbose=0), axis=1):
            expected[label, answer] += 1
    assert figures["confusion"]["counts"] == expected.tolist()
    assert figures["pictures"] == 24 and figures["top1"] == pytest.approx(np.trace(expected) / 24)
    assert expected[1, 2] >= 5  # the planted pictures are answered as class2 …
    assert figures["most_confused"][0] == {"true": "class1", "answered": "class2", "pictures": int(expected[1, 2])}
    recall = [row["recall"] for row in figures["classes"]]
    assert recall == pytest.approx([expected[i, i] / 6 for i in range(4)])
    assert figures["classes"][2]["precision"] == pytest.approx(expected[2, 2] / expected[:, 2].sum())
    assert (run / f"confusion-{slug}.png").exists()
    assert f"on 24 pictures of folder:{other} (every picture): top-1" in console and "Least often right: class1" in console


def test_a_lone_keras_file_is_evaluated_on_the_data_named(photo_run, photos, tmp_path, capsys):
    import train

    run, _ = photo_run
    root, _ = photos
    alone = tmp_path / "alone" / "model.keras"
    alone.parent.mkdir()
    shutil.copy(run / "best.keras", alone)
    line = one_line_error_in_process(train.main, ["--evaluate", str(alone)], capsys)
    assert "has no config.json beside it: name the data to evaluate it on with --dataset" in line
    assert train.main(["--evaluate", str(alone), "--dataset", f"folder:{root}"]) == 0
    assert "every picture" in capsys.readouterr().out
    figures = json.loads(next((alone.parent).glob("evaluation-*.json")).read_text())
    assert figures["pictures"] == 120 and figures["image_size"] == 64


def test_evaluation_refuses_data_with_other_classes(photo_run, tmp_path, capsys):
    import train

    run, _ = photo_run
    fruit = tmp_path / "fruit"
    for name in ("apple", "pear", "plum", "fig"):
        (fruit / name).mkdir(parents=True)
        Image.new("RGB", (30, 30)).save(fruit / name / "0.png")
    line = one_line_error_in_process(train.main, ["--evaluate", str(run), "--dataset", f"folder:{fruit}"], capsys)
    assert "are not the ones" in line and "'class0' vs 'apple'" in line
    assert not (run / f"evaluation-{dataset_slug(f'folder:{fruit}')}.json").exists()


def test_an_existing_folder_named_as_a_dataset_suggests_the_folder_prefix(photos, tmp_path, capsys, monkeypatch):
    import train

    root, _ = photos
    monkeypatch.chdir(root.parent)
    line = one_line_error_in_process(train.main, ["--depth", "8", "--dataset", root.name, "--output", str(tmp_path / "r")], capsys)
    assert f"pass --dataset folder:{root.name}" in line
    assert not (tmp_path / "r").exists()


def test_weights_errors_list_every_valid_form(photo_run, tmp_path, capsys):
    import train

    run, _ = photo_run
    line = one_line_error_in_process(train.main, ["--depth", "18", "--weights", str(tmp_path / "missing.h5"), "--output", str(tmp_path / "a")], capsys)
    for form in ("imagenet", "timm/NAME", "resnet18.a1_in1k", ".safetensors", ".keras model of ours", "run directory of ours"):
        assert form in line
    line = one_line_error_in_process(train.main, ["--depth", "34", "--weights", str(run), "--output", str(tmp_path / "b")], capsys)
    assert "is an ImageNet-style resnet18. Received: an ImageNet-style resnet34; leave --model and --depth out" in line
    line = one_line_error_in_process(train.main, ["--weights", str(tmp_path), "--output", str(tmp_path / "c")], capsys)
    assert "Name a network" in line and "run directory" in line


@pytest.mark.integration
def test_a_run_keeps_the_defaults_it_started_with(photo_run, photos, tmp_path, capsys):
    """Continuing never refits: a run trained longer keeps its capped batch; a run whose batch was
    chosen otherwise (as runs written before the defaults were fitted) continues with the same
    command, its batch unchanged."""
    import train

    run, _ = photo_run
    root, _ = photos
    longer = tmp_path / "longer"
    shutil.copytree(run, longer)
    assert train.main(["--depth", "18", "--dataset", f"folder:{root}", "--epochs", "4", "--output", str(longer), "--resume"]) == 0
    console = capsys.readouterr().out
    assert "Defaults chosen" not in console and "Resuming" in console
    assert json.loads((longer / "config.json").read_text())["training"]["batch_size"] == 8
    assert [row.split(",")[0] for row in (longer / "history.csv").read_text().splitlines()[1:]] == ["1", "2", "3", "4"]

    other = tmp_path / "other"
    common = ["--depth", "18", "--dataset", f"folder:{root}", "--image-size", "30", "--output", str(other)]
    assert train.main([*common, "--batch-size", "16", "--epochs", "1"]) == 0
    assert train.main([*common, "--epochs", "2", "--resume"]) == 0  # no --batch-size: the run's 16, not a fitted 8
    assert json.loads((other / "config.json").read_text())["training"]["batch_size"] == 16
    assert json.loads((other / "metrics.json").read_text())["steps"] == 2 * (108 // 16)
