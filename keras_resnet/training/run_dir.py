"""A run directory: everything a training run leaves for evaluation, conversion and the demo.

    config.json    the run's configuration (keras_resnet.config.RunConfig): network, data, recipe
    labels.txt     class names, one per line, in label order
    best.keras     the model with the best validation top-1; last.keras: the model after the last epoch
    history.csv    per-epoch metrics; curves.png: loss and top-1 per epoch
    metrics.json   final validation top-1, top-5, loss and training images/s; written last
    logs/          TensorBoard
    backup/        the state of an unfinished run, every --save-every-steps steps
"""

import datetime
import json
import os
import re

from keras_resnet.config import ConfigFileError, RunConfig


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

    def __str__(self):
        return self.path

    def is_empty(self):
        """No files of a run (multi-worker runs keep the other workers' files in worker-N/)."""
        return not os.path.isdir(self.path) or all(name.startswith("worker-") for name in os.listdir(self.path))

    def has_backup(self):
        return os.path.exists(os.path.join(self.backup, "latest.weights.h5"))

    def is_finished(self):
        return os.path.exists(self.metrics)

    def read_config(self):
        """The run's RunConfig. Raises config.ConfigFileError for a missing, corrupt or foreign file."""
        return RunConfig.read(self.config)

    def write_config(self, config):
        self.write_json(self.config, config.to_json())

    def write_json(self, path, data):
        temporary = f"{path}.tmp"
        with open(temporary, "w") as file:
            json.dump(data, file, indent=2)
            file.write("\n")
        os.replace(temporary, path)  # never a half-written file, even when killed

    def read_labels(self):
        with open(self.labels) as file:
            return [line.rstrip("\n") for line in file if line.strip()]

    def write_labels(self, class_names):
        with open(self.labels, "w") as file:
            file.writelines(f"{name}\n" for name in class_names)


def default_path(model_name, dataset, *, root="runs"):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join(root, f"{model_name}-{dataset_slug(dataset)}-{stamp}")


def dataset_slug(dataset):
    return re.sub(r"[^A-Za-z0-9_.]+", "_", dataset.removeprefix("folder:").strip("/")) or "data"


def find_interrupted(config, *, root="runs"):
    """The newest run under `root` for this configuration's model and dataset that stopped before
    finishing, left a backup, and was started with the same configuration."""
    if not os.path.isdir(root):
        return None
    prefix = f"{config.model.name}-{dataset_slug(config.data.dataset)}-"
    for name in sorted(os.listdir(root), reverse=True):
        run = RunDirectory(os.path.join(root, name))
        if name.startswith(prefix) and run.has_backup() and not run.is_finished() and os.path.exists(run.config):
            try:
                saved = run.read_config()
            except ConfigFileError:
                continue  # not ours to resume
            if saved.same_training(config):
                return run
    return None
