"""The benchmark scripts' own failures (their figures are measured by running them, not here)."""

import os
import sys

from support.programs import REPOSITORY, load_script


def test_a_pytorch_peer_without_pytorch_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # as where PyTorch is not installed: import fails
    bench = load_script(os.path.join(REPOSITORY, "bench", "train_throughput.py"))
    assert bench.main(["--peer", "torch"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --peer torch needs PyTorch and torchvision") and error.count("\n") == 1
    assert "pip install torch torchvision" in error
