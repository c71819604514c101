"""One .tflite model on LiteRT, batch 1: pixels in (quantized when the model is integer),
probabilities out (dequantized), and the latency of a run. `LiteRTModel` runs on the interpreter
(the CPU, or a delegate library); `gpu.GpuModel` on LiteRT's GPU accelerator, with the same methods."""

import os
import statistics
import time

import numpy as np

from keras_resnet.quiet import native_stderr_silenced
from keras_resnet.runtime import LiteRTError, reason
from keras_resnet.runtime.delegates import interpreter_module


def quantized(pixels, detail):
    """`pixels` (float, [0, 255]) as the input tensor `detail` takes them: quantized with its scale
    and zero point when it is integer (the models of convert/to_tflite.py take raw pixels: scale 1,
    zero point 0), as they are when it is float."""
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.integer):
        scale, zero_point = detail["quantization"]
        info = np.iinfo(dtype)
        pixels = np.clip(np.round(pixels / (scale or 1.0) + zero_point), info.min, info.max)
    return np.asarray(pixels, dtype)


def dequantized(scores, detail):
    """Float scores from an output tensor's values."""
    scores = np.asarray(scores).reshape(-1)
    if np.issubdtype(scores.dtype, np.integer):
        scale, zero_point = detail["quantization"]
        return (scores.astype(np.float32) - zero_point) * (scale or 1.0)
    return scores.astype(np.float32)


class LiteRTModel:
    """A .tflite model (its bytes) on the CPU (XNNPACK, LiteRT's default) or on `delegates`."""

    def __init__(self, content, *, threads=None, delegates=(), runtime=None, name="the model"):
        runtime = runtime or interpreter_module()
        self.threads = threads or os.cpu_count()
        try:
            # LiteRT announces its XNNPACK delegate on stderr ("INFO: Created TensorFlow Lite XNNPACK
            # delegate for CPU.") from C++; our messages there are one line each. Failures still raise.
            with native_stderr_silenced():
                self.interpreter = runtime.Interpreter(
                    model_content=bytes(content), experimental_delegates=list(delegates), num_threads=self.threads
                )
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise LiteRTError(f"{name}: LiteRT cannot load this model ({reason(error)})") from None
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()
        self.input, self.output = self.inputs[0], self.outputs[0]

    def set_image(self, pixels):
        """`pixels`: float pixels in [0, 255], (H, W, 3), for the next run."""
        self.interpreter.set_tensor(self.input["index"], quantized(pixels, self.input)[None])

    def invoke(self):
        """One run, its output ready to read when it returns."""
        self.interpreter.invoke()

    def probabilities(self):
        """The output of the last run as float scores, one per class."""
        return dequantized(self.interpreter.get_tensor(self.output["index"]), self.output)

    def predict(self, images, *, progress=None):
        """Probabilities (N, classes) for images (N, H, W, 3) of pixels in [0, 255], one at a time;
        `progress(done, total)` is called after each."""
        results = []
        for image in images:
            self.set_image(np.asarray(image, np.float32))
            self.invoke()
            results.append(self.probabilities())
            if progress is not None:
                progress(len(results), len(images))
        return np.stack(results)

    def close(self):
        self.interpreter = None

    def latency(self, pixels, *, runs, warmup=10):
        """Milliseconds of a run (`invoke()`) on `pixels`: median, 90th percentile and frames per second.

        Args:
            pixels: The input picture, float pixels in [0, 255] of shape (H, W, 3), set once for every run.
            runs: How many timed runs to measure.
            warmup: How many untimed runs come first.

        Returns:
            A dict: "median_ms" and "p90_ms" (milliseconds of one run), "frames_per_second" (runs over
            their total time) and "runs".
        """
        self.set_image(pixels)
        for _ in range(warmup):
            self.invoke()
        timings = []
        for _ in range(runs):
            start = time.perf_counter()
            self.invoke()
            timings.append((time.perf_counter() - start) * 1000)
        return {
            "median_ms": float(statistics.median(timings)),
            "p90_ms": float(np.percentile(timings, 90)),
            "frames_per_second": 1000.0 * runs / sum(timings),
            "runs": runs,
        }
