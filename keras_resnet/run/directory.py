"""A run directory: everything a training run leaves for evaluation, conversion and the demo.

    config.json    the run's configuration (keras_resnet.run.config.RunConfig): network, data, recipe
    labels.txt     class names, one per line, in label order
    best.keras     the model with the best validation top-1; last.keras: the model after the last epoch
    history.csv    per-epoch metrics, one row per epoch (numbered from 1); curves.png: loss and top-1 per epoch
    metrics.json   final validation top-1, top-5, loss, the best epoch's, best.keras' top-1 in float32
                   (best_model_top1: what --evaluate and the conversion measure) and training images/s; written last
    logs/          TensorBoard
    backup/        the state of an unfinished run, every --save-every-steps steps
    .lock          held by the process training in the directory (its PID inside)

Every file is written whole or not at all (keras_resnet.files). TensorBoard's event files are the
exception: they are append-only logs whose reader skips a record cut short.
"""

import csv
import dataclasses
import datetime
import fcntl
import io
import json
import os
import re
import shutil
import time
import zipfile

from keras_resnet import files
from keras_resnet.nets import specs
from keras_resnet.run.config import ConfigFileError, RunConfig, UsageError
from keras_resnet.runtime import labels as labels_lib

LOCK_FILE = ".lock"
LOCK_ATTEMPTS = 5


class RunDirectoryInUse(UsageError):
    """Another process trains in the run directory. Exit code 2."""


