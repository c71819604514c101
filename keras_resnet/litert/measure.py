"""How one .tflite file compares with the Keras model it came from: its graph and where it can run,
its answers on the validation pictures as a device prepares them (classify.py's runtime on the CPU)
and as Keras' evaluation prepares them, its latency, and the same file on LiteRT's GPU accelerator
when this machine has an adapter."""

import dataclasses
import os
import time

import numpy as np

from keras_resnet.litert import inspection, report as report_lib, targets as targets_lib
from keras_resnet.litert.dataset import each_class_in_turn
from keras_resnet.runtime import LiteRTError, confusion, metadata as metadata_lib, selftest
from keras_resnet.runtime.classifier import Classifier
from keras_resnet.runtime.gpu import GpuModel, gpu_adapter_unavailable
from keras_resnet.runtime.metadata import GpuVerdict
from keras_resnet.runtime.model import LiteRTModel

SELFTEST_PICTURES = 8  # packed into each .tflite: what runtimes check the GPU with


@dataclasses.dataclass
class GpuAvailability:
    """What the first target found out about LiteRT's GPU accelerator on this machine; the other
    targets reuse it rather than start a child process each to ask again."""

    checked: bool = False
    adapter: str | None = None
    software: bool = False
    images: int = 0
    unavailable: str | None = None  # why there is no adapter, once checked

    def mark_unavailable(self, why):
        self.checked, self.adapter, self.software, self.unavailable = True, None, False, why

    def note(self):
        """One line for the report: where the GPU columns come from."""
        if self.adapter is None:
            return f"GPU: not run ({self.unavailable or 'not tried'}); the GPU column is LiteRT's Analyzer's static verdict"
        kind = "a software renderer: the GPU code path, at CPU speed — its timings are not GPU speed" if self.software else "a GPU"
        return f"GPU: LiteRT's GPU accelerator on {self.adapter} ({kind}); agreement on the first {self.images} validation images"

    def to_json(self):
        """report.json's "gpu"."""
        if self.adapter is None and self.unavailable is None:  # no target reached the GPU
            return {"note": self.note()}
        if self.adapter is None:
            return {"adapter": None, "software": False, "unavailable": self.unavailable, "note": self.note()}
        return {"adapter": self.adapter, "software": self.software, "images": self.images, "note": self.note()}


@dataclasses.dataclass
class Reference:
    """What every target is measured against, and where the measurements run.

    Attributes:
        images, truth: the validation images as Keras' evaluation prepares them, and their labels
            (None without data).
        keras_probabilities, keras_top1: the Keras model's answers on `images`.
        device_inputs, device_truth: the same pictures as stored, through classify.py's
            preprocessing (uint8 (N, H, W, 3)), and their labels.
        class_names: the model's classes, in output order.
        output: where each target's confusion picture goes.
    """

    images: np.ndarray | None
    truth: np.ndarray | None
    keras_probabilities: np.ndarray | None
    keras_top1: float | None
    threads: int
    latency_runs: int
    gpu_images: int  # validation pictures run on the GPU (a software GPU is slow)
    device_truth: np.ndarray | None = None
    device_inputs: np.ndarray | None = None
    class_names: tuple = ()
    output: str | None = None
    gpu: GpuAvailability = dataclasses.field(default_factory=GpuAvailability)

    def selftest_pictures(self):
        """A few device inputs, one class after another: what the .tflite files carry for the GPU check."""
        if self.device_inputs is None:
            return ()
        indices = each_class_in_turn(self.device_truth, per_class=SELFTEST_PICTURES, limit=SELFTEST_PICTURES)
        return tuple(self.device_inputs[index] for index in indices)


def top1(probabilities, truth):
    """The share of rows whose most probable class is `truth`'s (None without probabilities)."""
    if probabilities is None:
        return None
    return float(np.mean(np.argmax(probabilities, axis=1) == truth))


