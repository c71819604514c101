"""One conversion: every requested target written, labelled, measured against the Keras model and
reported. A target that fails is reported and the others still written."""

import dataclasses
import json
import os
import sys
import tempfile
import time

import numpy as np

from keras_resnet import files
from keras_resnet.litert import inspection, qat, report as report_lib, targets as targets_lib
from keras_resnet.litert.trained import ConversionError
from keras_resnet.runtime import LiteRTError, labels as labels_lib
from keras_resnet.runtime.gpu import GpuModel, gpu_adapter_unavailable
from keras_resnet.runtime.model import LiteRTModel


@dataclasses.dataclass
class Settings:
    targets: list
    output: str
    calibration_steps: int = 4
    qat_epochs: int = 1
    qat_lr: float | None = None  # default: the run's initial rate / 100
    qat_steps_per_epoch: int | None = None  # default: one pass over the training split
    eval_images: int | None = None  # default: the whole validation split
    latency_runs: int = 100
    threads: int | None = None  # default: every core
    gpu_eval_images: int = 200  # a software GPU (SwiftShader) takes ~40 ms per ResNet-20 image


@dataclasses.dataclass
class Reference:
    """What every target is measured against: the Keras model's probabilities on the validation
    images (None without data), and where the measurements run."""

    images: np.ndarray | None
    truth: np.ndarray | None
    keras_probabilities: np.ndarray | None
    keras_top1: float | None
    threads: int
    latency_runs: int
    edgetpu_compiler: bool
    gpu_images: int
    gpu: dict  # {"adapter": name or None, "software": bool, "unavailable": why}: filled by the first target


def _gpu_note(gpu):
    """One line for the report: where the GPU columns come from."""
    if gpu.get("adapter") is None:
        return f"GPU: not run ({gpu.get('unavailable', 'not tried')}); the GPU column is LiteRT's Analyzer's static verdict"
    kind = "a software renderer: the GPU code path, at CPU speed — its timings are not GPU speed" if gpu["software"] else "a GPU"
    return f"GPU: LiteRT's GPU accelerator on {gpu['adapter']} ({kind}); agreement on the first {gpu['images']} validation images"


class TargetFailed(Exception):
    """One target could not be produced; the others go on."""


def convert(trained, settings, *, log=print):
    """Writes settings.targets for `trained` (a TrainedModel) into settings.output with labels.txt,
    report.json and report.md. Returns (report, failures: {target: message}). Raises
    ConversionError when the output directory cannot be written (before anything is converted), and
    OSError when a write fails later (a full disk: the files written so far are complete)."""
    _check_output(settings.output)
    data = _Data(trained, settings, log=log) if trained.config else None
    images, truth = data.validation() if data else (None, None)
    keras_probabilities = trained.model.predict(images, batch_size=64, verbose=0) if images is not None else None
    reference = Reference(
        images=images,
        truth=truth,
        keras_probabilities=keras_probabilities,
        keras_top1=_top1(keras_probabilities, truth),
        threads=settings.threads or os.cpu_count(),
        latency_runs=settings.latency_runs,
        edgetpu_compiler=inspection.edgetpu_compiler_installed(),
        gpu_images=settings.gpu_eval_images,
        gpu={},
    )
    files.write_bytes(os.path.join(settings.output, labels_lib.LABELS_FILE), labels_lib.labels_text(trained.class_names).encode())

    report = {
        "model": trained.name,
        "source": trained.path,
        "build_arguments": trained.build_arguments,
        "images": 0 if images is None else len(images),
        "threads": reference.threads,
        "keras": {"top1": reference.keras_top1, "size_bytes": os.path.getsize(trained.path)},
        "targets": {},
    }
    failures = {}
    for target in settings.targets:
        started = time.perf_counter()
        log(f"[{target}] {targets_lib.TARGETS[target].description}")
        try:
            content = _produce(target, trained, data, settings, log=log)
        except TargetFailed as error:
            failures[target] = str(error)
            report["targets"][target] = {"error": str(error)}
            log(f"[{target}] error: {error}")
            continue
        path = os.path.join(settings.output, targets_lib.file_name(trained.name, target))
        files.write_bytes(path, labels_lib.with_labels(content, trained.class_names))
        row = _measure(target, content, path, reference)
        report["targets"][target] = row
        log(f"[{target}] {path}: {row['size_bytes'] / 1e6:.2f} MB, {time.perf_counter() - started:.0f} s")
    report["gpu"] = {**reference.gpu, "note": _gpu_note(reference.gpu)}
    if not reference.edgetpu_compiler and any(targets_lib.TARGETS[t].integer for t in report["targets"]):
        report["edgetpu_compiler"] = inspection.EDGETPU_COMPILER_HELP
    report["failures"] = failures
    files.write_bytes(os.path.join(settings.output, "report.json"), (json.dumps(report, indent=2) + "\n").encode())
    table = report_lib.markdown(report)
    files.write_bytes(os.path.join(settings.output, "report.md"), (table + "\n").encode())
    log("")
    log(table)
    return report, failures


