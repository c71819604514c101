"""The conversion report: acceptance bounds per target, report.json and the Markdown table."""

# Bounds a converted model should meet against the Keras model it came from; they are reported,
# not enforced (a quantized model that misses them is still written, with the verdict beside it).
ACCEPTANCE = {
    "fp32": ("100 % top-1 agreement, max abs Δp < 1e-4", lambda r, keras_top1: r["agreement"] == 1.0 and r["max_abs_diff"] < 1e-4),
    "gpu": ("≥ 99.5 % top-1 agreement", lambda r, keras_top1: r["agreement"] >= 0.995),
    "int8-ptq": ("top-1 at most 1 point below Keras", lambda r, keras_top1: r["top1"] >= keras_top1 - 0.01),
    "int8-qat": ("top-1 at most 0.5 point below Keras", lambda r, keras_top1: r["top1"] >= keras_top1 - 0.005),
}


# On the GPU (LiteRT's GPU accelerator). Float targets against the Keras model: the float16 one is
# the GPU's. Integer models run there too, computed in float from their dequantized weights: they
# keep their own CPU run's answers (measured: 100 % of 1000 images for a ResNet-8 on SwiftShader),
# and their distance from Keras is their quantization's, which the CPU columns already bound.
GPU_ACCEPTANCE = {
    "fp32": ("≥ 99.5 % top-1 agreement with Keras on the GPU", lambda r: r["agreement"] >= 0.995),
    "gpu": ("≥ 99.5 % top-1 agreement with Keras on the GPU", lambda r: r["agreement"] >= 0.995),
    "dynamic": ("≥ 99 % top-1 agreement with its CPU run", lambda r: r["agreement_with_cpu"] >= 0.99),
    "int8-ptq": ("≥ 99 % top-1 agreement with its CPU run", lambda r: r["agreement_with_cpu"] >= 0.99),
    "int8-qat": ("≥ 99 % top-1 agreement with its CPU run", lambda r: r["agreement_with_cpu"] >= 0.99),
}


def gpu_acceptance(target, result):
    bound, check = GPU_ACCEPTANCE[target]
    return {"bound": bound, "met": bool(check(result))}


def acceptance(target, result, keras_top1):
    if target not in ACCEPTANCE:
        return None
    bound, check = ACCEPTANCE[target]
    return {"bound": bound, "met": bool(check(result, keras_top1))}


def markdown(report):
    """One table: a row per target, the Keras model first."""
    keras_row = report["keras"]
    lines = [
        f"Conversion of {report['model']} ({report['source']}) — {report['images']} validation images, "
        f"latency at batch 1 on {report['threads']} CPU threads (XNNPACK)",
        "",
        "| target | size | top-1 agreement | max / mean abs Δp | top-1 (Keras) | latency median / p90 | GPU | Edge TPU | acceptance |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| Keras (float32) | {_size(keras_row['size_bytes'])} | — | — | {_percent(keras_row['top1'])} | — | — | — | — |",
    ]
    for name, row in report["targets"].items():
        if "error" in row:
            lines.append(f"| {name} | failed: {row['error']} | | | | | | | |")
            continue
        differences = (
            f"{row['max_abs_diff']:.1e} / {row['mean_abs_diff']:.1e}" if row.get("max_abs_diff") is not None else "—"
        )
        gpu = _gpu_cell(row)
        edgetpu = row["edgetpu"]
        if edgetpu.get("compiled", {}).get("file"):
            tpu = f"compiled: {edgetpu['compiled']['tpu_ops']} ops on TPU, {edgetpu['compiled']['cpu_ops']} on CPU"
        elif edgetpu["float_model"]:
            tpu = "no (float model)"
        else:
            tpu = "ready" if edgetpu["ready"] else "no: " + "; ".join(edgetpu["problems"])
        verdict = "—" if row["acceptance"] is None else ("met" if row["acceptance"]["met"] else "**missed**") + f" ({row['acceptance']['bound']})"
        lines.append(
            f"| {name} | {_size(row['size_bytes'])} | {_percent(row['agreement'])} | {differences} | "
            f"{_percent(row['top1'])} | {row['latency']['median_ms']:.2f} / {row['latency']['p90_ms']:.2f} ms | "
            f"{gpu} | {tpu} | {verdict} |"
        )
    if report.get("gpu"):
        lines += ["", report["gpu"]["note"]]
    compiler_note = report.get("edgetpu_compiler")
    if compiler_note:
        lines += ["", f"Edge TPU: {compiler_note}"]
    return "\n".join(lines)


def _gpu_cell(row):
    """What the GPU did with the target, or (not run) what LiteRT's Analyzer predicts."""
    measured = row.get("gpu")
    if measured is None:
        analyzer = row["gpu_delegate"]
        verdict = "compatible" if analyzer["compatible"] else "no: " + "; ".join(analyzer["incompatible_ops"])
        return f"not run; Analyzer: {verdict}"
    if "error" in measured:
        return f"failed: {measured['error']}"
    parts = ["every op" if measured["fully_accelerated"] else "partly (rest on CPU)"]
    if measured.get("agreement") is not None:
        parts.append(f"{_percent(measured['agreement'])} agreement")
    parts.append(f"{measured['latency']['median_ms']:.2f} ms")
    if measured.get("acceptance"):
        parts.append("met" if measured["acceptance"]["met"] else "**missed**")
    return ", ".join(parts)


def _percent(value):
    return "—" if value is None else f"{100 * value:.2f} %"


def _size(size):
    return f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"
