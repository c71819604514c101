"""The page's tensor arithmetic (edge_demo/web/tensors.js) against the Python runtime's, which
classify.py and the conversion report run: the same inputs through both, under node's test runner."""

import json
import os
import shutil
import subprocess
import types

import numpy as np
import pytest

from support.programs import REPOSITORY
from keras_resnet.runtime import selftest
from keras_resnet.runtime.classifier import Classifier
from keras_resnet.runtime.model import dequantized, quantized

TEST_FILE = os.path.join(REPOSITORY, "edge_demo", "web", "tensors.test.mjs")


class _Replay:
    """A runtime model (runtime.model's interface) that answers preset scores, picture by picture."""

    def __init__(self, scores):
        self.scores, self.calls = iter(scores), 0

    def set_image(self, pixels):
        pass

    def invoke(self):
        pass

    def probabilities(self):
        return np.asarray(next(self.scores), np.float32)


def _cases(rng):
    cases = {"quantize": [], "dequantize": [], "top": [], "selftest": []}
    # Quantization: the int8/uint8 inputs the conversion writes (scale 1, zero point 0 or -128), one
    # with another scale and zero point (no halves: 4p/3), and a float input.
    for dtype, scale, zero_point in (("uint8", 1.0, 0), ("int8", 1.0, -128), ("int8", 0.75, 3), ("float32", 0.0, 0)):
        pixels = rng.integers(0, 256, 300).astype(np.uint8)
        detail = {"dtype": np.dtype(dtype), "quantization": (scale, zero_point)}
        cases["quantize"].append({
            "input": {"dtype": dtype, "scale": scale, "zero_point": zero_point},
            "pixels": pixels.tolist(),
            "expected": quantized(pixels.astype(np.float32), detail).tolist(),
        })
    for dtype, scale, zero_point in (("uint8", 1 / 256, 0), ("int8", 1 / 256, -128), ("float32", 0.0, 0)):
        raw = rng.integers(-128, 128, 10) if dtype == "int8" else rng.integers(0, 256, 10) if dtype == "uint8" else rng.random(10)
        raw = np.asarray(raw, dtype)
        cases["dequantize"].append({
            "output": {"dtype": dtype, "scale": scale, "zero_point": zero_point},
            "raw": raw.tolist(),
            "expected": dequantized(raw, {"quantization": (scale, zero_point)}).tolist(),
        })
    labels = [f"class {index}" for index in range(12)]
    for scores in (rng.random(12), np.repeat(rng.random(4), 3), np.zeros(12)):  # ties are kept in class order
        scores = scores.astype(np.float32)
        top = Classifier.top(types.SimpleNamespace(labels=labels), scores, top_k=5)
        cases["top"].append({"scores": scores.tolist(), "labels": labels, "k": 5, "expected": [[name, score] for name, score in top]})
    # The self-test: agreeing scores, one picture off by more than the tolerance, a NaN, scores that
    # are not probabilities.
    expected = rng.dirichlet(np.ones(5), size=4).astype(np.float32)
    off = expected.copy()
    off[2] = np.roll(off[2], 1)
    nan = expected.copy()
    nan[1, 3] = np.nan
    for gpu in (expected + 0.01, off, nan, expected * 5, expected[:1]):
        reference = expected[: len(gpu)]
        result = selftest.compare(_Replay(gpu), _Replay(reference), [None] * len(gpu))
        cases["selftest"].append({
            "scores": [[None if np.isnan(value) else float(value) for value in row] for row in gpu],
            "expected": reference.tolist(),
            "tolerance": selftest.TOLERANCE,
            "passed": result.passed,
            "worst_picture": result.worst_picture,
            "description": result.describe(),
        })
    return cases


def test_the_pages_tensor_arithmetic_is_the_python_runtimes(tmp_path, rng):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    cases = _cases(rng)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    result = subprocess.run(
        [node, "--test", TEST_FILE], capture_output=True, text=True, timeout=120,
        env={**os.environ, "TENSOR_CASES": str(tmp_path / "cases.json")},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    counted = sum(len(group) for group in cases.values())
    assert f"# pass {counted + 1}" in result.stdout and "# fail 0" in result.stdout, result.stdout[-2000:]
