import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_resnet  # noqa: E402  (imports TensorFlow quietly, registers our layer)


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
