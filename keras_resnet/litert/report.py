"""The conversion report: acceptance bounds per target, findings, report.json and the Markdown table."""

# A device figure this far from Keras' (top-1, as a fraction; above or below) is a finding, printed in bold.
FINDING_THRESHOLD = 0.01
# The share of pictures on which the GPU's top-1 must match the same file's on the CPU for runtimes
# to use the GPU (below it the file is marked CPU only).
GPU_CPU_AGREEMENT = 0.99

# Bounds a converted model should meet against the Keras model it came from; they are reported,
# not enforced (a quantized model that misses them is still written, with the verdict beside it).
ACCEPTANCE = {
    "fp32": ("100 % top-1 agreement, max abs Δp < 1e-4", lambda r, keras_top1: r["agreement"] == 1.0 and r["max_abs_diff"] < 1e-4),
    "gpu": ("≥ 99.5 % top-1 agreement", lambda r, keras_top1: r["agreement"] >= 0.995),
    "int8-ptq": ("top-1 at most 1 point below Keras", lambda r, keras_top1: r["top1"] >= keras_top1 - 0.01),
    "int8-qat": ("top-1 at most 0.5 point below Keras", lambda r, keras_top1: r["top1"] >= keras_top1 - 0.005),
}


# On the GPU (LiteRT's GPU accelerator), every target against the same file on the CPU, on the
# same device inputs: the GPU's own error (the CPU columns bound the conversion's against Keras).
# Float targets run in float16 there; integer models in float from their dequantized weights, and
# keep their own CPU run's answers (measured: 100 % of 1000 images for a ResNet-8 on SwiftShader).
GPU_ACCEPTANCE = {
    "fp32": ("≥ 99.5 % top-1 agreement with its CPU run", lambda r: r["agreement_with_cpu"] >= 0.995),
    "gpu": ("≥ 99.5 % top-1 agreement with its CPU run", lambda r: r["agreement_with_cpu"] >= 0.995),
    "dynamic": ("≥ 99 % top-1 agreement with its CPU run", lambda r: r["agreement_with_cpu"] >= GPU_CPU_AGREEMENT),
    "int8-ptq": ("≥ 99 % top-1 agreement with its CPU run", lambda r: r["agreement_with_cpu"] >= GPU_CPU_AGREEMENT),
    "int8-qat": ("≥ 99 % top-1 agreement with its CPU run", lambda r: r["agreement_with_cpu"] >= GPU_CPU_AGREEMENT),
}


def gpu_acceptance(target, result):
    bound, check = GPU_ACCEPTANCE[target]
    return {"bound": bound, "met": bool(check(result))}


def acceptance(target, result, keras_top1):
    if target not in ACCEPTANCE:
        return None
    bound, check = ACCEPTANCE[target]
    return {"bound": bound, "met": bool(check(result, keras_top1))}


def missed(report):
    """The acceptance bounds missed, one sentence each with what to try."""
    settings = report.get("settings", {})
    sentences = []
    for name, row in report["targets"].items():
        if (row.get("acceptance") or {}).get("met") is False:
            sentences.append(f"{name} missed its bound ({row['acceptance']['bound']}): {_advice(name, settings)}")
        gpu = row.get("gpu") or {}
        if (gpu.get("acceptance") or {}).get("met") is False:
            sentences.append(
                f"{name} on the GPU missed its bound ({gpu['acceptance']['bound']}): runtimes run it on the CPU"
                + (" (marked CPU only)." if not (gpu.get("verdict") or {}).get("usable", True) else
                   "; on this device use the CPU, or a float target (fp32, gpu) on its GPU." if name not in ("fp32", "gpu") else
                   "; on this device use the CPU.")
            )
    return sentences


def _advice(target, settings):
    if target == "int8-ptq":
        steps = settings.get("calibration_steps", 4)
        return f"calibrate on more training batches (--calibration-steps {steps * 4}, now {steps}), or use int8-qat."
    if target == "int8-qat":
        epochs = settings.get("qat_epochs", 1)
        return f"fine-tune longer (--qat-epochs {epochs + 2}, now {epochs}) or at a lower --qat-lr; more validation images (--eval-images) make the figure firmer."
    if target == "gpu":
        return "the network is sensitive to float16 weights: use the fp32 or dynamic target on this device."
    return "the conversion changed the model's answers: report it with report.json (a bug, not a setting)."


