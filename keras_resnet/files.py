"""Files that appear complete or not at all, and one-line messages for the errors of writing them.

Every file the project writes (models, backups, configuration, labels, metrics, history, reports,
figures, .tflite) goes through `replacing(path)`: the writer writes a temporary file beside the
target (same directory, so same filesystem), which is flushed to disk and then renamed over the
target in one step. A kill -9 or a full disk at any moment leaves either the previous complete file or
the new complete one, never a truncated one. The temporary file's name starts with `.partial-` and
keeps the target's ending (Keras and Matplotlib choose the format by it); one left by a killed
process is removed by `remove_partials` the next time the directory is written.

Test hook: with KERAS_RESNET_TEST_PAUSE_WRITING=NAME (or NAME#N: its Nth write in the process) in
the environment, a write of a file called NAME stops after the temporary file was written (and cut
to half its size, as a write interrupted mid-way would leave it), announces that on stderr and waits
to be killed: the tests kill -9 a process inside a save at a known point instead of racing a timer.
"""

import contextlib
import errno
import os
import sys
import tempfile
import time

from keras_resnet.runtime import reason

PARTIAL_PREFIX = ".partial-"
PAUSE_VARIABLE = "KERAS_RESNET_TEST_PAUSE_WRITING"
# Errors that more free space or another place to write fixes, not another input.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# mkstemp makes files only their owner can read; the file gets what open() would have given it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def replacing(path):
    """Yields a temporary path beside `path` for a writer that takes a path (model.save,
    save_weights, savefig, …); when the block ends, the file is synced and renamed to `path`. If the
    block raises, the temporary file is removed and `path` is untouched."""
    directory, name = os.path.split(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=f"{PARTIAL_PREFIX}{os.getpid()}-", suffix=f"-{name}", dir=directory)
    os.close(descriptor)
    try:
        os.chmod(temporary, 0o666 & ~_UMASK)
        yield temporary
        _sync(temporary)
        _pause_if_asked(name, temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    _sync_directory(directory)


def ensure_free_space(directory, needed_bytes):
    """Raises OSError(ENOSPC) when `directory`'s filesystem has less than `needed_bytes` free: for
    writers that fail badly on a full disk (h5py leaves a file handle whose cleanup fails again at
    exit, and the process can crash there)."""
    status = os.statvfs(directory)
    if status.f_bavail * status.f_frsize < needed_bytes:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), directory)


def write_bytes(path, content):
    with replacing(path) as temporary, open(temporary, "wb") as file:
        file.write(content)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def remove_partials(directory):
    """Removes the temporary files that killed writers left in `directory` (not those of a live
    process: their names hold its PID)."""
    if not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        if name.startswith(PARTIAL_PREFIX) and not _writer_alive(name):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(directory, name))


def is_partial(name):
    return name.startswith(PARTIAL_PREFIX)


def is_out_of_space(error):
    """A full disk or quota, also as h5py reports it (an OSError whose errno is not set)."""
    if isinstance(error, OSError) and error.errno in NO_SPACE:
        return True
    text = str(error)
    return any(os.strerror(code) in text for code in NO_SPACE) or "errno = 28" in text


def describe_os_error(error):
    """The reason of a failed write in a few words ('No space left on device'), without the path:
    runtime.reason's, and a full disk recognised in the errors that TensorFlow and HDF5 raise."""
    if not (isinstance(error, OSError) and error.strerror) and is_out_of_space(error):
        return "No space left on device"
    return reason(error)


def _writer_alive(name):
    pid = name[len(PARTIAL_PREFIX):].split("-", 1)[0]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sync(path):
    with open(path, "rb+") as file:
        os.fsync(file.fileno())


def _sync_directory(directory):
    """Makes the rename itself durable (a power cut after it keeps the new file)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some filesystems cannot sync a directory; the rename is still atomic
    finally:
        os.close(descriptor)


_writes = {}


def _pause_if_asked(name, temporary):
    wanted, _, count = os.environ.get(PAUSE_VARIABLE, "").partition("#")
    if wanted != name:
        return
    _writes[name] = _writes.get(name, 0) + 1
    if _writes[name] != int(count or 1):
        return
    os.truncate(temporary, os.path.getsize(temporary) // 2)
    sys.stderr.write(f"test hook: paused writing {name} (process {os.getpid()})\n")
    sys.stderr.flush()
    while True:
        time.sleep(60)
