"""One conversion: every requested target written, labelled, measured against the Keras model and
reported. A target that fails is reported and the others still written."""

import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
import time

import numpy as np

from keras_resnet import files
from keras_resnet.litert import inspection, qat, report as report_lib, targets as targets_lib
from keras_resnet.litert.trained import ConversionError
from keras_resnet.runtime import LiteRTError, confusion, labels as labels_lib, metadata as metadata_lib, selftest
from keras_resnet.runtime.classifier import Classifier, load_image
from keras_resnet.runtime.gpu import GpuModel, gpu_adapter_unavailable
from keras_resnet.runtime.metadata import GpuVerdict
from keras_resnet.runtime.model import LiteRTModel

SELFTEST_PICTURES = 8  # packed into each .tflite: what runtimes check the GPU with
SAMPLES_PER_CLASS, MAX_SAMPLES = 2, 12  # validation pictures written for the page's sample strip
SAMPLES_FOLDER = "samples"


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
    images as Keras' evaluation prepares them (None without data); the same pictures as the device
    prepares them (classify.py's code: `device_inputs`); and where the measurements run."""

    images: np.ndarray | None
    truth: np.ndarray | None
    keras_probabilities: np.ndarray | None
    keras_top1: float | None
    threads: int
    latency_runs: int
    edgetpu_compiler: bool
    gpu_images: int
    gpu: dict  # {"adapter": name or None, "software": bool, "unavailable": why}: filled by the first target
    device_truth: np.ndarray | None = None  # the labels of the validation pictures as stored
    device_inputs: np.ndarray | None = None  # uint8 (N, H, W, 3): those pictures through classify.py's preprocessing
    gpu_probed: bool = False
    class_names: tuple = ()
    output: str | None = None  # where each target's confusion picture goes

    def selftest_pictures(self):
        """A few device inputs, one class after another: what the .tflite files carry for the GPU check."""
        if self.device_inputs is None:
            return ()
        return tuple(self.device_inputs[index] for index in _each_class_in_turn(self.device_truth, per_class=SELFTEST_PICTURES, limit=SELFTEST_PICTURES))


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
    training_pid = trained.run.holder() if trained.run is not None else None
    if training_pid:
        log(
            f"Note: {trained.run} is still training (process {training_pid}): converting {os.path.basename(trained.path)} "
            "as it is now; convert again when the run has finished."
        )
    data = _Data(trained, settings, log=log) if trained.config else None
    images, truth = data.validation() if data else (None, None)
    keras_probabilities = trained.model.predict(images, batch_size=64, verbose=0) if images is not None else None
    preprocessing = trained.preprocessing
    device_pictures = data.device_pictures() if data else None
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
        device_truth=None if device_pictures is None else np.asarray([label for _, label in device_pictures]),
        device_inputs=None if device_pictures is None else _device_inputs(device_pictures, preprocessing, trained.image_size),
        class_names=tuple(trained.class_names),
        output=settings.output,
    )
    files.write_bytes(os.path.join(settings.output, labels_lib.LABELS_FILE), labels_lib.labels_text(trained.class_names).encode())
    if device_pictures:
        _write_samples(device_pictures, trained.class_names, os.path.join(settings.output, SAMPLES_FOLDER))

    report = {
        "model": trained.name,
        "source": trained.path,
        "build_arguments": trained.build_arguments,
        "images": 0 if images is None else len(images),
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
        row = _measure(target, content, path, reference, log=log)
        verdict = _gpu_verdict(row.get("gpu"))
        if verdict is not None:
            # Runtimes read it: a model found wrong on the GPU is run on the CPU without trying.
            files.write_bytes(path, metadata_lib.pack(content, **packed, gpu=verdict))
            row["gpu"]["verdict"] = verdict.to_json()
            row["size_bytes"] = os.path.getsize(path)
        report["targets"][target] = row
        log(f"[{target}] {path}: {row['size_bytes'] / 1e6:.2f} MB, {time.perf_counter() - started:.0f} s")
    report["gpu"] = {**reference.gpu, "note": _gpu_note(reference.gpu)}
    report["settings"] = {"calibration_steps": settings.calibration_steps, "qat_epochs": settings.qat_epochs}
    report["findings"] = report_lib.findings(report)
    report["missed"] = report_lib.missed(report)
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


def _measure(target, content, path, reference, *, log):
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
    device_probabilities = None
    if reference.device_inputs is not None:
        # What the device gets: classify.py's runtime (its model on the CPU) on the validation
        # pictures as they are stored, prepared as it prepares them (_device_inputs).
        classifier = Classifier(path, threads=reference.threads)
        device_probabilities = classifier.model.predict(reference.device_inputs, progress=_progress(f"[{target}] on the CPU", log))
        classifier.model.close()
        row["device_top1"] = _top1(device_probabilities, reference.device_truth)
        row["device_images"] = len(device_probabilities)
        row["confusion"] = _confusion(target, device_probabilities, reference.device_truth, reference, where="the device path")
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
        if "confusion" not in row:  # no original pictures (a TFDS or generated dataset): Keras' inputs
            row["confusion"] = _confusion(target, probabilities, reference.truth, reference, where="Keras' inputs")
        sample = reference.images[0]
    else:
        row.update(agreement=None, max_abs_diff=None, mean_abs_diff=None, top1=None, keras_top1=None, acceptance=None)
        sample = np.random.default_rng(0).uniform(0, 255, (*runtime.input["shape"][1:],)).astype(np.float32)
    row["latency"] = {**runtime.latency(sample, runs=reference.latency_runs), "threads": reference.threads}
    if spec.integer:
        row["float_tensors"] = inspection.float_tensors(content)
    row["gpu_delegate"] = inspection.gpu_compatibility(content)
    row["gpu"] = _measure_on_gpu(target, content, path, reference, cpu_probabilities=device_probabilities, log=log)
    row["edgetpu"] = inspection.edgetpu_readiness(content)
    if spec.integer and reference.edgetpu_compiler:
        compiled = inspection.compile_for_edgetpu(path, output_dir=os.path.dirname(path))
        if compiled.get("file"):
            compiled.pop("log")
            if labels_lib.read_labels(compiled["file"]) is None:  # the compiler rewrites the flatbuffer alone
                metadata = metadata_lib.read(path)
                with open(compiled["file"], "rb") as file:
                    packed = metadata_lib.pack(
                        file.read(), class_names=labels_lib.read_labels(path), preprocessing=metadata.preprocessing,
                        selftest=metadata.selftest,
                    )
                files.write_bytes(compiled["file"], packed)
        row["edgetpu"]["compiled"] = compiled
    return row


def _measure_on_gpu(target, content, path, reference, *, cpu_probabilities, log):
    """The target on LiteRT's GPU accelerator, when there is an adapter: whether every operator runs
    there, its answers beside the same file's on the CPU (the device's inputs) and the Keras model's,
    the self-test the runtimes run, latency. None without an adapter (the first target finds out, in
    a child process; the others do not try again)."""
    if reference.gpu.get("unavailable"):
        return None
    if not reference.gpu_probed:
        reference.gpu_probed = True
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
    count = 0 if reference.device_inputs is None else min(reference.gpu_images, len(reference.device_inputs))
    reference.gpu.update(adapter=adapter.name if adapter else "unknown adapter", software=bool(adapter and adapter.software), images=count)
    log(f"[{target}] on the GPU ({reference.gpu['adapter']}): the self-test, {count} pictures beside its CPU run, latency")
    row = {"fully_accelerated": model.fully_accelerated}
    cpu = LiteRTModel(content, threads=reference.threads)
    try:
        metadata = metadata_lib.read(path)
        row["selftest"] = dataclasses.asdict(selftest.compare(model, cpu, selftest.pictures(metadata, model.input["shape"])))
        if count:
            # The device's inputs, against the same file on the CPU on the same inputs: the GPU's own
            # error, whatever the conversion's (the CPU columns bound that against Keras).
            probabilities = model.predict(reference.device_inputs[:count], progress=_progress(f"[{target}] on the GPU", log))
            top1 = np.argmax(probabilities, axis=1)
            row["images"] = len(probabilities)
            row["agreement_with_cpu"] = float(np.mean(top1 == np.argmax(cpu_probabilities[:count], axis=1)))
            row["max_abs_diff_with_cpu"] = float(np.max(np.abs(probabilities - cpu_probabilities[:count])))
            row["device_top1"] = _top1(probabilities, reference.device_truth[:count])
            row["acceptance"] = report_lib.gpu_acceptance(target, row)
        sample = reference.device_inputs[0].astype(np.float32) if count else (
            np.random.default_rng(0).uniform(0, 255, (*model.input["shape"][1:],)).astype(np.float32)
        )
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
            title=f"{target} on {where} ({len(probabilities)} pictures, top-1 {report_lib.percent(_top1(probabilities, truth))})",
        )
    except confusion.ConfusionError:
        name = None
    return {"file": name, "counts": counts.tolist(), "pictures": where}


