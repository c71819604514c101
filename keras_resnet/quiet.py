"""TensorFlow without its start-up noise on stderr.

TensorFlow 2.21 writes C++ notices to stderr when it is imported (oneDNN, CUDA stubs, CPU features)
and when it first looks for devices (a cuInit error on every machine without a GPU). No environment
variable silences them: before absl's logging is initialized, TF_CPP_MIN_LOG_LEVEL is not consulted.
They would bury our one-line messages, so file descriptor 2 points at /dev/null during exactly those
two moments. Python-level errors are unaffected (stderr is restored before they propagate). Set
KERAS_RESNET_TF_LOGS=1 to see everything.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced():
    if os.environ.get("KERAS_RESNET_TF_LOGS") == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow_quietly():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    with native_stderr_silenced():
        import tensorflow  # noqa: F401


def list_devices_quietly(kind=None):
    """tf.config.list_physical_devices(kind), without the cuInit error of GPU-less machines."""
    import_tensorflow_quietly()
    import tensorflow as tf

    with native_stderr_silenced():
        return tf.config.list_physical_devices(kind)
