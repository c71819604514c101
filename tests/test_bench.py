"""bench/fashion_mnist.py end to end in its quick form: every path the README's Fashion-MNIST figures
come from (training from scratch, folder export and fine-tuning against training from scratch,
conversion), on the real Fashion-MNIST files, in real processes."""

import json
import os

import pytest

from support.programs import run_script
from support.requirements import require_fashion_mnist


@pytest.mark.e2e
def test_fashion_mnist_benchmark_runs_every_path_in_quick_form(tmp_path):
    require_fashion_mnist()
    result = run_script("bench/fashion_mnist.py", "--quick", "--output", tmp_path, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "quick"
    # (a) learned something real from 200 steps on 6,400 photos (chance is 10 %).
    assert results["a"]["test_top1"] > 0.5 and results["a"]["steps"] == 200
    # (b) both arms ran the same number of steps on the same 250 photos; the exported folders have train/ and test/.
    b = results["b"]
    assert b["fine_tuned"]["steps"] == b["from_scratch"]["steps"] == 20
    assert all(0.0 <= b[arm]["test_top1"] <= 1.0 for arm in ("fine_tuned", "from_scratch"))
    config = json.loads((tmp_path / "b-resnet20-fine-tuned" / "config.json").read_text())
    assert config["training"]["weights"].endswith(os.path.join("b-resnet20-pretrain-five", "best.keras"))
    assert sorted(os.listdir(tmp_path / "data" / "other-five-small" / "test")) == ["Ankle boot", "Bag", "Sandal", "Shirt", "Sneaker"]
    # (c) every target converted and scored on the same images as the Keras model.
    c = results["c"]
    assert set(c["targets"]) == {"fp32", "gpu", "dynamic", "int8-ptq", "int8-qat"}
    assert all(abs(top1 - c["keras_top1"]) < 0.05 for top1 in c["targets"].values())
    assert "| (c) int8-qat .tflite |" in (tmp_path / "results.md").read_text()