def findings(report):
    """One sentence per target whose top-1 on the device path (classify.py's code on the CPU) is more
    than FINDING_THRESHOLD from Keras', with its cause: the conversion (the same inputs as Keras) or
    the pictures' preparation (the device's inputs against Keras'); and one per target the GPU
    answers wrongly for."""
    keras_top1 = report["keras"]["top1"]
    sentences = []
    for name, row in report["targets"].items():
        device, converted = row.get("device_top1"), row.get("top1")
        # Rounded: 2 pictures of 200 are 1 point, not 1.000000001.
        if device is not None and keras_top1 is not None and round(abs(device - keras_top1), 9) > FINDING_THRESHOLD:
            causes = ""
            if converted is not None:
                causes = (
                    f": {_points(converted - keras_top1)} from the conversion ({name} on Keras' own inputs: {percent(converted)}), "
                    f"{_points(device - converted)} from preparing the pictures (the device's inputs against Keras' own)"
                )
            sentences.append(
                f"{name}: the device gets {percent(device)} top-1, {_points(device - keras_top1)} against Keras' {percent(keras_top1)}{causes}."
            )
        verdict = (row.get("gpu") or {}).get("verdict")
        if verdict and not verdict["usable"]:
            sentences.append(f"{name}: CPU only — on LiteRT's GPU accelerator {verdict['reason']}; runtimes run it on the CPU.")
    return sentences


def markdown(report):
    """One table: a row per target, the Keras model first; the findings after it."""
    keras_row = report["keras"]
    preprocessing = report.get("preprocessing", {}).get("description", "")
    lines = [
        f"Conversion of {report['model']} ({report['source']}) — {report['images']} validation images, "
        f"latency at batch 1 on {report['threads']} CPU threads (XNNPACK)",
        "",
        f"Pictures are prepared as the model was trained for ({preprocessing}): Keras' evaluation in TensorFlow, "
        "the device column through classify.py's code (Pillow, LiteRT), the page in JavaScript.",
        "",
        "| target | size | top-1 agreement | max / mean abs Δp | top-1 (Keras' inputs) | top-1 on the device | latency median / p90 | GPU | Edge TPU | acceptance |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| Keras (float32) | {_size(keras_row['size_bytes'])} | — | — | {percent(keras_row['top1'])} | — | — | — | — | — |",
    ]
    for name, row in report["targets"].items():
        if "error" in row:
            lines.append(f"| {name} | failed: {row['error']} | | | | | | | | |")
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
            f"| {name} | {_size(row['size_bytes'])} | {percent(row['agreement'])} | {differences} | "
            f"{percent(row['top1'])} | {percent(row.get('device_top1'))} | "
            f"{row['latency']['median_ms']:.2f} / {row['latency']['p90_ms']:.2f} ms | {gpu} | {tpu} | {verdict} |"
        )
    if report.get("findings"):
        lines += ["", "Findings:", ""] + [f"- **{sentence}**" for sentence in report["findings"]]
    if report.get("missed"):
        lines += ["", "Acceptance bounds missed:", ""] + [f"- **{sentence}**" for sentence in report["missed"]]
    pictures = [(name, row["confusion"]["file"]) for name, row in report["targets"].items() if (row.get("confusion") or {}).get("file")]
    if pictures:
        where = next(row["confusion"]["pictures"] for row in report["targets"].values() if row.get("confusion"))
        lines += ["", f"Per-class results (confusion matrices) on {where}: " + ", ".join(f"[{name}]({file})" for name, file in pictures)]
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
    if measured.get("agreement_with_cpu") is not None:
        parts.append(f"{percent(measured['agreement_with_cpu'])} agreement with its CPU run")
    if measured.get("device_top1") is not None:
        parts.append(f"top-1 {percent(measured['device_top1'])}")
    parts.append(f"{measured['latency']['median_ms']:.2f} ms")
    if measured.get("acceptance"):
        parts.append("met" if measured["acceptance"]["met"] else "**missed**")
    verdict = measured.get("verdict")
    if verdict is not None and not verdict["usable"]:
        parts.append("**CPU only**")
    return ", ".join(parts)


def _points(difference):
    return f"{100 * difference:+.2f} points"


def percent(value):
    return "—" if value is None else f"{100 * value:.2f} %"



def _size(size):
    return f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"