def measure(target, content, path, reference, *, log):
    """The report's row of one target.

    Args:
        target: a name of targets.TARGETS.
        content: the .tflite file's bytes; `path`: where it was written (with its metadata).
        reference: the Reference it is measured against.
        log: where progress lines go.

    Returns:
        The row (a JSON-ready dict): file, size, tensors, graph summary, device and Keras-input
        figures, latency, GPU compatibility and measurement, Edge TPU readiness.
    """
    spec = targets_lib.TARGETS[target]
    runtime = LiteRTModel(content, threads=reference.threads)
    row = {
        "file": path,
        "size_bytes": os.path.getsize(path),
        "input": _tensor_summary(runtime.input),
        "output": _tensor_summary(runtime.output),
        **inspection.summary(content),
    }
    device_probabilities = None
    if reference.device_inputs is not None:
        # What the device gets: classify.py's runtime (its model on the CPU) on the validation
        # pictures as they are stored, prepared as it prepares them.
        classifier = Classifier(path, threads=reference.threads)
        device_probabilities = classifier.model.predict(reference.device_inputs, progress=_progress(f"[{target}] on the CPU", log))
        classifier.model.close()
        row["device_top1"] = top1(device_probabilities, reference.device_truth)
        row["device_images"] = len(device_probabilities)
        row["confusion"] = _confusion(target, device_probabilities, reference.device_truth, reference, where="the device path")
    if reference.images is not None:
        probabilities = runtime.predict(reference.images)
        same = np.argmax(probabilities, axis=1) == np.argmax(reference.keras_probabilities, axis=1)
        row["agreement"] = float(np.mean(same))
        difference = np.abs(probabilities - reference.keras_probabilities)
        row["max_abs_diff"] = None if spec.integer else float(difference.max())
        row["mean_abs_diff"] = None if spec.integer else float(difference.mean())
        row["top1"] = top1(probabilities, reference.truth)
        row["keras_top1"] = reference.keras_top1
        row["acceptance"] = report_lib.acceptance(target, row, reference.keras_top1)
        if "confusion" not in row:  # no original pictures (a TFDS or generated dataset): Keras' inputs
            row["confusion"] = _confusion(target, probabilities, reference.truth, reference, where="Keras' inputs")
        sample = reference.images[0]
    else:
        row.update(agreement=None, max_abs_diff=None, mean_abs_diff=None, top1=None, keras_top1=None, acceptance=None)
        sample = _random_input(runtime.input["shape"])
    row["latency"] = {**runtime.latency(sample, runs=reference.latency_runs), "threads": reference.threads}
    runtime.close()
    if spec.integer:
        row["float_tensors"] = inspection.float_tensors(content)
    row["gpu_delegate"] = inspection.gpu_compatibility(content)
    row["gpu"] = _measure_on_gpu(target, content, path, reference, cpu_probabilities=device_probabilities, log=log)
    row["edgetpu"] = inspection.edgetpu_readiness(content)
    return row


def gpu_verdict(measured):
    """Whether runtimes may use the GPU for this file (None: not measured): its answers must match
    the same file's on the CPU, on the validation pictures and on the self-test."""
    if not measured or "error" in measured:
        return None
    test = selftest.SelfTestResult(**measured["selftest"])
    if not test.passed:
        return GpuVerdict(usable=False, reason=test.describe())
    agreement = measured.get("agreement_with_cpu")
    if agreement is not None and agreement < report_lib.GPU_CPU_AGREEMENT:
        return GpuVerdict(
            usable=False,
            reason=f"{100 * agreement:.2f} % top-1 agreement with its CPU run on {measured['images']} validation pictures "
            f"(needs {100 * report_lib.GPU_CPU_AGREEMENT:.0f} %)",
        )
    checked = f"{100 * agreement:.2f} % top-1 agreement with its CPU run on {measured['images']} validation pictures; " if agreement is not None else ""
    return GpuVerdict(usable=True, reason=f"{checked}{test.describe()}")


