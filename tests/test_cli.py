"""keras-resnet (python -m keras_resnet): the summary users read, and one-line errors with exit code 2."""

import subprocess
import sys

import pytest

from support.assertions import one_line_error, one_line_error_in_process
from keras_resnet.cli.inspect import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "keras_resnet", *args], capture_output=True, text=True, timeout=300)


def test_summary_of_resnet50_prints_counts_and_macs(capsys):
    assert main(["summary", "resnet50"]) == 0
    out = capsys.readouterr().out
    assert "stage4_block3_out" in out and "predictions" in out  # model.summary()'s table
    assert "Trainable parameters:  25,557,032" in out
    assert "Multiply-accumulates:  4,089,184,256 per image (4.09 G)" in out


def test_summary_options_reach_the_builder(capsys):
    assert main(["summary", "resnet50", "--version", "v1", "--classes", "10", "--image-size", "128"]) == 0
    out = capsys.readouterr().out
    assert "resnet50 (128x128x3 input, 10 classes)" in out
    assert "Trainable parameters:  23,528,522" in out  # 25,557,032 - 2048 * 990 - 990


@pytest.mark.integration
def test_summary_in_a_real_process_has_a_clean_stderr():
    result = run("summary", "resnet20")
    assert result.returncode == 0, result.stderr
    assert "Trainable parameters:  269,722" in result.stdout
    assert "Multiply-accumulates:  40,551,040 per image (40.6 M)" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(
    "args, message",
    [
        (["summary", "resnet21"], "error: Invalid depth. Received: depth=21. Valid: ImageNet-style 18, 34, 50"),
        (["summary", "vgg16"], "error: Unknown model name. Received: 'vgg16'"),
        (["summary", "resnet20", "--image-size", "0"], "error: argument --image-size: must be an integer from 8 to 2048. Received: 0."),
        (["summary", "resnet20", "--depth"], "error: unrecognized arguments: --depth (see "),
        (["summary", "resnet20", "--classes", "0"], "error: argument --classes: must be an integer of at least 1. Received: 0."),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, capsys):
    assert one_line_error_in_process(main, args, capsys, no_output=True).startswith(message)


@pytest.mark.integration
def test_bad_input_in_a_real_process_is_one_line_without_traceback():
    result = run("summary", "resnet21")
    assert one_line_error(result).startswith("error: Invalid depth. Received: depth=21.")
    assert result.stdout == ""


def test_list_names_every_family(capsys):
    assert main(["list"]) == 0
    names = capsys.readouterr().out.split()
    assert {"resnet18", "resnet200", "resnet20", "resnet1202", "plain56", "plain50"} <= set(names)