class RunDirectory:
    def __init__(self, path):
        self.path = os.fspath(path)
        join = lambda name: os.path.join(self.path, name)  # noqa: E731
        self.config = join("config.json")
        self.labels = join("labels.txt")
        self.best_model = join("best.keras")
        self.last_model = join("last.keras")
        self.history = join("history.csv")
        self.curves = join("curves.png")
        self.metrics = join("metrics.json")
        self.tensorboard = join("logs")
        self.backup = join("backup")
        self.lock_file = join(LOCK_FILE)

    def __str__(self):
        return self.path

    def is_empty(self):
        """No files of a run (multi-worker runs keep the other workers' files in worker-N/; the lock
        and the temporary files of killed writers are no run)."""
        return not os.path.isdir(self.path) or all(
            name.startswith("worker-") or name == LOCK_FILE or files.is_partial(name) for name in os.listdir(self.path)
        )

    def has_backup(self):
        return os.path.exists(os.path.join(self.backup, "latest.weights.h5"))

    def has_state(self):
        """Something training can continue from: a backup or the last epoch's model."""
        return self.has_backup() or os.path.exists(self.last_model)

    def is_finished(self):
        return os.path.exists(self.metrics)

    # -- the lock -------------------------------------------------------------------------------

    def lock(self):
        """Holds the directory for this process (created if missing) until `release()` or the
        process ends, however it ends: the operating system drops the lock of a killed process.
        Raises RunDirectoryInUse naming the holder's PID."""
        created = _missing_directories(self.path)
        for attempt in range(LOCK_ATTEMPTS):
            try:
                os.makedirs(self.path, exist_ok=True)
                descriptor = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise UsageError(f"Cannot write to the run directory {self} ({files.describe_os_error(error)}). Nothing was changed.") from None
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(descriptor)
                os.close(descriptor)
                if attempt + 1 < LOCK_ATTEMPTS:  # a passing holder() probe, or a process on its way out
                    time.sleep(0.1)
                    continue
                raise RunDirectoryInUse(
                    f"{self} is in use: process {holder or '(unknown)'} is training in it. Wait for it to finish, or stop it "
                    f"(kill {holder or 'PID'}) and run the command again. Nothing was changed."
                ) from None
            if _same_file(descriptor, self.lock_file):
                break
            os.close(descriptor)  # locked a .lock that its releaser removed meanwhile: lock the new one
        else:
            raise RunDirectoryInUse(f"{self} is being taken by other processes: run the command again. Nothing was changed.")
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        return _Lock(self, descriptor, created=created)

    def holder(self):
        """The PID of the process training in the directory, or None."""
        if not os.path.exists(self.lock_file):
            return None
        try:
            descriptor = os.open(self.lock_file, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            return _read_pid(descriptor) or -1
        finally:
            os.close(descriptor)

    # -- files ----------------------------------------------------------------------------------

    def read_config(self):
        """The run's RunConfig. Raises config.ConfigFileError for a missing, corrupt or foreign file."""
        return RunConfig.read(self.config)

    def write_config(self, config):
        self.write_json(self.config, config.to_json())

    def write_json(self, path, data):
        files.write_text(path, json.dumps(data, indent=2) + "\n")

    def read_labels(self):
        # As written, name for name (a class folder's name may end in a space): what the run
        # trained on, compared with a dataset's classes by name.
        with open(self.labels, encoding="utf-8") as file:
            return [line.rstrip("\n") for line in file if line.strip()]

    def write_labels(self, class_names):
        files.write_text(self.labels, labels_lib.labels_text(class_names))

    def read_history(self):
        return read_history(self.history)

    def keep_history_through(self, step, *, steps_per_epoch):
        """Drops the rows of epochs that end after `step`: they are trained again (a resumed or
        restarted run). Rows without a step (written before version 0.3) count whole epochs."""
        rows = self.read_history()
        kept = [row for row in rows if row.get("step", row["epoch"] * steps_per_epoch) <= step]
        if len(kept) != len(rows):
            write_history(self.history, kept)

    def clear_derived(self):
        """Removes what an attempt that left nothing to continue from wrote besides its configuration."""
        for path in (self.history, self.curves, self.metrics):
            if os.path.exists(path):
                os.remove(path)
        shutil.rmtree(self.tensorboard, ignore_errors=True)

    def remove_started(self):
        """Removes what a new run wrote before it was refused (its configuration, labels and derived
        files), leaving the directory as it was before: the lock's release removes it if it made it."""
        self.clear_derived()
        for path in (self.config, self.labels):
            if os.path.exists(path):
                os.remove(path)
        files.remove_partials(self.path)


class _Lock:
    def __init__(self, run, descriptor, *, created):
        self.run = run
        self.descriptor = descriptor
        self.created = created

    def release(self):
        """Unlocks; the directories this lock created are removed again if nothing else was written."""
        if self.descriptor is None:
            return
        # Nothing but the lock: the directory is as it was (it may have been made here, or been empty).
        if os.listdir(self.run.path) == [LOCK_FILE]:
            os.remove(self.run.lock_file)
            for directory in self.created:  # deepest first; os.rmdir leaves any that is not empty
                try:
                    os.rmdir(directory)
                except OSError:
                    break
        os.close(self.descriptor)
        self.descriptor = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.release()


def _missing_directories(path):
    """The directories os.makedirs(path) would create, deepest first."""
    missing = []
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def _same_file(descriptor, path):
    try:
        return os.path.samestat(os.fstat(descriptor), os.stat(path))
    except OSError:
        return False


def _read_pid(descriptor):
    try:
        text = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


# -- a model of ours, read without loading it -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OwnModel:
    """A .keras file of ours (train.py's or keras_resnet.build's), read without TensorFlow."""

    path: str  # the .keras file
    build_arguments: dict  # keras_resnet.ResNet's arguments, every default resolved
    config: RunConfig | None  # its run's configuration, when it lies in a run directory

    @property
    def network(self):
        """Its network's name without the version: resnet18, plain56."""
        return f"{'plain' if self.build_arguments.get('plain') else 'resnet'}{self.build_arguments['depth']}"

    @property
    def image_size(self):
        """The size it was trained at: its run's, else its input's (None: any size)."""
        if self.config is not None:
            return self.config.data.image_size
        size = (self.build_arguments.get("input_shape") or [None])[0]
        return size if isinstance(size, int) else None


def own_model(path):
    """The OwnModel at `path` — a run directory (its best.keras, else last.keras) or a .keras file —
    or None when `path` names neither. Raises UsageError for a run directory without a model and for
    a .keras file that this package did not build."""
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if os.path.isdir(path):
        run = RunDirectory(path)
        if not os.path.exists(run.config):
            return None
        path = run.best_model if os.path.exists(run.best_model) else run.last_model
        if not os.path.exists(path):
            raise UsageError(f"{run.path} is a run directory without a model yet (best.keras or last.keras): train it first.")
    elif not (path.endswith(".keras") and os.path.isfile(path)):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            saved = json.loads(archive.read("config.json"))
        arguments = saved["config"]["build_arguments"]
        if not isinstance(arguments, dict) or not isinstance(arguments.get("depth"), int):
            raise TypeError(arguments)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError):
        raise UsageError(f"{path} is not a model built by keras_resnet (a .keras file with its build arguments).") from None
    problem = specs.build_arguments_problem(arguments)
    if problem:
        raise UsageError(f"{path} is not a model keras_resnet can rebuild: its build arguments were changed ({problem}).")
    beside = RunDirectory(os.path.dirname(path))
    config = beside.read_config() if os.path.exists(beside.config) else None
    return OwnModel(path, arguments, config)


