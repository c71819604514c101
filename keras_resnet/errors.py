"""The errors a user can fix, in one home: each is raised with one line that says what is wrong and
what to do, and the programs in keras_resnet.cli print it as `error: …` and exit with status 2 (bad
input) or 1 (TrainingError: training started and could not go on). No TensorFlow, no Keras: every
layer may import this module, and it imports nothing of the package.

The TensorFlow-free runtime on a board has its own (keras_resnet.runtime.LiteRTError and its kinds),
which run on the Coral Dev Board's Python 3.7 without the rest of the package.
"""


class UsageError(ValueError):
    """Bad input: a flag, a path, a dataset or a combination that cannot work. Exit code 2."""


class ConfigFileError(UsageError):
    """A config.json that is not one: unreadable, not JSON, or not a run configuration."""


class DatasetError(ValueError):
    """A dataset that cannot be opened: unknown, unreachable, empty, or not images with labels."""


class RecordsError(ValueError):
    """Shards that cannot be read as a dataset (none found, no labels, a damaged file)."""


class ServiceError(ValueError):
    """A tf.data service that cannot be used: a malformed address, or no dispatcher there."""


class WeightsError(ValueError):
    """A weights file that cannot be used: unreadable, of an unknown kind, or not fitting the model."""


class WeightsDownloadError(OSError):
    """Pretrained weights that could not be downloaded."""


class CheckpointError(WeightsError):
    """A PyTorch checkpoint (timm, torchvision) that does not fit: unknown name, unreadable file, another network."""


class CheckpointDownloadError(WeightsDownloadError):
    """A published checkpoint that could not be downloaded (offline, hub unreachable)."""


class DistributeError(ValueError):
    """A strategy or precision that cannot be used here."""


class ConversionError(ValueError):
    """Bad input for a conversion: a path, a file, a flag. Exit code 2."""


class TrainingError(RuntimeError):
    """Training started but could not go on (a non-finite loss). Exit code 1."""