def _gpu_verdict(measured):
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


def _progress(what, log, *, every_seconds=5.0):
    """A callback for LiteRTModel.predict: a line every few seconds (a software GPU takes minutes
    for a few hundred pictures)."""
    last = [time.monotonic()]

    def report(done, total):
        if time.monotonic() - last[0] >= every_seconds and done < total:
            log(f"{what}: {done} / {total} pictures")
            last[0] = time.monotonic()

    return report


def _each_class_in_turn(labels, *, per_class, limit):
    """Indices into `labels`: the first picture of each class, then the second of each, … (at most
    `per_class` of one class, `limit` in all): every class is represented before any twice."""
    by_class = {}
    for index, label in enumerate(labels):
        if len(by_class.setdefault(int(label), [])) < per_class:
            by_class[int(label)].append(index)
    rounds = max((len(indices) for indices in by_class.values()), default=0)
    order = [indices[rank] for rank in range(rounds) for _, indices in sorted(by_class.items()) if rank < len(indices)]
    return order[:limit]


def _device_inputs(pictures, preprocessing, image_size):
    """The pictures (paths or Pillow images) as classify.py prepares them for a model of
    `image_size` (height, width): read with its load_image, through `preprocessing`."""
    height, width = image_size
    inputs = []
    for picture, _ in pictures:
        try:
            image = load_image(picture) if isinstance(picture, str) else picture.convert("RGB")
        except LiteRTError as error:  # read by TensorFlow in training, refused by Pillow here
            raise ConversionError(f"{error}: classify.py could not read this validation picture either; repair or remove it, then convert again.") from None
        inputs.append(preprocessing.apply(image, (width, height)))
    return np.stack(inputs)


