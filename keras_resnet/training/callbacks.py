"""Callbacks Keras does not have: the step count, a step-accurate atomic backup, atomic checkpoints,
a word when the first step keeps waiting, throughput, the history file and the curves plot."""

import contextlib
import json
import math
import os
import signal
import threading
import time
import zipfile

import h5py
import keras
import numpy as np

from keras_resnet import files, internals
from keras_resnet.run.directory import read_history, write_history


# Where the step count is saved: an attribute of the backup's HDF5 file, a key of a .keras file's
# metadata.json (which Keras writes and does not read back: a file of its own in the zip would make
# Keras unpack the whole model to a temporary folder on every load). Files written before either
# existed lack it: their optimizer's step count stands in.
STEP_KEY = "keras_resnet_step"


class StepCounter(keras.callbacks.Callback):
    """The global step: the training steps run so far, counted here rather than read from the
    optimizer. Under mixed_float16, Keras' LossScaleOptimizer skips a step whose gradients
    overflowed without counting it in `iterations`, which then falls behind the steps fit() ran —
    and the resume point, the plan and metrics.json with it. First among the callbacks: a step is
    counted before another callback can stop training after it."""

    def __init__(self, step=0):
        super().__init__()
        self.step = step
        self._applied = None  # the optimizer's count when the last step was counted

    def on_train_begin(self, logs=None):
        self._applied = self._optimizer_count()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self._applied = self._optimizer_count()

    def catch_up(self):
        """After an interrupt that landed between a step and its callbacks (a second Ctrl-C): counts
        that step if the optimizer applied it."""
        if self._applied is not None and self.model is not None and self._optimizer_count() > self._applied:
            self.step += 1
            self._applied = self._optimizer_count()

    def _optimizer_count(self):
        return int(self.model.optimizer.iterations.numpy())


def saved_model_step(path):
    """The step count saved in a .keras file by AtomicModelCheckpoint, or None (a file without it)."""
    with zipfile.ZipFile(path) as archive:
        try:
            metadata = json.loads(archive.read("metadata.json"))
        except KeyError:
            return None
    step = metadata.get(STEP_KEY)
    return None if step is None else int(step)


def _write_model_step(path, step):
    """Adds the step to metadata.json inside the .keras zip at `path` (rewritten in place: a temporary
    file not yet renamed over the real one)."""
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info.filename)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            if info.filename == "metadata.json":
                data = json.dumps({**json.loads(data), STEP_KEY: step}).encode()
            archive.writestr(info, data)


class StepBackup(keras.callbacks.BackupAndRestore):
    """keras.callbacks.BackupAndRestore that resumes at the exact step and writes atomically.

    Keras' callback saves every `save_freq` steps but restores only the epoch, so a run killed in the
    middle of an epoch would repeat that epoch's steps. Here the step count (StepCounter's) is saved
    with the weights, so the trainer restores before fit() and continues the interrupted epoch
    where it stopped. Keras writes the weights file in place (after copying the
    previous one aside), so a kill inside the write leaves a truncated file and a reader holding
    HDF5's lock on it makes the write fail; here each backup is a new file renamed over the last
    one (keras_resnet.files).
    """

    def __init__(self, backup_dir, *, save_every_steps, counter):
        super().__init__(backup_dir, save_freq=save_every_steps, delete_checkpoint=False)
        self.counter = counter
        self.saved_step = None

    def on_train_begin(self, logs=None):
        pass  # restore() runs before fit(), which needs the step to plan the remaining epochs

    def restore(self):
        """Loads the backup into the model (weights and optimizer state) and its step count into the
        counter; returns that step. Raises whatever reading it raises (a damaged file)."""
        weights, previous = internals.backup_weights_paths(self)
        if not os.path.exists(weights):
            return 0
        try:
            internals.backup_load(self)
        except (OSError, ValueError):
            # A backup written in place by an earlier version, killed mid-write: Keras kept the
            # previous one beside it.
            if not os.path.exists(previous):
                raise
            os.replace(previous, weights)
            internals.backup_load(self)
        with h5py.File(weights, "r") as file:
            step = file.attrs.get(STEP_KEY)
        self.saved_step = self.counter.step = int(self.model.optimizer.iterations.numpy() if step is None else step)
        return self.saved_step

    def _save_model(self):
        weights, _ = internals.backup_weights_paths(self)
        os.makedirs(self.backup_dir, exist_ok=True)
        # The next backup has the size of the last (the same variables); the first, about that of
        # the variables, plus HDF5's headers. Both files exist until the rename.
        variables = [*self.model.weights, *self.model.optimizer.variables]
        estimate = sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize + 4096 for v in variables) + (1 << 20)
        files.ensure_free_space(self.backup_dir, os.path.getsize(weights) if os.path.exists(weights) else estimate)
        with files.replacing(weights) as temporary:
            self.model.save_weights(temporary)
            with h5py.File(temporary, "a") as file:
                file.attrs[STEP_KEY] = self.counter.step
        self.saved_step = self.counter.step

    def save_now(self):
        self._save_model()


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """keras.callbacks.ModelCheckpoint (which model to keep, when) whose file appears whole or not
    at all: Keras writes it in place, and a kill or a full disk inside the write left a truncated
    best.keras or last.keras. The counter's step goes into the file with the model (its
    metadata.json), for a run continued from it."""

    def __init__(self, filepath, *, counter, **options):
        super().__init__(filepath, **options)
        self.counter = counter

    def _save_model(self, epoch, batch, logs):
        path = internals.checkpoint_file_path(self, epoch, batch, logs)
        if internals.checkpoint_should_save(self, epoch, batch, logs, path):
            with files.replacing(path) as temporary:
                self.model.save(temporary)
                _write_model_step(temporary, self.counter.step)


