"""The trained model's dataset as a conversion needs it: validation images prepared as in training
(what the Keras model is measured on), the same pictures as a device meets them (what the .tflite
files are measured on), training batches for calibration and quantization-aware fine-tuning, and a
few samples per class for the page."""

import contextlib
import os
import re
import shutil

import numpy as np

from keras_resnet import files
from keras_resnet.litert.trained import ConversionError
from keras_resnet.runtime import LiteRTError
from keras_resnet.runtime.classifier import load_image

SAMPLES_PER_CLASS, MAX_SAMPLES = 2, 12  # validation pictures written for the page's sample strip
SAMPLES_FOLDER = "samples"


class ConversionData:
    """The dataset a run was trained on, opened as its config.json says.

    Args:
        config: the run's RunConfig.
        eval_images: how many validation pictures to measure on (None: the whole split).
        calibration_steps: training batches for post-training calibration.

    Raises:
        ConversionError: the dataset cannot be opened (moved, offline, corrupt); later, from the
            methods that read it, a record file of it is damaged (records_read).
    """

    def __init__(self, config, *, eval_images=None, calibration_steps=4):
        from keras_resnet.data import sources

        self.config = config
        self.eval_images = eval_images
        self.calibration_steps = calibration_steps
        try:
            self.source = sources.open_configured(config.data, seed=config.training.seed)
        except sources.DatasetError as error:
            raise ConversionError(str(error)) from None
        self._validation = None

    @contextlib.contextmanager
    def records_read(self):
        """TensorFlow's DataLossError for a record file damaged beyond what opening the data read, as
        a ConversionError naming the file (for a source of record files: another source's
        DataLossError, such as a picture file cut short while it was read, goes on as it is)."""
        import tensorflow as tf

        try:
            yield
        except tf.errors.DataLossError as error:
            line = self.source.damaged_records_line(error, then=", then convert again.")
            if line is None:
                raise
            raise ConversionError(line) from None

    @property
    def wanted(self):
        return self.eval_images or self.source.validation_examples

    def validation(self, limit=None):
        """(images float32 (N, H, W, 3) in [0, 255], labels (N,)) of the validation split, prepared
        by training's evaluation transform; the first `limit` of them when given."""
        from keras_resnet.data import pipeline

        if self._validation is None:
            data = self.config.data
            dataset = pipeline.evaluation_dataset(
                self.source, image_size=data.image_size, preprocessing=data.preprocessing(), batch_size=256
            ).unbatch().take(self.wanted)
            images, labels = [], []
            with self.records_read():
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

        if self.source.validation_files is not None:
            return list(self.source.validation_files[: self.wanted])
        with self.records_read():
            return [
                (Image.fromarray(np.asarray(image, np.uint8)), int(label))
                for image, label in self.source.validation.take(self.wanted).as_numpy_iterator()
            ]

    def training(self):
        """Training batches, augmented as in training."""
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
        """`calibration_steps` training batches, one image at a time (the models have batch 1)."""
        with self.records_read():
            for images, _ in self.training().take(self.calibration_steps).as_numpy_iterator():
                for image in images:
                    yield image[None]


def device_inputs(pictures, preprocessing, image_size):
    """Pictures as classify.py prepares them.

    Args:
        pictures: (path or Pillow image, label) pairs.
        preprocessing: the model's runtime Preprocessing.
        image_size: (height, width) of the model's input.

    Returns:
        uint8 array (N, height, width, 3).

    Raises:
        ConversionError: Pillow cannot read a picture that TensorFlow read in training.
    """
    height, width = image_size
    inputs = []
    for picture, _ in pictures:
        try:
            image = load_image(picture) if isinstance(picture, str) else picture.convert("RGB")
        except LiteRTError as error:
            raise ConversionError(f"{error}: classify.py could not read this validation picture either; repair or remove it, then convert again.") from None
        inputs.append(preprocessing.apply(image, (width, height)))
    return np.stack(inputs)


def each_class_in_turn(labels, *, per_class, limit):
    """Indices into `labels`: the first picture of each class, then the second of each, … (at most
    `per_class` of one class, `limit` in all): every class is represented before any twice."""
    by_class = {}
    for index, label in enumerate(labels):
        if len(by_class.setdefault(int(label), [])) < per_class:
            by_class[int(label)].append(index)
    rounds = max((len(indices) for indices in by_class.values()), default=0)
    order = [indices[rank] for rank in range(rounds) for _, indices in sorted(by_class.items()) if rank < len(indices)]
    return order[:limit]


def write_samples(pictures, class_names, folder):
    """A few validation pictures per class into `folder`, as stored (the original files of a folder
    dataset; PNG otherwise), for the page's sample strip; an earlier conversion's samples go."""
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if os.path.isfile(os.path.join(folder, name)):
            os.remove(os.path.join(folder, name))
    ranks = {}
    for index in each_class_in_turn([label for _, label in pictures], per_class=SAMPLES_PER_CLASS, limit=MAX_SAMPLES):
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
