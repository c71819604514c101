"""Model files that are not what we wrote — tampered, or from another converter: a .keras whose build
arguments were edited, met by train.py (--weights, --evaluate) and the conversion; .tflite files met
by classify.py (and so serve.py, which opens models the same way). One line each, exit 2, and
nothing from inside the file reaches the terminal raw."""

import json
import zipfile

import pytest

from keras_resnet.cli import classify, convert, train
from keras_resnet.runtime import labels as labels_lib
from support.assertions import one_line_error_in_process
from support.programs import REPOSITORY

SAMPLE = f"{REPOSITORY}/edge_demo/samples/star.png"


def edited_keras(source, path, change):
    """A copy of the .keras file `source` whose saved config was passed through `change`."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    saved = json.loads(members["config.json"])
    change(saved["config"])
    members["config.json"] = json.dumps(saved).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


EDITS = {
    "version v9": (lambda c: c["build_arguments"].update(version="v9"), "its build arguments were changed (version='v9'; valid: 'v1', 'v1.5', 'v2')"),
    "shortcut a dict": (lambda c: c["build_arguments"].update(shortcut={"x": 1}), "(shortcut={'x': 1}; valid: 'A', 'B', 'C', None)"),
    "depth 9": (lambda c: c["build_arguments"].update(depth=9), "Invalid depth for family='cifar'. Received: depth=9."),
    "plain a string": (lambda c: c["build_arguments"].update(plain="no"), "(plain='no'; valid: True, False)"),
    "arguments a list": (lambda c: c.update(build_arguments=[1, 2]), "is not a model built by keras_resnet (a .keras file with its build arguments)"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_a_keras_file_with_edited_build_arguments_is_one_line_everywhere(edit, committed_run, tmp_path, capsys):
    # Before: tracebacks from pretrained._own_model and ResNet.
    change, message = EDITS[edit]
    model = edited_keras(committed_run / "best.keras", tmp_path / "edited.keras", change)
    for program, args in [
        (train.main, ["--weights", str(model), "--epochs", "1", "--output", str(tmp_path / "run")]),
        (train.main, ["--evaluate", str(model), "--dataset", "synthetic"]),
        (convert.main, ["--model", str(model), "--targets", "fp32", "--output", str(tmp_path / "tflite")]),
    ]:
        line = one_line_error_in_process(program, args, capsys)
        assert str(model) in line, line
        if program is train.main:
            assert message in line, line
    assert sorted(path.name for path in tmp_path.iterdir()) == ["edited.keras"]  # nothing written


def converted(function, spec, path):
    """`function` of one input `spec` as a .tflite file at `path` (TensorFlow's converter, no metadata)."""
    import tensorflow as tf

    concrete = tf.function(function, input_signature=[spec]).get_concrete_function()
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([concrete]).convert())
    return path


@pytest.fixture(scope="module")
def odd_models(tmp_path_factory):
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("odd")
    image = tf.TensorSpec([1, 8, 8, 3], tf.float32)
    return {
        "no classes": converted(lambda x: tf.reduce_mean(x, axis=[1, 2, 3])[:, None][:, :0], image, folder / "zero.tflite"),
        "any size": converted(lambda x: tf.nn.softmax(tf.reduce_mean(x, axis=[1, 2])), tf.TensorSpec([1, None, None, 3], tf.float32), folder / "dynamic.tflite"),
        "a matrix": converted(lambda x: tf.nn.softmax(tf.reduce_mean(x, axis=[1])), image, folder / "matrix.tflite"),
        "int16 pixels": converted(lambda x: tf.nn.softmax(tf.reduce_mean(tf.cast(x, tf.float32), axis=[1, 2])), tf.TensorSpec([1, 8, 8, 3], tf.int16), folder / "int16.tflite"),
        "three classes": converted(lambda x: tf.nn.softmax(tf.reduce_mean(x, axis=[1, 2])), image, folder / "three.tflite"),
    }


