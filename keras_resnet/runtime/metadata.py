"""What a .tflite file of ours carries besides its graph, so that every runtime treats the model as
the conversion measured it:

- labels.txt          the class names (keras_resnet.runtime.labels)
- keras_resnet.json   the evaluation transform (keras_resnet.runtime.preprocessing) and the
                      conversion's verdict on LiteRT's GPU accelerator ("CPU only" when the GPU's
                      answers disagreed with the CPU's)
- selftest/N.png      a few of the run's validation pictures, already at the model's input size: what
                      a runtime runs on the GPU and on the CPU before it trusts the GPU

They travel as labels.txt does: files in a zip archive appended to the flatbuffer, which LiteRT
ignores (`unzip -l model.tflite` lists them). A file without them (written before they existed, or by
another converter) gets the defaults: the whole centred square, no verdict, generated self-test inputs.
"""

import dataclasses
import io
import json
import zipfile
from typing import Optional

import numpy as np

from keras_resnet.runtime import LiteRTError, labels as labels_lib
from keras_resnet.runtime.preprocessing import LEGACY_CROP_FRACTION, Preprocessing

METADATA_FILE = "keras_resnet.json"
SELFTEST_FOLDER = "selftest/"
# Ours hold a few hundred bytes of JSON and a few pictures of at most the input's size: a file past
# these bounds is refused before it is inflated (labels.read_packed).
MAX_DESCRIPTION_BYTES = 1024 * 1024
MAX_SELFTEST_PICTURES = 64
MAX_SELFTEST_PICTURE_BYTES = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class GpuVerdict:
    """The conversion's measurement of the model on LiteRT's GPU accelerator."""

    usable: bool
    reason: str  # what was measured, e.g. "42.50 % top-1 agreement with its CPU run on 200 images"

    def to_json(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Metadata:
    preprocessing: Preprocessing
    gpu: Optional[GpuVerdict] = None  # None: not measured (Optional: the board's Python 3.7 evaluates this)
    selftest: tuple = ()  # uint8 (H, W, 3) input pictures
    recorded: bool = True  # False: the file carries none of this (the defaults stand in)


def pack(content, *, class_names, preprocessing, selftest=(), gpu=None):
    """The .tflite bytes with the class names, the evaluation transform, the self-test pictures and the GPU verdict appended.

    Args:
        content: The .tflite flatbuffer (bytes).
        class_names: The class names, in label order (written as labels.txt).
        preprocessing: The evaluation transform (a keras_resnet.runtime.preprocessing.Preprocessing).
        selftest: Self-test pictures, uint8 arrays of shape (H, W, 3) at the model's input size (written as PNGs).
        gpu: The GpuVerdict of the conversion, or None when the GPU was not measured.

    Returns:
        The bytes of the new .tflite file.
    """
    content = labels_lib.with_labels(content, class_names)
    buffer = io.BytesIO(content)
    buffer.seek(0, io.SEEK_END)
    description = {"preprocessing": preprocessing.to_json()}
    if gpu is not None:
        description["gpu"] = gpu.to_json()
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(METADATA_FILE, json.dumps(description, indent=1) + "\n")
        for index, picture in enumerate(selftest):
            archive.writestr(f"{SELFTEST_FOLDER}{index}.png", _png(picture))
    return buffer.getvalue()


def read(path):
    """The Metadata of the .tflite file at `path`. Raises LiteRTError for metadata that is there but
    damaged (a model must not run with a transform it was not measured with)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return Metadata(preprocessing=Preprocessing(LEGACY_CROP_FRACTION), recorded=False)
    with archive:
        names = archive.namelist()
        if METADATA_FILE not in names:
            return Metadata(preprocessing=Preprocessing(LEGACY_CROP_FRACTION), recorded=False)
        try:
            description = json.loads(labels_lib.read_packed(archive, METADATA_FILE, limit=MAX_DESCRIPTION_BYTES).decode("utf-8"))
            preprocessing = Preprocessing.from_json(description.get("preprocessing", {}))
            gpu = description.get("gpu")
            verdict = None if gpu is None else GpuVerdict(usable=bool(gpu["usable"]), reason=str(gpu["reason"]))
            pictures = sorted(
                (name for name in names if name.startswith(SELFTEST_FOLDER) and name.endswith(".png")),
                key=lambda name: int(name[len(SELFTEST_FOLDER) : -len(".png")]),
            )
            if len(pictures) > MAX_SELFTEST_PICTURES:
                raise ValueError(f"{len(pictures)} self-test pictures, more than the {MAX_SELFTEST_PICTURES} a conversion writes")
            selftest = tuple(_picture(labels_lib.read_packed(archive, name, limit=MAX_SELFTEST_PICTURE_BYTES)) for name in pictures)
        except (ValueError, KeyError, TypeError, AttributeError, OSError, zipfile.BadZipFile) as error:
            raise LiteRTError(f"{path}: its packed {METADATA_FILE} or self-test pictures are damaged ({error}): convert the model again") from None
    return Metadata(preprocessing=preprocessing, gpu=verdict, selftest=selftest)


def _png(picture):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(picture, np.uint8), "RGB").save(buffer, "PNG")
    return buffer.getvalue()


def _picture(data):
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))
