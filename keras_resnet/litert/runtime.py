"""Running a .tflite model with LiteRT (`ai_edge_litert`) on the CPU: probabilities for a set of
images, and latency at batch 1."""

import os
import time

import numpy as np
from ai_edge_litert import interpreter as litert

from keras_resnet.quiet import native_stderr_silenced


class LiteRTModel:
    """One .tflite model on the CPU (XNNPACK, LiteRT's default delegate), batch 1."""

    def __init__(self, content, *, threads=None):
        # LiteRT announces its XNNPACK delegate on stderr ("INFO: Created TensorFlow Lite XNNPACK
        # delegate for CPU.") from C++; our messages there are one line each. Failures still raise.
        with native_stderr_silenced():
            self.interpreter = litert.Interpreter(model_content=bytes(content), num_threads=threads or os.cpu_count())
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def set_image(self, image):
        """`image`: float pixels in [0, 255], (H, W, 3). Integer models get the quantized pixels."""
        dtype = self.input["dtype"]
        if np.issubdtype(dtype, np.integer):
            scale, zero_point = self.input["quantization"]
            info = np.iinfo(dtype)
            image = np.clip(np.round(image / scale + zero_point), info.min, info.max)
        self.interpreter.set_tensor(self.input["index"], np.asarray(image, dtype)[None])

    def probabilities(self):
        scores = self.interpreter.get_tensor(self.output["index"])[0]
        if np.issubdtype(scores.dtype, np.integer):
            scale, zero_point = self.output["quantization"]
            return (scores.astype(np.float32) - zero_point) * scale
        return scores.astype(np.float32)

    def predict(self, images):
        """Probabilities (N, classes) for float images (N, H, W, 3), one at a time."""
        results = []
        for image in images:
            self.set_image(image)
            self.interpreter.invoke()
            results.append(self.probabilities())
        return np.stack(results)

    def latency(self, image, *, runs, warmup=10):
        """Median and 90th-percentile milliseconds of `invoke()` over `runs` runs after `warmup`."""
        self.set_image(image)
        for _ in range(warmup):
            self.interpreter.invoke()
        timings = []
        for _ in range(runs):
            start = time.perf_counter()
            self.interpreter.invoke()
            timings.append((time.perf_counter() - start) * 1000)
        return {"median_ms": float(np.median(timings)), "p90_ms": float(np.percentile(timings, 90)), "runs": runs}