def _check_output(output):
    if os.path.exists(output) and not os.path.isdir(output):
        raise ConversionError(f"--output {output} is a file, not a directory: choose another --output. Nothing was written.")
    try:
        os.makedirs(output, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output):
            pass
    except OSError as error:
        raise ConversionError(f"Cannot write to {output} ({files.describe_os_error(error)}): choose another --output. Nothing was written.") from None
    files.remove_partials(output)  # left by a conversion that was killed


def _produce(target, trained, data, settings, *, log):
    spec = targets_lib.TARGETS[target]
    if spec.needs_training_data and data is None:
        raise TargetFailed(
            f"{target} needs the training data: convert the run directory, or pass --dataset (as train.py's) with --model"
        )
    model = trained.model
    representative = None
    try:
        if spec.quantization_aware:
            model = _quantization_aware_model(trained, data, settings, log=log)
        elif spec.integer:
            representative = data.calibration_images
        return targets_lib.convert(model, target, image_size=trained.image_size, representative_images=representative)
    except ConversionError as error:
        raise TargetFailed(str(error)) from None
    except Exception as error:  # the converter reports failures as many kinds of exception
        message = str(error).strip().splitlines()
        raise TargetFailed(f"conversion failed ({type(error).__name__}: {message[-1][:300] if message else ''})") from None


