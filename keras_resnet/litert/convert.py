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
from keras_resnet.litert import dataset as dataset_lib, inspection, measure, qat, report as report_lib, targets as targets_lib
from keras_resnet.litert.trained import ConversionError
from keras_resnet.runtime import labels as labels_lib, metadata as metadata_lib


@dataclasses.dataclass
class Settings:
    """convert/to_tflite.py's choices: which targets, where, and how much to measure and fine-tune."""

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


class TargetFailed(Exception):
    """One target could not be produced; the others go on."""


def convert(trained, settings, *, log=print):
    """Writes the requested targets of one trained model, measures each and reports.

    Args:
        trained: the TrainedModel (litert.trained.open_trained): a run directory's model with its
            config, or a lone .keras file.
        settings: the Settings.
        log: where progress lines and the final table go.

    Returns:
        (report, failures): the report.json content, and {target: message} of targets that could
        not be produced (the others are written). settings.output gets the .tflite files,
        labels.txt, samples/, confusion pictures, report.json and report.md.

    Raises:
        ConversionError: the output directory cannot be written, the run's dataset cannot be opened,
            or Pillow cannot read one of its validation pictures (before anything is converted), or
            a record file of the dataset is damaged beyond what opening it read.
        OSError: a write failed later (a full disk: the files written so far are complete).
    """
    _check_output(settings.output)
    training_pid = trained.run.holder() if trained.run is not None else None
    if training_pid:
        log(
            f"Note: {trained.run} is still training (process {training_pid}): converting {os.path.basename(trained.path)} "
            "as it is now; convert again when the run has finished."
        )
    data = dataset_lib.ConversionData(trained.config, eval_images=settings.eval_images, calibration_steps=settings.calibration_steps) if trained.config else None
    device_pictures = data.device_pictures() if data else None
    reference = _reference(trained, data, device_pictures, settings)
    edgetpu_compiler = inspection.edgetpu_compiler_installed()
    preprocessing = trained.preprocessing
    files.write_bytes(os.path.join(settings.output, labels_lib.LABELS_FILE), labels_lib.labels_text(trained.class_names).encode())
    if device_pictures:
        dataset_lib.write_samples(device_pictures, trained.class_names, os.path.join(settings.output, dataset_lib.SAMPLES_FOLDER))

    report = {
        "model": trained.name,
        "source": trained.path,
        "build_arguments": trained.build_arguments,
        "images": 0 if reference.images is None else len(reference.images),
        "preprocessing": {**preprocessing.to_json(), "description": preprocessing.describe()},
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
        packed = dict(class_names=trained.class_names, preprocessing=preprocessing, selftest=reference.selftest_pictures())
        files.write_bytes(path, metadata_lib.pack(content, **packed))
        row = measure.measure(target, content, path, reference, log=log)
        if targets_lib.TARGETS[target].integer and edgetpu_compiler:
            row["edgetpu"]["compiled"] = _compile_for_edgetpu(path)
        verdict = measure.gpu_verdict(row.get("gpu"))
        if verdict is not None:
            # Runtimes read it: a model found wrong on the GPU is run on the CPU without trying.
            files.write_bytes(path, metadata_lib.pack(content, **packed, gpu=verdict))
            row["gpu"]["verdict"] = verdict.to_json()
            row["size_bytes"] = os.path.getsize(path)
        report["targets"][target] = row
        log(f"[{target}] {path}: {row['size_bytes'] / 1e6:.2f} MB, {time.perf_counter() - started:.0f} s")
    report["gpu"] = reference.gpu.to_json()
    report["settings"] = {"calibration_steps": settings.calibration_steps, "qat_epochs": settings.qat_epochs}
    report["findings"] = report_lib.findings(report)
    report["missed"] = report_lib.missed(report)
    if not edgetpu_compiler and any(targets_lib.TARGETS[t].integer for t in report["targets"]):
        report["edgetpu_compiler"] = inspection.EDGETPU_COMPILER_HELP
    report["failures"] = failures
    files.write_bytes(os.path.join(settings.output, "report.json"), (json.dumps(report, indent=2) + "\n").encode())
    table = report_lib.markdown(report)
    files.write_bytes(os.path.join(settings.output, "report.md"), (table + "\n").encode())
    log("")
    log(table)
    return report, failures


def _reference(trained, data, device_pictures, settings):
    """What each target is measured against: the Keras model on the validation images, and the same
    pictures (`device_pictures`) as classify.py prepares them."""
    images, truth = data.validation() if data else (None, None)
    keras_probabilities = trained.model.predict(images, batch_size=64, verbose=0) if images is not None else None
    return measure.Reference(
        images=images,
        truth=truth,
        keras_probabilities=keras_probabilities,
        keras_top1=measure.top1(keras_probabilities, truth),
        threads=settings.threads or os.cpu_count(),
        latency_runs=settings.latency_runs,
        gpu_images=settings.gpu_eval_images,
        device_truth=None if device_pictures is None else np.asarray([label for _, label in device_pictures]),
        device_inputs=None if device_pictures is None else dataset_lib.device_inputs(device_pictures, trained.preprocessing, trained.image_size),
        class_names=tuple(trained.class_names),
        output=settings.output,
    )


def _compile_for_edgetpu(path):
    """The Edge TPU compiler's result for the integer model at `path`: its file gets the labels,
    preprocessing and self-test pictures too (the compiler rewrites the flatbuffer alone)."""
    compiled = inspection.compile_for_edgetpu(path, output_dir=os.path.dirname(path))
    if compiled.get("file"):
        compiled.pop("log")
        if labels_lib.read_labels(compiled["file"]) is None:
            metadata = metadata_lib.read(path)
            with open(compiled["file"], "rb") as file:
                packed = metadata_lib.pack(
                    file.read(), class_names=labels_lib.read_labels(path), preprocessing=metadata.preprocessing, selftest=metadata.selftest,
                )
            files.write_bytes(compiled["file"], packed)
    return compiled


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
            # Its fine-tuning reads the training records: a damaged one is named (data.records_read),
            # as calibration_images names one met in calibration.
            with data.records_read():
                model = _quantization_aware_model(trained, data, settings, log=log)
        elif spec.integer:
            representative = data.calibration_images
        return targets_lib.convert(model, target, image_size=trained.image_size, representative_images=representative)
    except ConversionError as error:
        raise TargetFailed(str(error)) from None
    except Exception as error:  # the converter reports failures as many kinds of exception
        # Its last line says what failed (the lines before are the MLIR trace), so not runtime.reason's first.
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