def _write_samples(pictures, class_names, folder):
    """A few validation pictures per class, as stored (the original files of a folder dataset), for
    the page's sample strip (serve.py shows them by default)."""

    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):  # the samples of an earlier conversion
        if os.path.isfile(os.path.join(folder, name)):
            os.remove(os.path.join(folder, name))
    ranks = {}
    for index in _each_class_in_turn([label for _, label in pictures], per_class=SAMPLES_PER_CLASS, limit=MAX_SAMPLES):
        picture, label = pictures[index]
        rank = ranks[label] = ranks.get(label, -1) + 1
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", class_names[label]).strip("._") or f"class{label}"
        if isinstance(picture, str):
            extension = os.path.splitext(picture)[1].lower()
            with files.replacing(os.path.join(folder, f"{stem}-{rank + 1}{extension}")) as temporary:
                shutil.copyfile(picture, temporary)
        else:
            with files.replacing(os.path.join(folder, f"{stem}-{rank + 1}.png")) as temporary:
                picture.save(temporary, format="PNG")


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
                self.source, image_size=data.image_size, preprocessing=data.preprocessing(), batch_size=256
            ).unbatch().take(wanted)
            images, labels = [], []
            for image, label in dataset.as_numpy_iterator():
                images.append(image)
                labels.append(np.argmax(label))
            self._validation = (np.stack(images), np.asarray(labels))
        images, labels = self._validation
        return (images[:limit], labels[:limit]) if limit else (images, labels)

    def device_pictures(self):
        """(picture, label) of the validation split as a device would meet it: the original files of a
        folder dataset (paths), else the stored pictures (Pillow images) — the same pictures, in the
        same order, as validation()."""
        from PIL import Image

        wanted = self.settings.eval_images or self.source.validation_examples
        if self.source.validation_files is not None:
            return list(self.source.validation_files[:wanted])
        return [
            (Image.fromarray(np.asarray(image, np.uint8)), int(label))
            for image, label in self.source.validation.take(wanted).as_numpy_iterator()
        ]

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
