"""An image classifier from a .tflite file, for boards (edge_demo/classify.py and serve.py): a model on LiteRT with its delegate, the
class names the file carries, and the preprocessing every picture goes through.

It needs only `pip install 'keras-resnet-edge[demo]'` (ai-edge-litert, numpy, Pillow; Coral's
`tflite-runtime` works too) and never imports TensorFlow or Keras: the LiteRT side is
keras_resnet.runtime, the TensorFlow-free part of the package that convert/'s report uses too.
"""

import os
import time

import numpy as np
from PIL import Image, ImageOps

from keras_resnet.runtime import LiteRTError, labels as labels_lib, metadata as metadata_lib, reason, selftest
from keras_resnet.runtime.delegates import DELEGATES, interpreter_module, load_delegate
from keras_resnet.runtime.gpu import GpuModel
from keras_resnet.runtime.model import LiteRTModel

EDGETPU_CUSTOM_OP = b"edgetpu-custom-op"  # what edgetpu_compiler puts in the graph
DEFAULT_TOP_K = 5  # classes shown per picture (classify.py --top-k, the page)
INPUT_TYPES = ("uint8", "int8", "float32")  # what our conversions take: raw pixels, quantized or float


class ClassifierError(LiteRTError):
    """A picture, model or labels file the classifier cannot use: one line, what to do."""


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
        raise ClassifierError(f"{path}: not an image Pillow can read ({reason(error)})") from None


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


