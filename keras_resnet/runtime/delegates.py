"""Where a .tflite model runs: LiteRT's CPU path, or a delegate library (GPU, Coral Edge TPU)."""

import ctypes
import dataclasses

from keras_resnet.quiet import native_stderr_silenced
from keras_resnet.runtime import LiteRTError, reason


@dataclasses.dataclass(frozen=True)
class DelegateSpec:
    library: str
    description: str
    missing: str  # what to do when the library cannot be loaded


DELEGATES = {
    "cpu": None,  # LiteRT's built-in CPU path (XNNPACK)
    # `--delegate gpu` alone runs LiteRT's GPU accelerator (runtime/gpu.py), which ai-edge-litert
    # ships; this is the older route, a GPU delegate library built by hand, named with --delegate-library.
    "gpu": DelegateSpec(
        library="libtensorflowlite_gpu_delegate.so",
        description="GPU delegate",
        missing=(
            "pass the path of a GPU delegate library you built (bazel build "
            "//tensorflow/lite/delegates/gpu:libtensorflowlite_gpu_delegate.so), or leave out --delegate-library "
            "to use LiteRT's GPU accelerator, which ai-edge-litert ships"
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


def interpreter_module(*, prefer_tflite_runtime=False):
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
    raise LiteRTError("no LiteRT runtime is installed: pip install ai-edge-litert (or Coral's tflite-runtime)")


def load_delegate(runtime, spec, library):
    """Loads the delegate in a shared library.

    Args:
        runtime: The interpreter module that loads it (from `interpreter_module`).
        spec: The DelegateSpec of the delegate asked for (its description and what to install are
            used in messages).
        library: The shared library's name or path: the spec's `library`, or the user's path.

    Returns:
        The delegate, for the interpreter's `experimental_delegates`.

    Raises:
        LiteRTError: The library cannot be loaded, is not a TFLite delegate library, or gave no
            delegate; the message says what to install or check.
    """
    # Probe with ctypes first: when the library is missing, load_delegate raises an OSError and
    # then its half-built Delegate object prints an "Exception ignored" traceback when collected.
    try:
        shared_library = ctypes.CDLL(library)
    except OSError as error:
        raise LiteRTError(f"cannot load the {spec.description} library {library} ({reason(error)}): {spec.missing}") from None
    # The same for a library that is not a delegate (its __del__ wants the destroy function).
    for symbol in ("tflite_plugin_create_delegate", "tflite_plugin_destroy_delegate"):
        if not hasattr(shared_library, symbol):
            raise LiteRTError(f"{library} is not a TFLite delegate library (it has no {symbol}): {spec.missing}")
    try:
        with native_stderr_silenced():
            return runtime.load_delegate(library)
    except (ValueError, RuntimeError) as error:
        # LiteRT puts "Failed to load delegate from LIBRARY" first and the delegate's own words after.
        detail = " ".join(str(error).replace(f"Failed to load delegate from {library}", "").split()) or "no details"
        if spec.library == DELEGATES["edgetpu"].library:
            detail += "; is the Edge TPU plugged in (lsusb shows 'Global Unichip' or 'Google Inc.')?"
        raise LiteRTError(f"the {spec.description} library {library} loaded but gave no delegate: {detail}") from None
