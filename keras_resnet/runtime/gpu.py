"""A .tflite model on LiteRT's GPU accelerator: ai-edge-litert's CompiledModel with
HardwareAccelerator.GPU, which ships in the ai-edge-litert wheel (WebGPU through Dawn, over Vulkan
on Linux). Any GPU with a Vulkan driver runs it: a Raspberry Pi 5 (Mesa's V3DV), Intel and AMD
(Mesa), NVIDIA (its driver; a Jetson's JetPack). Without a GPU, SwiftShader (the software Vulkan
driver in Debian's chromium package) runs the same code path, slowly: its timings are not a GPU's.
"""

import dataclasses
import os
import re
import subprocess
import sys

import numpy as np

from keras_resnet.quiet import native_output_captured
from keras_resnet.runtime import LiteRTError
from keras_resnet.runtime.delegates import interpreter_module
from keras_resnet.runtime.model import LiteRTModel, dequantized, quantized

SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json"
NO_GPU_HELP = (
    "LiteRT's GPU accelerator found no GPU adapter (it runs on WebGPU over Vulkan): install the GPU's "
    "Vulkan driver and the Vulkan loader (Raspberry Pi 5, Intel, AMD: sudo apt install mesa-vulkan-drivers "
    "libvulkan1; NVIDIA: its driver; Jetson: JetPack) and check `vulkaninfo --summary`; to test without a GPU, "
    f"SwiftShader: sudo apt install chromium libvulkan1, then export VK_ICD_FILENAMES={SWIFTSHADER_ICD}"
)
# What LiteRT (Dawn) logs when there is no usable Vulkan driver or device.
_NO_ADAPTER = re.compile(r"No (supported )?adapters? found|Couldn't load Vulkan|Failed to load Vulkan|vulkan.*not found", re.I)
# Adapters that are programs on the CPU, not GPUs.
_SOFTWARE = re.compile(r"swiftshader|llvmpipe|lavapipe|software", re.I)


@dataclasses.dataclass(frozen=True)
class Adapter:
    """The GPU adapter LiteRT chose, as its log describes it: "NVIDIA H200, arch=, vendor=nvidia,
    backend=Vulkan, adapterType=Discrete GPU"."""

    description: str

    @property
    def name(self):
        return self.description.split(",")[0].strip()

    @property
    def software(self):
        """A software renderer (SwiftShader, llvmpipe): the GPU code path, at the CPU's speed."""
        return bool(_SOFTWARE.search(self.description))

    def __str__(self):
        return f"{self.name} (software renderer: its timings are not GPU speed)" if self.software else self.name


class GpuModel(LiteRTModel):
    """A .tflite model (its bytes) on LiteRT's GPU accelerator, with LiteRTModel's methods. Operators
    the GPU cannot run fall back to the CPU; `fully_accelerated` says whether any did. Integer
    models run too (the GPU computes them in float from the dequantized weights)."""

    def __init__(self, content, *, name="the model"):
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator

        content = bytes(content)
        self.threads = None
        # LiteRT logs from C++ while it sets up (and chooses an adapter): kept, not shown.
        with native_output_captured() as log:
            try:
                # The tensors' quantization, which CompiledModel does not report, from the model itself.
                details = interpreter_module().Interpreter(model_content=content)
                self.inputs, self.outputs = details.get_input_details(), details.get_output_details()
                self.compiled = CompiledModel.from_buffer(content, hardware_accel=HardwareAccelerator.GPU | HardwareAccelerator.CPU)
                self._inputs = self.compiled.create_input_buffers(0)
                self._outputs = self.compiled.create_output_buffers(0)
                # The buffers' module sets up its own LiteRT environment (and logs it) on first use.
                self._inputs[0].write(np.zeros(self.inputs[0]["shape"], self.inputs[0]["dtype"]))
                failure = None
            except (RuntimeError, ValueError) as error:
                failure = error
        if failure is not None:
            if _NO_ADAPTER.search(log.text):
                raise LiteRTError(NO_GPU_HELP) from None
            raise LiteRTError(f"{name}: LiteRT's GPU accelerator cannot run this model ({_last_error(log.text, failure)})") from None
        chosen = re.search(r"Selected adapter: (.+)", log.text)
        self.adapter = Adapter(chosen.group(1).strip()) if chosen else None
        if self.adapter is None and not self.compiled.is_fully_accelerated():
            # No adapter chosen and nothing on the GPU: the CPU fallback took it all.
            raise LiteRTError(NO_GPU_HELP)
        self.fully_accelerated = bool(self.compiled.is_fully_accelerated())
        self.input, self.output = self.inputs[0], self.outputs[0]
        self._output_size = int(np.prod(self.output["shape"]))
        self._scores = None

    def set_image(self, pixels):
        self._inputs[0].write(quantized(pixels, self.input)[None])

    def invoke(self):
        # The run is asynchronous on the GPU: reading its output waits for it, and belongs to it.
        self.compiled.run_by_index(0, self._inputs, self._outputs)
        self._scores = self._outputs[0].read(self._output_size, np.dtype(self.output["dtype"]))

    def probabilities(self):
        return dequantized(self._scores, self.output)

    def close(self):
        """Releases the GPU model (LiteRT logs its teardown from C++: kept, not shown)."""
        with native_output_captured():
            self._inputs = self._outputs = None
            self.compiled = None
            import gc

            gc.collect()


def _last_error(log, error):
    lines = [line.strip() for line in log.splitlines() if "ERROR" in line or line.startswith(("E0000", "F0000"))]
    text = lines[-1] if lines else " ".join(str(error).split())
    return text[:300]


def gpu_adapter_unavailable(path, *, timeout=300):
    """Why LiteRT's GPU accelerator cannot be tried for the .tflite at `path` (None: an adapter is
    there), asked in a child process. In-process, a failed start (no adapter) leaves LiteRT's native
    state such that a process that has also loaded TensorFlow aborts as it exits ("free(): invalid
    pointer", ai-edge-litert 2.3.0 beside TensorFlow 2.21): a conversion would end in SIGABRT."""
    command = [sys.executable, "-m", "keras_resnet.runtime.gpu", os.fspath(path)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"the GPU adapter check did not answer within {timeout} s"
    answer = (result.stdout.strip().splitlines() or [""])[-1]
    if answer == "adapter":
        return None
    if answer == "no adapter":
        return "no GPU adapter"
    detail = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1][:200]
    return f"the GPU adapter check failed ({detail})"


def _probe(path):
    with open(path, "rb") as file:
        content = file.read()
    try:
        GpuModel(content).close()
        answer = "adapter"
    except LiteRTError as error:
        answer = "no adapter" if str(error) == NO_GPU_HELP else "adapter"
    print(answer, flush=True)
    os._exit(0)  # LiteRT's native teardown has nothing to add to the answer


if __name__ == "__main__":
    _probe(sys.argv[1])