# -- history.csv --------------------------------------------------------------------------------

HISTORY_LEADING_COLUMNS = ("epoch", "step")


def read_history(history_path):
    """history.csv's rows as dicts of floats (empty cells left out), in epoch order, epochs numbered
    from 1 (files written before 0.5 number them from 0: read as from 1). Rows that do not parse (a
    line cut short by a crash of a version that appended to the file) are skipped."""
    if not os.path.exists(history_path):
        return []
    rows = []
    with open(history_path, newline="") as file:
        for row in csv.DictReader(file):
            try:
                parsed = {key: float(value) for key, value in row.items() if key is not None and value not in ("", None)}
            except (TypeError, ValueError):
                continue
            if "epoch" in parsed:
                rows.append(parsed)
    if rows and min(row["epoch"] for row in rows) == 0:
        for row in rows:
            row["epoch"] += 1
    return sorted(rows, key=lambda row: row["epoch"])


def write_history(history_path, rows):
    """Writes `rows` whole: every column any row has, blank where a row lacks it."""
    keys = sorted({key for row in rows for key in row} - set(HISTORY_LEADING_COLUMNS))
    columns = [key for key in HISTORY_LEADING_COLUMNS if any(key in row for row in rows)] + keys
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(key, value) for key, value in row.items()})
    files.write_text(history_path, buffer.getvalue())


def _cell(key, value):
    return int(value) if key in HISTORY_LEADING_COLUMNS else repr(float(value))


# -- finding runs -------------------------------------------------------------------------------


def default_path(model_name, dataset, *, root="runs"):
    """A new run directory's path: `root`/MODEL-DATASET-YYYYmmdd-HHMMSS, stamped with the local time now.

    Args:
        model_name: The network's name, e.g. "resnet20".
        dataset: The dataset as --dataset names it (made safe for a file name by `dataset_slug`).
        root: The folder of runs, relative to the current directory unless absolute.

    Returns:
        The path, a str; nothing is created.
    """
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join(root, f"{model_name}-{dataset_slug(dataset)}-{stamp}")


def dataset_slug(dataset):
    return re.sub(r"[^A-Za-z0-9_.]+", "_", dataset.removeprefix("folder:").strip("/")) or "data"


def find_interrupted(config, *, root="runs"):
    """The newest run under `root` for this configuration's model and dataset that stopped before
    finishing, left something to continue from (a backup or last.keras), was started with the same
    configuration and is not being trained by another process."""
    if not os.path.isdir(root):
        return None
    prefix = f"{config.model.name}-{dataset_slug(config.data.dataset)}-"
    for name in sorted(os.listdir(root), reverse=True):
        run = RunDirectory(os.path.join(root, name))
        if name.startswith(prefix) and run.has_state() and not run.is_finished() and os.path.exists(run.config):
            try:
                saved = run.read_config()
            except ConfigFileError:
                continue  # not ours to resume
            if saved.same_training(config.with_stored_defaults(saved)) and run.holder() is None:
                return run
    return None