class Classifier:
    """One .tflite classifier (batch 1, NHWC image input, one score per class) on a delegate."""

    def __init__(self, model_path, *, delegate="cpu", delegate_library=None, threads=None, labels=None):
        if delegate not in DELEGATES:
            raise ClassifierError(f"unknown delegate {delegate!r}: valid are {', '.join(DELEGATES)}")
        self.model_path = model_path
        self.delegate = delegate
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
        self.metadata = metadata_lib.read(model_path)
        self.preprocessing = self.metadata.preprocessing
        if not self.metadata.recorded:
            self.notes.append(
                f"{os.path.basename(model_path)} does not say how its pictures were prepared in training (converted before "
                "keras_resnet recorded it, or by another converter): it gets the whole centred square; convert the run again "
                "so that the model carries its own"
            )
        runtime = interpreter_module(prefer_tflite_runtime=delegate == "edgetpu")
        self.runtime_name = runtime.__name__.split(".")[0]
        spec = DELEGATES[delegate]
        # --delegate gpu is LiteRT's GPU accelerator, unless a (self-built) GPU delegate library is named.
        self.accelerator = delegate == "gpu" and delegate_library is None
        # Why the GPU was asked for and not used (its answers were checked and found wrong), or None.
        self.gpu_fallback = None
        if self.accelerator:
            self.delegate_library = None
            self.model = self._checked_gpu_model(content, runtime, threads)
        else:
            self.delegate_library = (delegate_library or spec.library) if spec else None
            delegates = [load_delegate(runtime, spec, self.delegate_library)] if spec else []
            self.model = LiteRTModel(content, threads=threads, delegates=delegates, runtime=runtime, name=model_path)
        self.threads = self.model.threads
        self._check_signature()
        self.labels = self._labels(labels)

    def _checked_gpu_model(self, content, runtime, threads):
        """The model on LiteRT's GPU accelerator once its answers on the self-test match the CPU's;
        else on the CPU, with `gpu_fallback` saying why. A model the conversion marked CPU only is
        not even tried on the GPU."""
        cpu = LiteRTModel(content, threads=threads, runtime=runtime, name=self.model_path)
        self.model = cpu
        self._check_signature()  # before the self-test feeds it pictures
        verdict = self.metadata.gpu
        if verdict is not None and not verdict.usable:
            return self._fall_back_to(cpu, f"the conversion marked this model CPU only: on LiteRT's GPU accelerator {verdict.reason}")
        try:
            gpu = GpuModel(content, name=self.model_path)
        except LiteRTError:
            cpu.close()
            raise
        try:
            result = selftest.compare(gpu, cpu, selftest.pictures(self.metadata, gpu.input["shape"]))
        except (RuntimeError, ValueError) as error:  # a GPU run that fails outright
            gpu.close()
            return self._fall_back_to(cpu, f"LiteRT's GPU accelerator failed on the model's self-test ({reason(error)})")
        if not result.passed:
            gpu.close()
            return self._fall_back_to(cpu, f"LiteRT's GPU accelerator gives wrong answers for this model: {result.describe()}")
        cpu.close()
        if gpu.adapter is not None and gpu.adapter.software:
            self.notes.append(f"{gpu.adapter.name} is a software renderer: the GPU code path runs, at CPU speed")
        if not gpu.fully_accelerated:
            self.notes.append("some operators are not supported by the GPU: they run on the CPU")
        return gpu

    def _fall_back_to(self, cpu, why):
        self.accelerator = False
        self.delegate = "cpu"
        self.gpu_fallback = f"{why}. Running on the CPU instead."
        return cpu

    @staticmethod
    def _read_model(path):
        try:
            with open(path, "rb") as file:
                content = file.read()
        except OSError as error:
            raise ClassifierError(f"cannot read model {path}: {reason(error)}") from None
        # A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4-8.
        if len(content) < 8 or content[4:8] != b"TFL3":
            raise ClassifierError(f"{path} is not a .tflite model (no TFL3 identifier): pass a file written by convert/to_tflite.py")
        return content

    def _check_signature(self):
        inputs, outputs = self.model.inputs, self.model.outputs
        if len(inputs) != 1 or len(outputs) != 1:
            raise ClassifierError(f"{self.model_path} has {len(inputs)} inputs and {len(outputs)} outputs: an image classifier has one of each")
        shape = tuple(int(d) for d in self.model.input["shape"])
        signature = tuple(int(d) for d in self.model.input.get("shape_signature", shape))
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or min(shape) < 1 or signature[1:] != shape[1:]:
            shown = ", ".join(str(d) if d >= 0 else "?" for d in signature)
            raise ClassifierError(f"{self.model_path} takes input of shape [{shown}]: an image classifier here takes [1, height, width, 3] of a fixed size")
        kind = np.dtype(self.model.input["dtype"]).name
        if kind not in INPUT_TYPES:
            raise ClassifierError(f"{self.model_path} takes {kind} input: an image classifier here takes {', '.join(INPUT_TYPES)} pixels")
        output = tuple(int(d) for d in self.model.output["shape"])
        if len(output) != 2 or output[0] != 1 or output[1] < 1:
            raise ClassifierError(f"{self.model_path} answers a tensor of shape {list(output)}: an image classifier answers [1, classes] scores, one class at least")
        self.input_size = (shape[2], shape[1])  # (width, height), as Pillow counts
        self.classes = output[1]

    def _labels(self, labels_path):
        names = labels_lib.read_labels(labels_path or self.model_path)
        if names is None:
            return [f"class {index}" for index in range(self.classes)]
        if len(names) != self.classes:
            source = labels_path or f"the labels inside {self.model_path}"
            raise ClassifierError(f"{source} names {len(names)} classes but the model has {self.classes}: pass the labels file it was trained with")
        return names

    @property
    def input_type(self):
        return np.dtype(self.model.input["dtype"]).name

    def preprocess(self, image):
        """RGB Pillow image → float pixels in [0, 255] at the model's input size, through the
        evaluation transform the model carries (keras_resnet.runtime.preprocessing): what Keras'
        evaluation and the page give the model too."""
        return self.preprocessing.apply(image, self.input_size).astype(np.float32)

    def scores(self, image):
        """The probability of every class for a Pillow RGB image, and the milliseconds `invoke()` took."""
        self.model.set_image(self.preprocess(image))
        start = time.perf_counter()
        self.model.invoke()
        milliseconds = (time.perf_counter() - start) * 1000
        return self.model.probabilities(), milliseconds

    def top(self, scores, *, top_k):
        """[(class name, score)] of the `top_k` best classes, best first."""
        best = np.argsort(-scores, kind="stable")[:top_k]
        return [(self.labels[index], float(scores[index])) for index in best]

    def classify(self, image, *, top_k):
        """[(class name, score)] best first, and the milliseconds `invoke()` took."""
        scores, milliseconds = self.scores(image)
        return self.top(scores, top_k=top_k), milliseconds

    def benchmark(self, image, *, runs, warmup=10):
        """Latency of `invoke()` at batch 1 on one preprocessed image.

        Args:
            image: A Pillow RGB image, preprocessed as in `scores`; None for a mid-grey picture.
            runs: How many timed runs to measure.
            warmup: How many untimed runs come first.

        Returns:
            The model's `latency()` dict: "median_ms", "p90_ms", "frames_per_second" and "runs".
        """
        width, height = self.input_size
        pixels = self.preprocess(image) if image is not None else np.full((height, width, 3), 128.0, np.float32)
        return self.model.latency(pixels, runs=runs, warmup=warmup)

    def describe_briefly(self):
        """The model's file and where it runs, in a few words."""
        where = "LiteRT's GPU accelerator" if self.accelerator else {"cpu": "the CPU", "gpu": "a GPU delegate", "edgetpu": "the Edge TPU"}[self.delegate]
        return f"{os.path.basename(self.model_path)} on {where}"

    def describe(self):
        """One line: the model, its input and where it runs."""
        width, height = self.input_size
        if self.accelerator:
            adapter = self.model.adapter.name if self.model.adapter else "adapter unknown"
            coverage = "every op on the GPU" if self.model.fully_accelerated else "partly on the GPU, the rest on the CPU"
            where = f"GPU ({adapter}; LiteRT GPU accelerator, {coverage})"
        else:
            where = {
                "cpu": f"CPU ({self.threads} thread{'s' if self.threads != 1 else ''})",
                "gpu": f"GPU delegate ({self.delegate_library})",
                "edgetpu": f"Edge TPU ({self.delegate_library})",
            }[self.delegate]
        return (
            f"{os.path.basename(self.model_path)}: {self.input_type} input {width}×{height}, "
            f"{self.classes} classes, on {where} with {self.runtime_name}"
        )