def _quantization_aware_model(trained, data, settings, *, log):
    twin = qat.tf_keras_twin(trained)
    images, _ = data.validation(limit=32)
    difference = qat.check_twin(trained, twin, images)
    log(f"[int8-qat] tf_keras twin agrees with the Keras model (max |Δp| {difference:.1e}); fine-tuning")
    model = qat.quantization_aware(twin)
    calibration = (images for images, _ in data.training().take(settings.calibration_steps).as_numpy_iterator())
    qat.calibrate_ranges(model, twin, calibration)
    steps = settings.qat_steps_per_epoch or max(1, data.source.train_examples // data.config.training.batch_size)
    learning_rate = settings.qat_lr if settings.qat_lr is not None else data.config.training.learning_rate / 100
    qat.fine_tune(
        model,
        data.training(),
        epochs=settings.qat_epochs,
        steps_per_epoch=steps,
        learning_rate=learning_rate,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    low, high = qat.input_range(model)
    if (low, high) != qat.PIXEL_RANGE:
        raise ConversionError(f"training images fall outside [0, 255] (seen {low:g}…{high:g}): int8-qat expects raw pixels")
    return model


def _measure(target, content, path, reference):
    """The report's row of one target: its file, graph and where it can run, and how it compares
    with the Keras model (`reference`)."""
    spec = targets_lib.TARGETS[target]
    runtime = LiteRTModel(content, threads=reference.threads)
    row = {
        "file": path,
        "size_bytes": os.path.getsize(path),
        "input": _tensor_summary(runtime.input),
        "output": _tensor_summary(runtime.output),
        **inspection.summary(content),
    }
    if reference.images is not None:
        probabilities = runtime.predict(reference.images)
        same = np.argmax(probabilities, axis=1) == np.argmax(reference.keras_probabilities, axis=1)
        row["agreement"] = float(np.mean(same))
        difference = np.abs(probabilities - reference.keras_probabilities)
        row["max_abs_diff"] = None if spec.integer else float(difference.max())
        row["mean_abs_diff"] = None if spec.integer else float(difference.mean())
        row["top1"] = _top1(probabilities, reference.truth)
        row["keras_top1"] = reference.keras_top1
        row["acceptance"] = report_lib.acceptance(target, row, reference.keras_top1)
        sample = reference.images[0]
    else:
        row.update(agreement=None, max_abs_diff=None, mean_abs_diff=None, top1=None, keras_top1=None, acceptance=None)
        sample = np.random.default_rng(0).uniform(0, 255, (*runtime.input["shape"][1:],)).astype(np.float32)
    row["latency"] = {**runtime.latency(sample, runs=reference.latency_runs), "threads": reference.threads}
    if spec.integer:
        row["float_tensors"] = inspection.float_tensors(content)
    row["gpu_delegate"] = inspection.gpu_compatibility(content)
    row["gpu"] = _measure_on_gpu(
        target, content, path, reference, cpu_probabilities=probabilities if reference.images is not None else None
    )
    row["edgetpu"] = inspection.edgetpu_readiness(content)
    if spec.integer and reference.edgetpu_compiler:
        compiled = inspection.compile_for_edgetpu(path, output_dir=os.path.dirname(path))
        if compiled.get("file"):
            compiled.pop("log")
            if labels_lib.read_labels(compiled["file"]) is None:  # the compiler rewrites the flatbuffer alone
                with open(compiled["file"], "rb") as file:
                    packed = labels_lib.with_labels(file.read(), labels_lib.read_labels(path))
                files.write_bytes(compiled["file"], packed)
        row["edgetpu"]["compiled"] = compiled
    return row


def _measure_on_gpu(target, content, path, reference, *, cpu_probabilities):
    """The target on LiteRT's GPU accelerator, when there is an adapter: whether every operator runs
    there, agreement with the Keras model and with the same file on the CPU, latency. None without
    an adapter (the first target finds out, in a child process; the others do not try again)."""
    if reference.gpu.get("unavailable"):
        return None
    if not reference.gpu.get("probed"):
        reference.gpu["probed"] = True
        unavailable = gpu_adapter_unavailable(path)
        if unavailable:
            reference.gpu.update(adapter=None, software=False, unavailable=unavailable)
            return None
    try:
        model = GpuModel(content, name=target)
    except LiteRTError as error:
        if "no GPU adapter" not in str(error):
            return {"error": str(error)}  # this model on this GPU; the next target may run
        reference.gpu.update(adapter=None, software=False, unavailable="no GPU adapter")
        return None
    adapter = model.adapter
    reference.gpu.update(
        adapter=adapter.name if adapter else "unknown adapter",
        software=bool(adapter and adapter.software),
        images=0 if reference.images is None else min(reference.gpu_images, len(reference.images)),
    )
    row = {"fully_accelerated": model.fully_accelerated}
    try:
        if reference.images is not None:
            count = reference.gpu_images
            probabilities = model.predict(reference.images[:count])
            keras_probabilities = reference.keras_probabilities[:count]
            top1 = np.argmax(probabilities, axis=1)
            row["images"] = len(probabilities)
            row["agreement"] = float(np.mean(top1 == np.argmax(keras_probabilities, axis=1)))
            row["agreement_with_cpu"] = float(np.mean(top1 == np.argmax(cpu_probabilities[:count], axis=1)))
            row["max_abs_diff"] = float(np.max(np.abs(probabilities - keras_probabilities)))
            row["top1"] = _top1(probabilities, reference.truth[:count])
            row["acceptance"] = report_lib.gpu_acceptance(target, row)
            sample = reference.images[0]
        else:
            sample = np.random.default_rng(0).uniform(0, 255, (*model.input["shape"][1:],)).astype(np.float32)
        row["latency"] = model.latency(sample, runs=reference.latency_runs)
    finally:
        model.close()
    return row


def _tensor_summary(detail):
    scale, zero_point = detail["quantization"]
    summary = {"dtype": np.dtype(detail["dtype"]).name, "shape": detail["shape"].tolist()}
    if scale:
        summary.update(scale=float(scale), zero_point=int(zero_point))
    return summary


def _top1(probabilities, truth):
    if probabilities is None:
        return None
    return float(np.mean(np.argmax(probabilities, axis=1) == truth))


class _Data:
    """The trained model's dataset, prepared as in training: validation images for the comparisons,
    training batches for calibration and quantization-aware fine-tuning."""

    def __init__(self, trained, settings, *, log):
        from keras_resnet.data import sources

        self.config = trained.config
        self.settings = settings
        try:
            self.source = sources.open_configured(self.config.data, seed=self.config.training.seed)
        except sources.DatasetError as error:
            raise ConversionError(str(error)) from None
        self._validation = None

    def validation(self, limit=None):
        """(images float32 (N, H, W, 3) in [0, 255], labels (N,)) of the validation split."""
        from keras_resnet.data import pipeline

        if self._validation is None:
            data = self.config.data
            wanted = self.settings.eval_images or self.source.validation_examples
            dataset = pipeline.evaluation_dataset(
                self.source, image_size=data.image_size, augmentation=data.augmentation, batch_size=256
            ).unbatch().take(wanted)
            images, labels = [], []
            for image, label in dataset.as_numpy_iterator():
                images.append(image)
                labels.append(np.argmax(label))
            self._validation = (np.stack(images), np.asarray(labels))
        images, labels = self._validation
        return (images[:limit], labels[:limit]) if limit else (images, labels)

    def training(self):
        from keras_resnet.data import pipeline

        data = self.config.data
        return pipeline.training_dataset(
            self.source,
            image_size=data.image_size,
            augmentation=data.augmentation,
            batch_size=self.config.training.batch_size,
            seed=self.config.training.seed,
            min_crop_area=data.min_crop_area,
        )

    def calibration_images(self):
        """--calibration-steps training batches, one image at a time (the models have batch 1)."""
        for images, _ in self.training().take(self.settings.calibration_steps).as_numpy_iterator():
            for image in images:
                yield image[None]