@pytest.mark.parametrize(
    "kind, message",
    [
        ("no classes", "answers a tensor of shape [1, 0]: an image classifier answers [1, classes] scores, one class at least"),
        ("a matrix", "answers a tensor of shape [1, 8, 3]: an image classifier answers [1, classes] scores, one class at least"),
        ("any size", "takes input of shape [1, ?, ?, 3]: an image classifier here takes [1, height, width, 3] of a fixed size"),
        ("int16 pixels", "takes int16 input: an image classifier here takes uint8, int8, float32 pixels"),
    ],
)
def test_a_model_that_is_not_an_image_classifier_is_one_line(odd_models, kind, message, capsys):
    # Before: a traceback for no classes ("Invalid tensor size"); the others ran, on 1x1 pictures or
    # integer-wrapped pixels.
    line = one_line_error_in_process(classify.main, ["--model", str(odd_models[kind]), SAMPLE], capsys, no_output=True)
    assert line == f"error: {odd_models[kind]} {message}"


def with_packed_labels(model, path, data, *, compression=zipfile.ZIP_STORED):
    """A copy of `model` with `data` appended as its packed labels.txt."""
    path.write_bytes(model.read_bytes())
    with zipfile.ZipFile(path, "a", compression=compression) as archive:
        archive.writestr(labels_lib.LABELS_FILE, data)
    return path


def test_control_characters_in_packed_labels_never_reach_the_terminal(odd_models, tmp_path, capsys):
    hostile = "\x1b]0;owned\x07title\n\x1b[31mred\x1b[0m\nbell\x07\n"
    model = with_packed_labels(odd_models["three classes"], tmp_path / "three.tflite", hostile)
    assert classify.main(["--model", str(model), SAMPLE, "--top-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert {"\\x1b]0;owned\\x07title", "\\x1b[31mred\\x1b[0m", "bell\\x07"} <= {line.split()[1] for line in out.splitlines() if line.startswith("  ")}
    # A labels file given with --labels is read the same way.
    labels = tmp_path / "labels.txt"
    labels.write_text(hostile)
    assert labels_lib.read_labels(labels) == ["\\x1b]0;owned\\x07title", "\\x1b[31mred\\x1b[0m", "bell\\x07"]


def test_packed_labels_that_inflate_to_gigabytes_are_refused_without_inflating_them(odd_models, tmp_path, capsys):
    import resource

    # 64 MB of newlines deflate to about 64 kB; the reader stops after its limit (4 MB), so memory
    # grows by far less than the inflated size. Before: 8.4 GB and 30 s for a 4 GiB one.
    model = with_packed_labels(odd_models["three classes"], tmp_path / "bomb.tflite", b"\n" * (64 << 20), compression=zipfile.ZIP_DEFLATED)
    assert model.stat().st_size < 1 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    line = one_line_error_in_process(classify.main, ["--model", str(model), SAMPLE], capsys, no_output=True)
    assert line == (f"error: {model}: its packed labels.txt cannot be read (it inflates past 4,194,304 bytes, far more than ours "
                    "hold: a tampered file): pass --labels FILE")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 32 << 10  # kB: less than 32 MB more at the peak
    # The advice works: labels from a file instead.
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    assert classify.main(["--model", str(model), "--labels", str(labels), SAMPLE]) == 0


def test_packed_labels_that_are_not_utf8_are_one_line_not_class_numbers(odd_models, tmp_path, capsys):
    # Before: "class 0", "class 1", … with no word of why.
    model = with_packed_labels(odd_models["three classes"], tmp_path / "latin1.tflite", "caf\xe9\nna\xefve\nthird\n".encode("latin-1"))
    line = one_line_error_in_process(classify.main, ["--model", str(model), SAMPLE], capsys, no_output=True)
    assert line == f"error: {model}: its packed labels.txt is not UTF-8 text: pass --labels FILE"


def test_packed_metadata_that_inflates_past_its_bound_is_refused(odd_models, tmp_path, capsys):
    from keras_resnet.runtime import metadata

    model = tmp_path / "described.tflite"
    model.write_bytes(odd_models["three classes"].read_bytes())
    with zipfile.ZipFile(model, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(metadata.METADATA_FILE, b" " * (16 << 20))
    line = one_line_error_in_process(classify.main, ["--model", str(model), SAMPLE], capsys, no_output=True)
    assert "its packed keras_resnet.json or self-test pictures are damaged (it inflates past 1,048,576 bytes" in line
