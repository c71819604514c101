"""The distribution: `pip install '.[demo]'` in a fresh virtual environment gives a board a working
classify command and no TensorFlow; the console scripts are installed; the extras declare what
the code imports."""

import os
import re
import subprocess
import sys
import tomllib

import pytest

from support.programs import REPOSITORY

SAMPLES = os.path.join(REPOSITORY, "edge_demo", "samples")


def pyproject():
    with open(os.path.join(REPOSITORY, "pyproject.toml"), "rb") as file:
        return tomllib.load(file)["project"]


def test_the_distribution_name_is_not_the_unrelated_pypi_project():
    # "keras-resnet" on PyPI is someone else's (abandoned 2019): pip install keras-resnet would get it.
    assert pyproject()["name"] == "keras-resnet-edge"


def test_console_scripts_point_at_main_functions_that_exist():
    import importlib

    scripts = pyproject()["scripts"]
    assert set(scripts) == {"keras-resnet", "keras-resnet-train", "keras-resnet-convert", "keras-resnet-classify", "keras-resnet-serve"}
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target


@pytest.mark.parametrize(
    "command, expected",
    [
        ("keras-resnet-train", "Train a ResNet (He et al., 2016)."),
        ("keras-resnet-convert", "Convert a trained ResNet to LiteRT models"),
        ("keras-resnet-classify", "Classify images, a directory of images"),
        ("keras-resnet-serve", "Serve the LiteRT.js browser demo with a .tflite model"),
        ("keras-resnet", "Inspect the ResNets of He et al. (2016)."),
    ],
)
def test_console_scripts_are_installed(command, expected):
    path = os.path.join(os.path.dirname(sys.executable), command)
    result = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert expected in " ".join(result.stdout.split())


def _requirement_names(requirements):
    return {re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-") for requirement in requirements}


def test_every_extra_is_pinned_in_requirements_txt():
    with open(os.path.join(REPOSITORY, "requirements.txt")) as file:
        pinned = {line.split("==")[0].strip().lower().replace("_", "-") for line in file if "==" in line}
    project = pyproject()
    declared = _requirement_names(project["dependencies"])
    for requirements in project["optional-dependencies"].values():
        declared |= _requirement_names(requirements)
    declared.discard("keras-resnet-edge")  # the extras that include others
    assert declared <= pinned, declared - pinned


@pytest.mark.e2e
def test_demo_extra_in_a_fresh_venv_classifies_without_tensorflow(converted_run, tmp_path):
    venv = tmp_path / "board"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    constraints = os.path.join(REPOSITORY, "requirements.txt")
    install = subprocess.run([*pip, "-c", constraints, f"{REPOSITORY}[demo]"], capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stdout + install.stderr
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True)
    installed = {line.split("==")[0].lower() for line in listed.stdout.split()}
    assert "ai-edge-litert" in installed and "keras-resnet-edge" in installed
    assert not installed & {"tensorflow", "keras", "tf-keras", "tensorflow-cpu"}, installed
    result = subprocess.run(
        [str(venv / "bin" / "keras-resnet-classify"), "--model", str(converted_run / "resnet8_int8-qat.tflite"), SAMPLES, "--top-k", "1"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("resnet8_int8-qat.tflite: uint8 input 32×32, 10 classes, on CPU")
    named = re.findall(r"samples/(\w+)\.png .*\n  1\. (\w+)", result.stdout)
    assert len(named) == 10 and sum(picture == label for picture, label in named) >= 8, result.stdout
