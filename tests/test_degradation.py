"""experiments/degradation.py on a tiny configuration: every network trained through train.py's code
path into its own run directory, the table and both figures written, a rerun trains nothing."""

import json
import os

import pytest

from keras_resnet.run.directory import read_history
from support.assertions import one_line_error, one_line_error_in_process
from support.programs import REPOSITORY, load_script, run_script

SCRIPT = os.path.join(REPOSITORY, "experiments", "degradation.py")
TINY = ["--depths", "14", "8", "--image-size", "16", "--batch-size", "16", "--train-examples", "64",
        "--validation-examples", "32", "--epochs", "2", "--gradient-batch", "8"]


def run_experiment(*args, timeout=600):
    return run_script(SCRIPT, *args, timeout=timeout)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    output = tmp_path_factory.mktemp("degradation") / "tiny"
    result = run_experiment(*TINY, "--output", str(output))
    assert result.returncode == 0, result.stdout + result.stderr
    return output, result


@pytest.mark.integration
def test_each_network_has_a_run_directory_trained_alike(experiment):
    output, _ = experiment
    names = ["plain8", "plain14", "resnet8", "resnet14"]
    assert sorted(name for name in os.listdir(output) if os.path.isdir(output / name)) == sorted(names)
    configs = {name: json.loads((output / name / "config.json").read_text()) for name in names}
    for name, config in configs.items():
        assert config["model"]["name"] == name
        assert (output / name / "metrics.json").exists() and (output / name / "last.keras").exists()
        # Same recipe, data and seed: only the network differs.
        assert config["training"] == configs["resnet8"]["training"] and config["data"] == configs["resnet8"]["data"]
        # The experiment's default warm-up of 1 epoch, capped to a tenth of the 2 epochs.
        assert config["training"]["epochs"] == 2 and config["training"]["warmup_epochs"] == 0.2


@pytest.mark.integration
def test_table_holds_the_final_errors_of_each_run(experiment):
    output, result = experiment
    rows = json.loads((output / "results.json").read_text())
    assert [(row["net"], row["depth"]) for row in rows] == [("plain", 8), ("plain", 14), ("ResNet", 8), ("ResNet", 14)]
    table = (output / "results.md").read_text()
    for row in rows:
        history = read_history(os.path.join(row["run"], "history.csv"))
        assert len(history) == 2 and row["steps"] == 8
        assert row["training_error"] == pytest.approx(1 - history[-1]["accuracy"])
        assert row["test_error"] == pytest.approx(1 - history[-1]["val_accuracy"])
        assert row["best_test_error"] == pytest.approx(min(1 - h["val_accuracy"] for h in history))
        line = f"| {row['net']}-{row['depth']} | {row['depth']} | {100 * row['training_error']:.2f} % | {100 * row['test_error']:.2f} % |"
        assert line in table and line in result.stdout


@pytest.mark.integration
def test_figures_and_gradient_norms(experiment):
    output, _ = experiment
    for figure in ("degradation.png", "gradients.png"):
        content = (output / figure).read_bytes()
        assert content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) > 20_000, figure
    norms = json.loads((output / "gradients.json").read_text())
    assert list(norms) == ["plain14", "resnet14"]
    for result in norms.values():
        # ResNet-14: stem, 3 stages of 2 blocks, head.
        assert result["blocks"] == ["stem"] + [f"stage{s}_block{b}" for s in (1, 2, 3) for b in (1, 2)] + ["head"]
        assert result["steps"] == 8
        assert all(value > 0 for value in result["initialisation"] + result["trained"])
        assert result["initialisation"] != result["trained"]


@pytest.mark.integration
def test_rerun_trains_nothing_again(experiment):
    output, _ = experiment
    models = {name: os.path.getmtime(output / name / "last.keras") for name in ("plain8", "resnet14")}
    result = run_experiment(*TINY, "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("has finished: not trained again") == 4 and "Epoch" not in result.stdout
    assert {name: os.path.getmtime(output / name / "last.keras") for name in models} == models


@pytest.mark.parametrize(
    "args, message",
    [
        (["--depths", "20", "21"], "error: --depths must be CIFAR-style depths 6n+2 of at least 8"),
        (["--epochs", "2", "--steps", "5"], "error: Pass --epochs or --steps, not both."),
        (["--epochs", "0"], "error: argument --epochs: must be an integer of at least 1. Received: 0."),
        (["--seed", "4294967296"], "error: argument --seed: must be an integer from 0 to 4294967295."),
        (["--dataset", "no_such_dataset", "--depths", "8"], "error: Unknown dataset 'no_such_dataset'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, tmp_path, capsys):
    degradation = load_script(SCRIPT)
    assert one_line_error_in_process(degradation.main, [*args, "--output", str(tmp_path / "out")], capsys).startswith(message)
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.integration
def test_bad_input_in_a_real_process_is_one_line_without_traceback(tmp_path):
    result = run_experiment("--depths", "20", "21", "--output", str(tmp_path / "out"))
    assert one_line_error(result).startswith("error: --depths must be CIFAR-style depths 6n+2 of at least 8")
    assert not os.path.exists(tmp_path / "out")