def _measure_on_gpu(target, content, path, reference, *, cpu_probabilities, log):
    """The target on LiteRT's GPU accelerator, when there is an adapter: whether every operator runs
    there, its answers beside the same file's on the CPU (the device's inputs), the self-test the
    runtimes run, latency. None without an adapter."""
    gpu = reference.gpu
    if gpu.unavailable:
        return None
    if not gpu.checked:
        unavailable = gpu_adapter_unavailable(path)  # in a child process: a driver may crash it
        if unavailable:
            gpu.mark_unavailable(unavailable)
            return None
    try:
        model = GpuModel(content, name=target)
    except LiteRTError as error:
        if "no GPU adapter" not in str(error):
            gpu.checked = True  # there is an adapter: this model failed on it, the next target may run
            return {"error": str(error)}
        gpu.mark_unavailable("no GPU adapter")
        return None
    adapter = model.adapter
    count = 0 if reference.device_inputs is None else min(reference.gpu_images, len(reference.device_inputs))
    gpu.checked, gpu.adapter, gpu.software, gpu.images = True, adapter.name if adapter else "unknown adapter", bool(adapter and adapter.software), count
    log(f"[{target}] on the GPU ({gpu.adapter}): the self-test, {count} pictures beside its CPU run, latency")
    row = {"fully_accelerated": model.fully_accelerated}
    cpu = LiteRTModel(content, threads=reference.threads)
    try:
        metadata = metadata_lib.read(path)
        row["selftest"] = dataclasses.asdict(selftest.compare(model, cpu, selftest.pictures(metadata, model.input["shape"])))
        if count:
            # The device's inputs, against the same file on the CPU on the same inputs: the GPU's own
            # error, whatever the conversion's (the CPU columns bound that against Keras).
            probabilities = model.predict(reference.device_inputs[:count], progress=_progress(f"[{target}] on the GPU", log))
            row["images"] = len(probabilities)
            row["agreement_with_cpu"] = float(np.mean(np.argmax(probabilities, axis=1) == np.argmax(cpu_probabilities[:count], axis=1)))
            row["max_abs_diff_with_cpu"] = float(np.max(np.abs(probabilities - cpu_probabilities[:count])))
            row["device_top1"] = top1(probabilities, reference.device_truth[:count])
            row["acceptance"] = report_lib.gpu_acceptance(target, row)
        sample = reference.device_inputs[0].astype(np.float32) if count else _random_input(model.input["shape"])
        row["latency"] = model.latency(sample, runs=reference.latency_runs)
    finally:
        model.close()
        cpu.close()
    return row


def _confusion(target, probabilities, truth, reference, *, where):
    """The target's confusion matrix on `where`'s pictures, and its picture beside the .tflite files
    (the picture's name None without Matplotlib)."""
    counts = confusion.matrix(truth, np.argmax(probabilities, axis=1), len(reference.class_names))
    name = f"confusion-{target}.png"
    try:
        confusion.draw(
            counts, list(reference.class_names), os.path.join(reference.output, name),
            title=f"{target} on {where} ({len(probabilities)} pictures, top-1 {report_lib.percent(top1(probabilities, truth))})",
        )
    except confusion.ConfusionError:
        name = None
    return {"file": name, "counts": counts.tolist(), "pictures": where}


def _random_input(shape):
    """A picture of noise for the latency run when there are no validation pictures."""
    return np.random.default_rng(0).uniform(0, 255, (*shape[1:],)).astype(np.float32)


def _progress(what, log, *, every_seconds=5.0):
    """A callback for LiteRTModel.predict: a line every few seconds (a software GPU takes minutes
    for a few hundred pictures)."""
    last = [time.monotonic()]

    def report(done, total):
        if time.monotonic() - last[0] >= every_seconds and done < total:
            log(f"{what}: {done} / {total} pictures")
            last[0] = time.monotonic()

    return report


def _tensor_summary(detail):
    scale, zero_point = detail["quantization"]
    summary = {"dtype": np.dtype(detail["dtype"]).name, "shape": detail["shape"].tolist()}
    if scale:
        summary.update(scale=float(scale), zero_point=int(zero_point))
    return summary
