"""Callbacks Keras does not have: a step-accurate backup, throughput, and the curves plot."""

import contextlib
import csv
import math
import os
import signal
import threading
import time

import keras

from keras_resnet import internals


class StepBackup(keras.callbacks.BackupAndRestore):
    """keras.callbacks.BackupAndRestore that resumes at the exact step.

    Keras' callback saves every `save_freq` steps but restores only the epoch, so a run killed in the
    middle of an epoch would repeat that epoch's steps. The optimizer's iteration count is saved
    with the weights, so this one lets the trainer restore before fit() and continue the
    interrupted epoch where it stopped. The file writing (with the previous backup kept while the
    next one is written) is Keras'.
    """

    def __init__(self, backup_dir, *, save_every_steps):
        super().__init__(backup_dir, save_freq=save_every_steps, double_checkpoint=True, delete_checkpoint=False)

    def on_train_begin(self, logs=None):
        pass  # restore() runs before fit(), which needs the step to plan the remaining epochs

    def restore(self):
        """Loads the backup into the model (weights and optimizer state); the global step reached."""
        weights, previous = internals.backup_weights_paths(self)
        if not os.path.exists(weights):
            return 0
        try:
            internals.backup_load(self)
        except (OSError, ValueError):
            # Killed while writing: the previous backup is intact beside it.
            if not os.path.exists(previous):
                raise
            os.replace(previous, weights)
            internals.backup_load(self)
        return int(self.model.optimizer.iterations.numpy())

    def save_now(self):
        internals.backup_save(self)


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


class Throughput(keras.callbacks.Callback):
    """Training images per second of each epoch, measured from the end of its first step (which
    holds compilation) to the end of its last, written into the epoch's logs."""

    def __init__(self, global_batch_size):
        super().__init__()
        self.global_batch_size = global_batch_size
        self.per_epoch = []

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
            rate = self._steps * self.global_batch_size / (self._end - self._start)
            self.per_epoch.append(rate)
            logs["images_per_second"] = rate


class Curves(keras.callbacks.Callback):
    """Redraws curves.png (loss and top-1 per epoch, training and validation) from history.csv
    after every epoch, so a run can be watched while it trains and resumed runs plot whole."""

    def __init__(self, history_path, curves_path, title):
        super().__init__()
        self.history_path = history_path
        self.curves_path = curves_path
        self.title = title

    def on_epoch_end(self, epoch, logs=None):
        plot_history(self.history_path, self.curves_path, title=self.title)


def read_history(history_path):
    if not os.path.exists(history_path):
        return []
    with open(history_path, newline="") as file:
        return [{key: float(value) for key, value in row.items() if value not in ("", None)} for row in csv.DictReader(file)]


def plot_history(history_path, curves_path, *, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_history(history_path)
    if not rows:
        return
    epochs = [row["epoch"] + 1 for row in rows]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, key, label in ((loss_axis, "loss", "loss"), (accuracy_axis, "accuracy", "top-1 accuracy")):
        for prefix, style, name in (("", "--", "training"), ("val_", "-", "validation")):
            values = [row.get(prefix + key, math.nan) for row in rows]
            axis.plot(epochs, values, style, marker="o", markersize=3, label=name)
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    accuracy_axis.set_ylim(0, 1)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(curves_path, dpi=110)
    plt.close(figure)
