"""An image classifier from a .tflite file, for boards: the LiteRT interpreter with its delegate, the
class names the file carries, and the preprocessing every picture goes through.

It needs only `pip install ai-edge-litert numpy pillow` (Coral's `tflite-runtime` works too) and never
imports TensorFlow or Keras, so edge_demo/ can be copied to a Raspberry Pi or a Coral Dev Board on its
own. That is also why it reads the labels, (de)quantizes, times `invoke()` and quiets LiteRT's
stderr by itself instead of importing keras_resnet.litert and keras_resnet.quiet: importing anything
from keras_resnet imports TensorFlow.
"""

import contextlib
import ctypes
import os
import sys
import statistics
import time
import zipfile
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

LABELS_FILE = "labels.txt"  # inside the .tflite: a zip appended to the flatbuffer (convert/to_tflite.py)
EDGETPU_CUSTOM_OP = b"edgetpu-custom-op"  # what edgetpu_compiler puts in the graph


class ClassifierError(Exception):
    """A problem the user can fix, in one line: what is wrong and what to do."""


@dataclass(frozen=True)
class DelegateSpec:
    library: str
    description: str
    missing: str  # what to do when the library cannot be loaded


DELEGATES = {
    "cpu": None,  # LiteRT's built-in CPU path (XNNPACK)
    "gpu": DelegateSpec(
        library="libtensorflowlite_gpu_delegate.so",
        description="GPU delegate (OpenCL / OpenGL ES)",
        missing=(
            "no pip or apt package ships the TFLite GPU delegate for Linux: build it with "
            "`bazel build -c opt --copt -DMESA_EGL_NO_X11_HEADERS --copt -DEGL_NO_X11 "
            "//tensorflow/lite/delegates/gpu:libtensorflowlite_gpu_delegate.so` in a TensorFlow checkout, "
            "install your GPU's OpenCL driver (apt install ocl-icd-libopencl1 and e.g. mesa-opencl-icd), "
            "and pass --delegate-library PATH (edge_demo/README section 'GPU delegate')"
        ),
    ),
    "edgetpu": DelegateSpec(
        library="libedgetpu.so.1",
        description="Coral Edge TPU",
        missing=(
            "install the Edge TPU runtime: add Coral's apt repository (https://coral.ai/software/#debian-packages) "
            "and `sudo apt install libedgetpu1-std`, then plug the USB Accelerator in again"
        ),
    ),
}


def _interpreter_module(*, prefer_tflite_runtime):
    """ai_edge_litert.interpreter, or Coral's tflite_runtime.interpreter (the same API): libedgetpu is
    built against one TFLite version, and Coral ships tflite_runtime to match it, so the Edge TPU
    prefers it when both are installed."""
    names = ["ai_edge_litert.interpreter", "tflite_runtime.interpreter"]
    if prefer_tflite_runtime:
        names.reverse()
    for name in names:
        try:
            return __import__(name, fromlist=["Interpreter"])
        except ImportError:
            continue
    raise ClassifierError("no LiteRT runtime is installed: pip install ai-edge-litert (or Coral's tflite-runtime)")


def read_labels(path):
    """Class names from a labels file (one per line), or from the labels.txt packed in a .tflite
    file; None when a .tflite file carries none."""
    if not path.endswith(".tflite"):
        try:
            with open(path, encoding="utf-8") as file:
                return [line.strip() for line in file if line.strip()]
        except (OSError, UnicodeDecodeError) as error:
            raise ClassifierError(f"cannot read labels file {path}: {_reason(error)}") from None
    try:
        with zipfile.ZipFile(path) as archive:
            text = archive.read(LABELS_FILE).decode("utf-8")
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError):
        return None
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_image(path):
    """The picture at `path` as 8-bit RGB, upright. Raises ClassifierError for anything unreadable."""
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not halfway through preprocessing
            return to_rgb(ImageOps.exif_transpose(image))
    except FileNotFoundError:
        raise ClassifierError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ClassifierError(f"{path}: is a directory") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        # UnidentifiedImageError and truncated-file errors are OSErrors; some decoders raise the others.
        raise ClassifierError(f"{path}: not an image Pillow can read ({_reason(error)})") from None


