"""Class names inside the .tflite file, so that a model file alone can name what it sees.

They travel the way TFLite Support's metadata writers pack associated files: `labels.txt` in a zip
archive appended to the flatbuffer. LiteRT ignores the bytes after the flatbuffer; Python's zipfile
(and `unzip -l model.tflite`) reads them:

    zipfile.ZipFile("resnet20_int8-qat.tflite").read("labels.txt").decode().splitlines()
"""

import io
import unicodedata
import zipfile

from keras_resnet.runtime import LiteRTError, reason

LABELS_FILE = "labels.txt"
# ImageNet's 1,000 class names take 21 kB: a labels.txt that inflates past this is not labels, and
# reading no further keeps a small file that inflates to gigabytes from costing them in memory.
MAX_LABELS_BYTES = 4 * 1024 * 1024


def with_labels(content, class_names):
    """The .tflite bytes `content` with `class_names` appended as labels.txt."""
    buffer = io.BytesIO(bytes(content))
    buffer.seek(0, io.SEEK_END)
    # Mode "a" on bytes that are not a zip writes a new archive after them, with offsets counted
    # from the start of the file.
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(LABELS_FILE, labels_text(class_names))
    return buffer.getvalue()


def read_labels(path):
    """Class names from a labels file (one per line), or from the labels.txt packed in a .tflite
    file; None when a .tflite file carries none. Raises LiteRTError for an unreadable labels file."""
    if not str(path).endswith(".tflite"):
        try:
            with open(path, encoding="utf-8") as file:
                return names_in(file)
        except (OSError, UnicodeDecodeError) as error:
            raise LiteRTError(f"cannot read labels file {path}: {reason(error)}") from None
    try:
        with zipfile.ZipFile(path) as archive:
            data = read_packed(archive, LABELS_FILE, limit=MAX_LABELS_BYTES)
    except (zipfile.BadZipFile, KeyError):
        return None
    except (PackedFileTooLarge, OSError, NotImplementedError, RuntimeError, EOFError) as error:
        raise LiteRTError(f"{path}: its packed {LABELS_FILE} cannot be read ({reason(error)}): pass --labels FILE") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LiteRTError(f"{path}: its packed {LABELS_FILE} is not UTF-8 text: pass --labels FILE") from None
    return names_in(text.splitlines())


class PackedFileTooLarge(ValueError):
    pass


def read_packed(archive, name, *, limit):
    """The bytes of one file in a .tflite's appended zip archive, inflating no more than `limit` bytes.

    A few kilobytes that inflate to gigabytes are refused, not held in memory.

    Args:
        archive: The zipfile.ZipFile opened on the .tflite file.
        name: The file's name in the archive.
        limit: The most bytes the file may inflate to.

    Returns:
        The file's bytes.

    Raises:
        PackedFileTooLarge: The file inflates past `limit` bytes.
        KeyError: The archive has no file of that name.
    """
    with archive.open(name) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise PackedFileTooLarge(f"it inflates past {limit:,} bytes, far more than ours hold: a tampered file")
    return data


def names_in(lines):
    """The class names of a labels file's lines (one name per line: the format's one reader, as
    `labels_text` is its one writer), blank lines left out and control characters (escape
    sequences, bells) written as escapes, so that a name cannot drive the terminal."""
    return [_printable(line.strip()) for line in lines if line.strip()]


def _printable(name):
    return "".join(
        character.encode("unicode_escape").decode("ascii") if unicodedata.category(character) == "Cc" else character
        for character in name
    )


def labels_text(class_names):
    """A labels file's text: one name per line, in label order."""
    return "".join(f"{name}\n" for name in class_names)
