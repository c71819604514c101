"""What a .tflite file holds and where it can run: its operators and tensor types, float tensors
left in an integer model, mobile GPU-delegate compatibility (LiteRT's Analyzer) and Edge TPU
readiness (Coral's published requirements, and the Edge TPU compiler when it is installed)."""

import os
import re
import shutil
import subprocess

import numpy as np
from ai_edge_litert import interpreter as litert

from keras_resnet import internals

# Coral's list of operations the Edge TPU runs (coral.ai/docs/edgetpu/models-intro), as LiteRT op
# names. PAD and MEAN only along height and width; checked separately.
EDGETPU_OPS = frozenset(
    """ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D EXPAND_DIMS FULLY_CONNECTED
    HARD_SWISH L2_NORMALIZATION LOGISTIC LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MUL PACK PAD PRELU
    QUANTIZE REDUCE_MAX REDUCE_MIN RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR
    RESIZE_NEAREST_NEIGHBOR RSQRT SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SQUARED_DIFFERENCE SQUEEZE
    STRIDED_SLICE SUB SUM TANH TRANSPOSE TRANSPOSE_CONV""".split()
)
EDGETPU_COMPILER = "edgetpu_compiler"
EDGETPU_COMPILER_HELP = (
    "edgetpu_compiler is not installed (x86-64 Debian/Ubuntu only): see https://coral.ai/docs/edgetpu/compiler/ "
    "— add Coral's apt repository, then `sudo apt-get install edgetpu-compiler`, and convert again"
)
FLOAT_TYPES = (np.float16, np.float32, np.float64)
FLOAT_MODEL_PROBLEM = "float model: the Edge TPU runs full-integer models only (use int8-qat)"


def graph(content):
    """(operators, tensors) of a .tflite model: the graph as written, before any delegate."""
    interpreter = litert.Interpreter(
        model_content=bytes(content), experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interpreter.allocate_tensors()
    tensors = {tensor["index"]: tensor for tensor in interpreter.get_tensor_details()}
    return interpreter, internals.litert_operators(interpreter), tensors


def summary(content):
    interpreter, operators, tensors = graph(content)
    used = {index for op in operators for index in (*op["inputs"], *op["outputs"]) if index >= 0}
    return {
        "ops": sorted({op["op_name"] for op in operators}),
        "op_count": len(operators),
        "tensor_types": sorted({np.dtype(tensors[index]["dtype"]).name for index in used}),
    }


def float_tensors(content):
    """Names of float tensors that an operator reads or writes: none may exist in an integer model
    (uint8 in, uint8 out), since every tensor then lies between the input QUANTIZE and the output."""
    _, operators, tensors = graph(content)
    found = []
    for op in operators:
        for index in (*op["inputs"], *op["outputs"]):
            if index >= 0 and np.dtype(tensors[index]["dtype"]).type in FLOAT_TYPES:
                found.append(f"{op['op_name']}: {tensors[index]['name']} ({np.dtype(tensors[index]['dtype']).name})")
    return sorted(set(found))


def gpu_compatibility(content):
    """LiteRT's Analyzer verdict on the mobile GPU delegate: {"compatible", "incompatible_ops"}."""
    report = internals.litert_analyzer_report(content)
    incompatible, current_op = [], None
    for line in report.splitlines():
        op = re.match(r"\s*Op#\d+ (\w+)\(", line)
        if op:
            current_op = op.group(1)
        elif "GPU COMPATIBILITY WARNING" in line and current_op and "Subgraph#" not in line:
            incompatible.append(f"{current_op}: {line.split('WARNING:', 1)[1].strip()}")
    return {
        "compatible": "looks compatible with GPU delegate" in report,
        "incompatible_ops": sorted(set(incompatible)),
    }


def edgetpu_readiness(content):
    """Coral's requirements for the Edge TPU compiler: {"ready", "problems"}."""
    interpreter, operators, tensors = graph(content)
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if any(np.dtype(detail["dtype"]).type in FLOAT_TYPES for detail in inputs):
        return {"ready": False, "float_model": True, "problems": [FLOAT_MODEL_PROBLEM]}
    problems = []
    unsupported = sorted({op["op_name"] for op in operators} - EDGETPU_OPS)
    if unsupported:
        problems.append(f"ops the Edge TPU does not run: {', '.join(unsupported)}")
    for detail in (*inputs, *outputs):
        if np.dtype(detail["dtype"]).type not in (np.uint8, np.int8):
            problems.append(f"{detail['name']} is {np.dtype(detail['dtype']).name}, not 8-bit integer")
    if float_tensors(content):
        problems.append("float tensors inside the graph")
    # Activations, not constant weights: a convolution kernel has 4 non-unit dimensions and is fine.
    activations = {detail["index"] for detail in inputs} | {index for op in operators for index in op["outputs"]}
    for index in sorted(activations):
        tensor = tensors[index]
        if np.any(np.asarray(tensor["shape_signature"]) < 0):
            problems.append(f"dynamic shape: {tensor['name']} {tensor['shape_signature'].tolist()}")
            break
    for index in sorted(activations):
        tensor = tensors[index]
        if sum(size > 1 for size in tensor["shape"]) > 3:
            problems.append(f"more than 3 non-unit dimensions: {tensor['name']} {tensor['shape'].tolist()}")
            break
    for op in operators:
        axes = _reduced_or_padded_axes(interpreter, op, tensors)
        if axes is not None and not axes <= {1, 2}:
            problems.append(f"{op['op_name']} along axes {sorted(axes)} (the Edge TPU does height and width only)")
    return {"ready": not problems, "float_model": False, "problems": problems}


def _reduced_or_padded_axes(interpreter, op, tensors):
    try:
        if op["op_name"] == "PAD":
            paddings = interpreter.get_tensor(op["inputs"][1])
            return {axis for axis, pair in enumerate(paddings) if np.any(pair)}
        if op["op_name"] == "MEAN":
            rank = len(tensors[op["inputs"][0]]["shape"])
            return {int(axis) % rank for axis in np.ravel(interpreter.get_tensor(op["inputs"][1]))}
    except ValueError:  # not a constant: the compiler decides
        return None
    return None


def edgetpu_compiler_installed():
    return shutil.which(EDGETPU_COMPILER) is not None


def compile_for_edgetpu(path, *, output_dir):
    """Runs the Edge TPU compiler when it is on the PATH: {"file", "tpu_ops", "cpu_ops", "log"}, or
    {"error": ...} when it is absent or fails."""
    compiler = shutil.which(EDGETPU_COMPILER)
    if compiler is None:
        return {"error": EDGETPU_COMPILER_HELP}
    result = subprocess.run(
        [compiler, "--show_operations", "--out_dir", output_dir, path], capture_output=True, text=True, timeout=600
    )
    log = result.stdout + result.stderr
    compiled = os.path.join(output_dir, os.path.basename(path).removesuffix(".tflite") + "_edgetpu.tflite")
    if result.returncode != 0 or not os.path.exists(compiled):
        last = log.strip().splitlines()[-1] if log.strip() else f"exit code {result.returncode}"
        return {"error": f"edgetpu_compiler failed: {last}"}
    counts = {
        key: int(match.group(1)) if (match := re.search(pattern, log)) else None
        for key, pattern in (
            ("tpu_ops", r"Number of operations that will run on Edge TPU:\s*(\d+)"),
            ("cpu_ops", r"Number of operations that will run on CPU:\s*(\d+)"),
        )
    }
    return {"file": compiled, **counts, "log": log}