def to_rgb(image):
    """8-bit RGB from any Pillow mode. Transparency is laid over white, as a browser page shows it;
    16-bit grayscale is scaled, not clipped; CMYK and palette images go through Pillow's conversion."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or pixels.max() > 255 else 255.0
        image = Image.fromarray(np.round(pixels / top * 255.0).astype(np.uint8), "L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def centre_crop_box(width, height):
    """The largest centred square of a width × height picture, as Pillow's (left, top, right, bottom)."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return (left, top, left + side, top + side)


@contextlib.contextmanager
def native_stderr_silenced():
    """LiteRT announces itself on stderr from C++ ("INFO: Created TensorFlow Lite XNNPACK delegate for
    CPU."), and OpenCV's capture back ends warn there; our messages there are one line each.
    Failures still raise or return their reason. Set KERAS_RESNET_TF_LOGS=1 to see everything (as
    everywhere in keras-resnet)."""
    if os.environ.get("KERAS_RESNET_TF_LOGS") == "1":
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _reason(error):
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


class Classifier:
    """One .tflite classifier (batch 1, NHWC image input, one score per class) on a delegate."""

    def __init__(self, model_path, *, delegate="cpu", delegate_library=None, threads=None, labels=None):
        if delegate not in DELEGATES:
            raise ClassifierError(f"unknown delegate {delegate!r}: valid are {', '.join(DELEGATES)}")
        self.model_path = model_path
        self.delegate = delegate
        self.threads = threads or os.cpu_count()
        content = self._read_model(model_path)
        compiled_for_edgetpu = EDGETPU_CUSTOM_OP in content
        if compiled_for_edgetpu and delegate != "edgetpu":
            raise ClassifierError(
                f"{model_path} was compiled for the Edge TPU (it holds edgetpu-custom-op): run it with --delegate edgetpu, "
                "or use the .tflite file from before edgetpu_compiler"
            )
        self.notes = []
        if delegate == "edgetpu" and not compiled_for_edgetpu:
            self.notes.append(
                "this model was not compiled with edgetpu_compiler, so every op runs on the CPU: "
                f"edgetpu_compiler {os.path.basename(model_path)} writes the Edge TPU version"
            )
        runtime = _interpreter_module(prefer_tflite_runtime=delegate == "edgetpu")
        spec = DELEGATES[delegate]
        self.delegate_library = (delegate_library or spec.library) if spec else None
        delegates = [self._load_delegate(runtime, spec, self.delegate_library)] if spec else []
        self.runtime_name = runtime.__name__.split(".")[0]
        try:
            with native_stderr_silenced():
                self.interpreter = runtime.Interpreter(
                    model_content=content, experimental_delegates=delegates, num_threads=self.threads
                )
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ClassifierError(f"{model_path}: LiteRT cannot load this model ({_reason(error)})") from None
        self._check_signature()
        self.labels = self._labels(labels)

    @staticmethod
    def _read_model(path):
        try:
            with open(path, "rb") as file:
                content = file.read()
        except OSError as error:
            raise ClassifierError(f"cannot read model {path}: {_reason(error)}") from None
        # A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4-8.
        if len(content) < 8 or content[4:8] != b"TFL3":
            raise ClassifierError(f"{path} is not a .tflite model (no TFL3 identifier): pass a file written by convert/to_tflite.py")
        return content

    @staticmethod
    def _load_delegate(runtime, spec, library):
        # Probe with ctypes first: when the library is missing, load_delegate raises an OSError and
        # then its half-built Delegate object prints an "Exception ignored" traceback when collected.
        try:
            shared_library = ctypes.CDLL(library)
        except OSError as error:
            raise ClassifierError(f"cannot load the {spec.description} library {library} ({_reason(error)}): {spec.missing}") from None
        # The same for a library that is not a delegate (its __del__ wants the destroy function).
        for symbol in ("tflite_plugin_create_delegate", "tflite_plugin_destroy_delegate"):
            if not hasattr(shared_library, symbol):
                raise ClassifierError(f"{library} is not a TFLite delegate library (it has no {symbol}): {spec.missing}")
        try:
            with native_stderr_silenced():
                return runtime.load_delegate(library)
        except (ValueError, RuntimeError) as error:
            # LiteRT puts "Failed to load delegate from LIBRARY" first and the delegate's own words after.
            detail = " ".join(str(error).replace(f"Failed to load delegate from {library}", "").split()) or "no details"
            if spec.library == DELEGATES["edgetpu"].library:
                detail += "; is the Edge TPU plugged in (lsusb shows 'Global Unichip' or 'Google Inc.')?"
            raise ClassifierError(f"the {spec.description} library {library} loaded but gave no delegate: {detail}") from None

    def _check_signature(self):
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ClassifierError(f"{self.model_path} has {len(inputs)} inputs and {len(outputs)} outputs: an image classifier has one of each")
        self.input, self.output = inputs[0], outputs[0]
        shape = tuple(int(d) for d in self.input["shape"])
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise ClassifierError(f"{self.model_path} takes input of shape {list(shape)}: an image classifier here takes [1, height, width, 3]")
        self.input_size = (shape[2], shape[1])  # (width, height), as Pillow counts
        self.classes = int(np.prod(self.output["shape"]))

    def _labels(self, labels_path):
        names = read_labels(labels_path) if labels_path else read_labels(self.model_path)
        if names is None:
            return [f"class {index}" for index in range(self.classes)]
        if len(names) != self.classes:
            source = labels_path or f"the labels inside {self.model_path}"
            raise ClassifierError(f"{source} names {len(names)} classes but the model has {self.classes}: pass the labels file it was trained with")
        return names

    @property
    def input_type(self):
        return np.dtype(self.input["dtype"]).name

    def preprocess(self, image):
        """RGB Pillow image → float pixels in [0, 255] at the model's input size: the largest centred
        square, resized with Pillow's antialiasing bilinear filter (what a browser's canvas does too)."""
        # Cropped first, so that the filter sees the square alone, as if it were the whole picture.
        square = image.crop(centre_crop_box(*image.size))
        resized = square.resize(self.input_size, Image.BILINEAR)
        return np.asarray(resized, dtype=np.float32)

    def _set_input(self, pixels):
        dtype = np.dtype(self.input["dtype"])
        if np.issubdtype(dtype, np.integer):
            # The integer models of convert/to_tflite.py take raw pixels (scale 1, zero point 0); any
            # other quantization is honoured as the file states it.
            scale, zero_point = self.input["quantization"]
            info = np.iinfo(dtype)
            pixels = np.clip(np.round(pixels / (scale or 1.0) + zero_point), info.min, info.max)
        self.interpreter.set_tensor(self.input["index"], np.asarray(pixels, dtype)[None])

    def _scores(self):
        scores = self.interpreter.get_tensor(self.output["index"]).reshape(-1)
        if np.issubdtype(scores.dtype, np.integer):
            scale, zero_point = self.output["quantization"]
            return (scores.astype(np.float32) - zero_point) * (scale or 1.0)
        return scores.astype(np.float32)

    def classify(self, image, *, top_k):
        """[(class name, score)] best first, and the milliseconds `invoke()` took."""
        self._set_input(self.preprocess(image))
        start = time.perf_counter()
        self.interpreter.invoke()
        milliseconds = (time.perf_counter() - start) * 1000
        scores = self._scores()
        best = np.argsort(-scores, kind="stable")[:top_k]
        return [(self.labels[index], float(scores[index])) for index in best], milliseconds

    def benchmark(self, image, *, runs, warmup=10):
        """Latency of `invoke()` at batch 1 on one preprocessed image (mid-grey when None)."""
        width, height = self.input_size
        pixels = self.preprocess(image) if image is not None else np.full((height, width, 3), 128.0, np.float32)
        self._set_input(pixels)
        for _ in range(warmup):
            self.interpreter.invoke()
        timings = []
        for _ in range(runs):
            start = time.perf_counter()
            self.interpreter.invoke()
            timings.append((time.perf_counter() - start) * 1000)
        return {
            "runs": runs,
            "median_ms": statistics.median(timings),
            "p90_ms": float(np.percentile(timings, 90)),
            "frames_per_second": 1000.0 * runs / sum(timings),
        }

    def describe(self):
        """One line: the model, its input and where it runs."""
        width, height = self.input_size
        where = {
            "cpu": f"CPU ({self.threads} thread{'s' if self.threads != 1 else ''})",
            "gpu": f"GPU delegate ({self.delegate_library})",
            "edgetpu": f"Edge TPU ({self.delegate_library})",
        }[self.delegate]
        return (
            f"{os.path.basename(self.model_path)}: {self.input_type} input {width}×{height}, "
            f"{self.classes} classes, on {where} with {self.runtime_name}"
        )
