"""A diverging run is stopped with its likely cause, its files kept; history.csv numbers epochs from
1 and still reads the files that numbered them from 0; curves.png marks the frozen phase."""

import math

import pytest
from PIL import Image

from keras_resnet.run.directory import RunDirectory, read_history, write_history
from keras_resnet.run.resolve import resolve
from keras_resnet.training import trainer
from keras_resnet.training.callbacks import Diverged, DivergenceStop, history_figure, plot_history


def stop_after(tmp_path, losses, *, classes=4):
    """Runs DivergenceStop at the end of each epoch of `losses` (validation losses), as fit() would
    after EpochHistory; returns the epoch (from 1) it stopped at and its message, or (None, None)."""
    run = RunDirectory(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    callback = DivergenceStop(run, classes=classes)
    rows = []
    for epoch, loss in enumerate(losses, start=1):
        rows.append({"epoch": epoch, "step": 10 * epoch, "val_loss": loss})
        write_history(run.history, rows)
        try:
            callback.on_epoch_end(epoch - 1, {"val_loss": loss})
        except Diverged as divergence:
            return epoch, str(divergence)
    return None, None


def test_a_loss_that_keeps_rising_far_above_chance_stops_the_run(tmp_path):
    # The run: batch 256 on 540 pictures, val_loss 506 → 7352.
    epoch, message = stop_after(tmp_path, [506.0, 1900.0, 7352.0, 8000.0])
    assert epoch == 3
    assert "rose 2 epochs in a row to 7352 at epoch 3 (epoch 1: 506; guessing at chance gives 1.39)" in message


def test_a_fine_tune_that_climbs_far_above_its_start_and_chance_stops(tmp_path):
    # 100 classes: chance 4.6. From 0.2 to 20: a hundred times its start, four times chance.
    assert stop_after(tmp_path, [0.2, 0.3, 5.0, 20.0], classes=100)[0] == 4


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_loss_that_is_not_finite_stops_the_run_at_once(tmp_path, value):
    epoch, message = stop_after(tmp_path, [1.3, value])
    assert epoch == 2 and f"became {value}" in message


@pytest.mark.parametrize(
    "losses",
    [
        [1.3, 1.1, 0.9, 0.8],  # learning
        [1.3, 2.0, 3.0, 4.0],  # rising, but within three times chance (ln 4 = 1.39)
        [0.05, 0.2, 0.6, 1.1],  # overfitting from a tiny loss: twenty times its start, still below chance's bound
        [30.0, 20.0, 40.0, 35.0, 50.0],  # far above chance, but not rising twice in a row
    ],
)
def test_a_loss_that_does_not_diverge_lets_the_run_go_on(tmp_path, losses):
    assert stop_after(tmp_path, losses) == (None, None)


def test_the_likely_cause_names_the_flag_to_change():
    class Source:
        train_examples, picture_side = 540, 64

    config = resolve(depth=18, dataset="folder:x", batch_size=256, image_size=64)
    cause = trainer._divergence_cause(config, Source, config.plan(540))
    assert "batch 256 leaves 2 steps per epoch on 540 pictures; pass --batch-size 32" in cause
    config = resolve(depth=18, dataset="folder:x", batch_size=32, image_size=224)
    assert "image size 224 for pictures of 64 px; pass --image-size 64." in trainer._divergence_cause(config, Source, config.plan(540))
    config = resolve(depth=18, dataset="folder:x", batch_size=32, image_size=64, lr=0.5)
    assert "pass a lower --lr (e.g. 0.05)" in trainer._divergence_cause(config, Source, config.plan(540))


def test_history_numbers_epochs_from_1_and_reads_files_numbered_from_0(tmp_path):
    old = tmp_path / "old.csv"
    old.write_text("epoch,step,val_loss\n0,10,2.0\n1,20,1.5\n")
    assert [(row["epoch"], row["step"]) for row in read_history(old)] == [(1, 10), (2, 20)]
    new = tmp_path / "new.csv"
    write_history(new, read_history(old))
    assert new.read_text().splitlines()[1:] == ["1,10,2.0", "2,20,1.5"]
    assert [row["epoch"] for row in read_history(new)] == [1, 2]


def test_curves_shade_the_frozen_phase_and_count_whole_epochs(tmp_path):
    import matplotlib.pyplot as plt

    rows = [{"epoch": e, "loss": 1 / e, "val_loss": 1.2 / e, "accuracy": 0.5, "val_accuracy": 0.4} for e in (1, 2, 3, 4, 5)]
    figure = history_figure(rows, title="t", freeze_epochs=2)
    for axis in figure.axes:
        spans = [patch for patch in axis.patches if patch.get_label().startswith("classifier only")]
        assert len(spans) == 1
        span = spans[0]
        assert (span.get_x(), span.get_x() + span.get_width()) == (0.5, 2.5)  # epochs 1 and 2
        figure.canvas.draw()
        ticks = [tick for tick in axis.get_xticks() if 1 <= tick <= 5]
        assert ticks and all(float(tick).is_integer() for tick in ticks)
    plt.close(figure)
    history = tmp_path / "history.csv"
    write_history(history, rows)
    plot_history(history, tmp_path / "curves.png", title="t", freeze_epochs=2)
    assert Image.open(tmp_path / "curves.png").format == "PNG"
