"""Class names inside the .tflite file, so that a model file alone can name what it sees.

They travel the way TFLite Support's metadata writers pack associated files: `labels.txt` in a zip
archive appended to the flatbuffer. LiteRT ignores the bytes after the flatbuffer; Python's zipfile
(and `unzip -l model.tflite`) reads them:

    zipfile.ZipFile("resnet20_int8-qat.tflite").read("labels.txt").decode().splitlines()
"""

import io
import zipfile

from keras_resnet.runtime import LiteRTError, reason

LABELS_FILE = "labels.txt"


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
                return [line.strip() for line in file if line.strip()]
        except (OSError, UnicodeDecodeError) as error:
            raise LiteRTError(f"cannot read labels file {path}: {reason(error)}") from None
    try:
        with zipfile.ZipFile(path) as archive:
            text = archive.read(LABELS_FILE).decode("utf-8")
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError):
        return None
    return [line.strip() for line in text.splitlines() if line.strip()]


def labels_text(class_names):
    return "".join(f"{name}\n" for name in class_names)