class InterruptAtStepEnd(keras.callbacks.Callback):
    """Ctrl-C stops training at the end of the current step, never in the middle of a file write.

    A KeyboardInterrupt raised wherever the signal lands can be swallowed by a bare `except:` in
    Keras' saving code (training then simply goes on) or leave a file half written. So while
    `catching()` is active the first SIGINT only sets a flag, and this callback raises the
    KeyboardInterrupt after the step; a second Ctrl-C interrupts at once.
    """

    def __init__(self):
        super().__init__()
        self.requested = False

    @contextlib.contextmanager
    def catching(self):
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers belong to the main thread
            return
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def on_train_batch_end(self, batch, logs=None):
        if self.requested:
            raise KeyboardInterrupt


class FirstStepWatch(keras.callbacks.Callback):
    """Says so, once, when the first training step has not ended `after_seconds` after training
    began: `message` (why it may wait, and what to do) goes to `log`. A tf.data service with no
    worker leaves the step waiting for its batches, and TensorFlow says nothing."""

    def __init__(self, message, *, after_seconds, log):
        super().__init__()
        self.message, self.after_seconds, self.log = message, after_seconds, log
        self._timer = None

    def on_train_begin(self, logs=None):
        self.stop()
        self._timer = threading.Timer(self.after_seconds, self.log, args=(self.message,))
        self._timer.daemon = True  # never holds the program open
        self._timer.start()

    def on_train_batch_end(self, batch, logs=None):
        self.stop()

    def on_train_end(self, logs=None):
        self.stop()

    def stop(self):
        """No word from now on (training ended, or failed: Keras skips on_train_end then)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Throughput(keras.callbacks.Callback):
    """Training images per second of each epoch, measured from the end of its first step (which
    holds compilation) to the end of its last, written into the epoch's logs. An epoch of one step
    has no such interval: it gets no figure rather than one that times the compilation."""

    def __init__(self, global_batch_size):
        super().__init__()
        self.global_batch_size = global_batch_size

    def on_epoch_begin(self, epoch, logs=None):
        self._start = None
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        if self._start is None:
            self._start = time.perf_counter()
        else:
            self._steps += 1
            self._end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self._steps and logs is not None:
            logs["images_per_second"] = self._steps * self.global_batch_size / (self._end - self._start)


class EpochHistory(keras.callbacks.Callback):
    """history.csv: one row per epoch (its number, the global step at its end, then every metric of
    its logs), rewritten whole after each epoch.

    Keras' CSVLogger appends to the file: an epoch that a crash makes train again gets a second row,
    and a row with a column the first row lacked (or without one it had) is written under the first
    row's header, shifting the columns. Here the rows of the epochs being trained again are replaced,
    and the header is the union of all rows' columns.
    """

    def __init__(self, run, *, counter):
        super().__init__()
        self.run = run
        self.counter = counter

    def on_epoch_end(self, epoch, logs=None):
        rows = [row for row in self.run.read_history() if row["epoch"] <= epoch]  # Keras counts from 0, the file from 1
        row = {"epoch": epoch + 1, "step": self.counter.step}
        row.update((key, float(value)) for key, value in (logs or {}).items())
        write_history(self.run.history, rows + [row])


class Diverged(Exception):
    """Raised by DivergenceStop: the validation loss diverged (the message says how)."""


class DivergenceStop(keras.callbacks.Callback):
    """Ends a run whose validation loss diverged, after the epoch's files are saved: a loss that is
    NaN or infinite, or that rose `patience` epochs in a row far above its start — above `factor`
    times the first epoch's loss and `chance_factor` times the loss of guessing at chance (ln of the
    number of classes), so that a model overfitting from a tiny loss is not stopped. Reads the
    losses from history.csv: epochs of earlier fit() calls and of a resumed process count."""

    def __init__(self, run, *, classes, patience=2, factor=10.0, chance_factor=3.0):
        super().__init__()
        self.run, self.patience, self.factor = run, patience, factor
        self.chance_loss = math.log(max(classes, 2))
        self.chance_limit = chance_factor * self.chance_loss

    def on_epoch_end(self, epoch, logs=None):
        losses = [(row["epoch"], row["val_loss"]) for row in self.run.read_history() if "val_loss" in row]
        if not losses:
            return
        last_epoch, last = losses[-1]
        if not math.isfinite(last):
            raise Diverged(f"the validation loss became {last} at epoch {int(last_epoch)}")
        first_epoch, first = losses[0]
        recent = [loss for _, loss in losses[-(self.patience + 1):]]
        rising = len(recent) == self.patience + 1 and all(a < b for a, b in zip(recent, recent[1:]))
        if rising and last > max(self.factor * first, self.chance_limit):
            raise Diverged(
                f"the validation loss rose {self.patience} epochs in a row to {last:.4g} at epoch {int(last_epoch)} "
                f"(epoch {int(first_epoch)}: {first:.4g}; guessing at chance gives {self.chance_loss:.3g})"
            )


class Curves(keras.callbacks.Callback):
    """Redraws curves.png (loss and top-1 per epoch, training and validation) from history.csv
    after every epoch, so a run can be watched while it trains and resumed runs plot whole."""

    def __init__(self, history_path, curves_path, title, *, freeze_epochs=0):
        super().__init__()
        self.history_path = history_path
        self.curves_path = curves_path
        self.title = title
        self.freeze_epochs = freeze_epochs

    def on_epoch_end(self, epoch, logs=None):
        plot_history(self.history_path, self.curves_path, title=self.title, freeze_epochs=self.freeze_epochs)


def plot_history(history_path, curves_path, *, title, freeze_epochs=0):
    """Draws curves.png from history.csv; the first `freeze_epochs` (the classifier alone) shaded.

    Nothing is written while the history has no rows. The picture is replaced whole or not at all.

    Args:
        history_path: The run's history.csv.
        curves_path: The PNG file to write.
        title: The figure's title.
        freeze_epochs: How many epochs at the start trained the classifier alone (0: none).
    """
    import matplotlib.pyplot as plt

    rows = read_history(history_path)
    if not rows:
        return
    figure = history_figure(rows, title=title, freeze_epochs=freeze_epochs)
    with files.replacing(curves_path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)


def history_figure(rows, *, title, freeze_epochs=0):
    """The Matplotlib figure of history rows: loss and top-1 per epoch (whole epochs on the axis).

    Args:
        rows: history.csv's rows, as run.directory.read_history returns them (dicts with "epoch",
            and "loss", "accuracy", "val_loss", "val_accuracy" where known).
        title: The figure's title.
        freeze_epochs: How many epochs at the start trained the classifier alone, shaded (0: none).

    Returns:
        The matplotlib.figure.Figure; the caller closes it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    epochs = [int(row["epoch"]) for row in rows]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, key, label in ((loss_axis, "loss", "loss"), (accuracy_axis, "accuracy", "top-1 accuracy")):
        for prefix, style, name in (("", "--", "training"), ("val_", "-", "validation")):
            values = [row.get(prefix + key, math.nan) for row in rows]
            axis.plot(epochs, values, style, marker="o", markersize=3, label=name)
        if freeze_epochs:
            axis.axvspan(0.5, freeze_epochs + 0.5, color="grey", alpha=0.15, label="classifier only (backbone frozen)")
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    accuracy_axis.set_ylim(0, 1)
    figure.suptitle(title)
    figure.tight_layout()
    return figure
