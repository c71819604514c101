"""TensorFlow (and LiteRT) without their start-up noise on stderr.

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
import tempfile


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


class CapturedOutput:
    text = ""


@contextlib.contextmanager
def native_output_captured():
    """Everything native code writes to file descriptors 1 and 2 inside the block, kept in the
    yielded object's `text` (after the block) instead of reaching the terminal: LiteRT's GPU
    accelerator says which adapter it chose, or why there is none, only there. With
    KERAS_RESNET_TF_LOGS=1 it is also written to stderr."""
    captured = CapturedOutput()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as log:
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            yield captured
        finally:
            _flush_c_streams()  # what C and C++ code buffered is written into the log, not later
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for descriptor in saved:
                os.close(descriptor)
            log.seek(0)
            captured.text = log.read().decode("utf-8", "replace")
    if os.environ.get("KERAS_RESNET_TF_LOGS") == "1":
        sys.stderr.write(captured.text)


def _flush_c_streams():
    import ctypes

    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library to reach: nothing buffered there to lose
        pass


def native_output_silenced_at_exit():
    """LiteRT's accelerators log their teardown ("DestroyAccelerator") from C++ as the process
    exits, after the program's last line: stderr goes to /dev/null once the program is done
    (atexit runs before that teardown). For command-line programs only."""
    import atexit

    if os.environ.get("KERAS_RESNET_TF_LOGS") == "1":
        return

    def silence():
        sys.stdout.flush()
        sys.stderr.flush()
        _flush_c_streams()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)

    atexit.register(silence)


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
