"""A run's configuration as typed data: which network, on which data, with which recipe, where it runs.

keras_resnet.run.resolve makes a `RunConfig` of a user's choices, every default filled. What only the dataset
knows (its classes) is added with `RunConfig.with_class_names`, and the step arithmetic (epochs,
schedule boundaries, warm-up) with `RunConfig.plan`. Everything else reads fields.

config.json is `RunConfig.to_json()`; `RunConfig.from_json` reads it back, including the files
written by keras_resnet 0.1.0 (the same layout). No TensorFlow here: the help texts use it too.
"""

import dataclasses
import json
import math

from keras_resnet import ranges
from keras_resnet.errors import ConfigFileError, UsageError
from keras_resnet.nets import specs
from keras_resnet.ranges import Range
from keras_resnet.run import recipes
from keras_resnet.runtime import preprocessing as preprocessing_lib, reason

STRATEGIES = ("auto", "default", "one-device", "mirrored", "multi-worker", "tpu")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
DEFAULT_SAVE_EVERY_STEPS = 200
# Training inputs: below 8 pixels the stem's strides leave nothing to learn from; above 2048 one
# image's activations alone outgrow any accelerator's memory in a ResNet-50.
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 2048
MAX_CPU_REPLICAS = 64  # logical devices carved out of the CPU (--cpu-replicas, for tests of distribution)
MAX_SEED = ranges.SEED.maximum
# Bounds of SGD's rate and L2 weight decay (the paper's: 0.1 and 1e-4): far beyond any that trains,
# short of float32's overflow. A rate that diverges is stopped at its first NaN (exit code 1).
MAX_LEARNING_RATE, MAX_WEIGHT_DECAY = 1e6, 1.0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The builder's arguments: `keras_resnet.build(**model.build_arguments())`."""

    name: str  # resnet20, plain56, resnet50 (the version is a field of its own)
    family: str
    version: str
    shortcut: str
    input_shape: tuple
    zero_init_residual: bool = False
    weight_decay: float = 1e-4
    classes: int | None = None  # the dataset's; None until it is known
    # The layout pretrained weights may dictate (keras_resnet.run.weights_source); these defaults
    # are the builder's, so that configurations written before these fields existed read the same.
    input_normalization: str = specs.LAYOUT_DEFAULTS["input_normalization"]
    conv_bias: bool = specs.LAYOUT_DEFAULTS["conv_bias"]
    downsample_block: str = specs.LAYOUT_DEFAULTS["downsample_block"]

    def build_arguments(self):
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


# The fields of a network's layout (specs.LAYOUT_DEFAULTS) that a run's configuration records.
LAYOUT_FIELDS = tuple(field for field in specs.LAYOUT_DEFAULTS if field in {field.name for field in dataclasses.fields(ModelConfig)})


@dataclasses.dataclass(frozen=True)
class DataConfig:
    dataset: str
    image_size: int
    augmentation: str
    min_crop_area: float
    data_dir: str | None = None
    train_examples: int | None = None
    validation_examples: int | None = None
    # The evaluation transform's crop (keras_resnet.runtime.preprocessing); None in the files written
    # before it was recorded: their augmentation family's, which their evaluation used.
    evaluation_crop: float | None = None

    def preprocessing(self):
        """The evaluation transform of this run: Keras evaluation, classify.py and the page apply it."""
        return preprocessing_lib.for_augmentation(self.augmentation, self.evaluation_crop)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    epochs: int | None
    steps: int | None
    batch_size: int
    learning_rate: float  # peak rate, already scaled to the global batch
    schedule: str
    step_boundaries: tuple  # fractions of training (the step schedule)
    warmup_epochs: float
    momentum: float
    label_smoothing: float = 0.0
    seed: int = 0
    weights: str | None = None  # where training started: "imagenet", "timm/NAME", a file (None: random)
    freeze_epochs: int = 0  # epochs that train only the classifier, the backbone frozen

@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    strategy: str = "auto"
    precision: str = "auto"
    jit_compile: bool = False
    cpu_replicas: int = 1
    tpu: str | None = None
    save_every_steps: int = DEFAULT_SAVE_EVERY_STEPS
    # grpc://HOST:PORT of a tf.data service dispatcher that prepares the training input (keras_resnet.data.service).
    data_service: str | None = None


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """The step arithmetic of a run, once the number of training examples is known."""

    steps_per_epoch: int
    total_steps: int
    epochs: int  # the last may be partial
    warmup_steps: int
    boundaries: tuple  # the steps where the step schedule divides the rate by 10
    freeze_steps: int = 0  # the first steps train only the classifier (fine-tuning)


# Defaults that fit the data (RunConfig.fit_to_data): the recipe's batch is halved, not below
# MIN_FITTED_BATCH, until an epoch has at least MIN_STEPS_PER_EPOCH steps; a default warm-up takes
# at most MAX_WARMUP_SHARE of the training it warms up.
MIN_STEPS_PER_EPOCH = 16
MIN_FITTED_BATCH = 8
MAX_WARMUP_SHARE = 0.1
# The default image size follows small pictures down to this, per family: an ImageNet-style network
# shrinks its input 32 times (stem and stages), so below 64 px its last stage sees one pixel. Measured
# (ResNet-18, 540 Fashion-MNIST pictures of 28 px, 4 epochs): 27.5 % top-1 at 28 px, 47.5 % at 64.
SMALLEST_FITTED_IMAGE_SIZE = {"imagenet": 64, "cifar": MIN_IMAGE_SIZE}
# The fields whose defaults depend on the data or the weights: `resolve` names those it chose.
DATA_DEPENDENT_DEFAULTS = ("batch_size", "learning_rate", "warmup_epochs", "image_size", "freeze_epochs")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    model: ModelConfig
    data: DataConfig
    training: TrainingConfig
    runtime: RuntimeConfig = RuntimeConfig()
    class_names: tuple | None = None
    # Which of DATA_DEPENDENT_DEFAULTS were left to defaults (not flags): fit_to_data may change
    # them. Not part of the run (not in config.json, not compared).
    defaulted: frozenset = dataclasses.field(default=frozenset(), compare=False)
    # What --weights resolved to (keras_resnet.run.weights_source.WeightsSource: the classes its
    # classifier knows, its kind, its image size); None without weights. Not part of the run either.
    weights_source: object = dataclasses.field(default=None, compare=False)

    def with_class_names(self, class_names):
        """This configuration for a dataset with these classes (the classifier's width follows)."""
        names = tuple(str(name) for name in class_names)
        return dataclasses.replace(self, model=dataclasses.replace(self.model, classes=len(names)), class_names=names)

    def with_model(self, **changes):
        return dataclasses.replace(self, model=dataclasses.replace(self.model, **changes))

    def with_runtime(self, **changes):
        return dataclasses.replace(self, runtime=dataclasses.replace(self.runtime, **changes))

    def with_defaults(self, **training_fields):
        """This configuration with other defaults for TrainingConfig fields the user left to them
        (a program with its own defaults, e.g. the degradation experiment's warm-up)."""
        changes = {name: value for name, value in training_fields.items() if name in self.defaulted}
        return dataclasses.replace(self, training=dataclasses.replace(self.training, **changes)) if changes else self

    def with_stored_defaults(self, stored):
        """This configuration with the fields left to defaults as `stored` (the configuration of the
        run it continues) has them: a run keeps the defaults it started with, whatever the data or
        the version that chose them. Nothing is left to fit."""
        training = {name: getattr(stored.training, name) for name in ("batch_size", "learning_rate", "warmup_epochs", "freeze_epochs") if name in self.defaulted}
        config = dataclasses.replace(self, training=dataclasses.replace(self.training, **training), defaulted=frozenset())
        if "image_size" in self.defaulted:
            size = stored.data.image_size
            config = dataclasses.replace(
                config,
                model=dataclasses.replace(config.model, input_shape=(size, size, 3)),
                data=dataclasses.replace(config.data, image_size=size),
            )
        return config

    def fit_to_data(self, *, train_examples, picture_side=None, weights_image_size=None, weights_origin=None, replicas=1):
        """This configuration with the fields left to defaults fitted to the dataset and the weights,
        and each default chosen, in words (for the run's first lines). Flags are never changed.

        - image size: a model of ours (`weights_origin` a run or .keras file) dictates its own; published
          weights, the size their accuracy is quoted at (`weights_image_size`); no weights, the
          family's. The last two give way to the data's `picture_side` (the median shorter side of
          its pictures) when that is smaller — upscaling adds no detail and costs time — but not
          below SMALLEST_FITTED_IMAGE_SIZE of the family.
        - batch: the recipe's, halved (not below MIN_FITTED_BATCH) until an epoch has at least
          MIN_STEPS_PER_EPOCH steps, and at most the training split; a multiple of the replicas.
          The learning rate scales with it (linearly, as the recipes do).
        - frozen phase (fine-tuning): at most half the training, in whole epochs.
        - warm-up: at most MAX_WARMUP_SHARE of the training it warms up.

        Args:
            train_examples: The size of the training split.
            picture_side: The median shorter side of the data's pictures in pixels; None: not known.
            weights_image_size: The image size the weights dictate or are quoted at; None: no
                weights, or not known.
            weights_origin: The weights as --weights names them (a published name, a run directory or
                a .keras file); it tells a model of ours from published weights, and is named in the notes.
            replicas: The number of replicas in sync: a fitted batch is a multiple of it.

        Returns:
            A tuple (the fitted RunConfig, a list of the defaults chosen, in words).
        """
        config, notes = self, []
        if "image_size" in self.defaulted:
            size, origin = self.data.image_size, f"the default of {specs.styled(self.model.family)} network"
            if weights_image_size:
                size, origin = weights_image_size, f"from {weights_origin}"
            own_model = weights_image_size and not is_published(weights_origin)
            smallest = SMALLEST_FITTED_IMAGE_SIZE.get(self.model.family, MIN_IMAGE_SIZE)
            if picture_side and picture_side < size and not own_model:
                if picture_side >= smallest:
                    size, origin = picture_side, f"the pictures' median shorter side; {origin} is {size}"
                else:
                    size, origin = smallest, (
                        f"the pictures' median shorter side is {picture_side} px; {specs.styled(self.model.family)} "
                        f"network gets at least {smallest}"
                    )
            notes.append(f"image size {size} ({origin})")
            config = dataclasses.replace(
                config,
                model=dataclasses.replace(config.model, input_shape=(size, size, 3)),
                data=dataclasses.replace(config.data, image_size=size),
            )
        training = config.training
        if "batch_size" in self.defaulted:
            batch = training.batch_size
            while batch // 2 >= MIN_FITTED_BATCH and train_examples // batch < MIN_STEPS_PER_EPOCH:
                batch //= 2
            batch = min(batch, max(train_examples, 1))  # a tiny set: one batch of every picture
            batch = max(replicas, batch - batch % replicas)
            if batch == training.batch_size:
                notes.append(f"batch {batch} (the recipe's)")
            else:
                if train_examples // training.batch_size >= MIN_STEPS_PER_EPOCH and batch < training.batch_size:
                    notes.append(f"batch {batch} (the recipe's {training.batch_size}, rounded to a multiple of {replicas} replicas)")
                else:
                    notes.append(f"batch {batch} (capped from {training.batch_size}: {train_examples} training pictures)")
                changes = {"batch_size": batch}
                if "learning_rate" in self.defaulted:
                    changes["learning_rate"] = training.learning_rate * batch / training.batch_size
                training = dataclasses.replace(training, **changes)
        if "learning_rate" in self.defaulted:
            notes.append(f"learning rate {training.learning_rate:g} (the recipe's, for batch {training.batch_size})")
        steps_per_epoch = max(train_examples // training.batch_size, 1)
        total = training.steps or training.epochs * steps_per_epoch
        if "freeze_epochs" in self.defaulted and training.freeze_epochs:
            # The frozen phase takes at most half the run: the whole network trains the rest.
            longest = total // steps_per_epoch // 2
            if training.freeze_epochs > longest:
                notes.append(f"frozen phase {counted(longest, 'epoch')} (capped from {training.freeze_epochs}: half the training)")
                training = dataclasses.replace(training, freeze_epochs=longest)
            else:
                notes.append(f"frozen phase {counted(training.freeze_epochs, 'epoch')} (the recipe's)")
        if "warmup_epochs" in self.defaulted and training.warmup_epochs:
            tuned_epochs = max(total / steps_per_epoch - training.freeze_epochs, 0)
            longest = float(f"{MAX_WARMUP_SHARE * tuned_epochs:.4g}")
            if training.warmup_epochs > longest:
                notes.append(f"warm-up {counted(longest, 'epoch')} (capped from {training.warmup_epochs:g}: a tenth of the training)")
                training = dataclasses.replace(training, warmup_epochs=longest)
            else:
                notes.append(f"warm-up {counted(training.warmup_epochs, 'epoch')}")
        return dataclasses.replace(config, training=training), notes

    def plan(self, train_examples):
        """The StepPlan for a training split of `train_examples`. Raises UsageError when it holds
        less than one batch."""
        batch_size = self.training.batch_size
        steps_per_epoch = train_examples // batch_size
        if steps_per_epoch < 1:
            raise UsageError(
                f"The training split has {train_examples} examples, fewer than one batch of {batch_size}: lower --batch-size."
            )
        total_steps = self.training.steps or self.training.epochs * steps_per_epoch
        freeze_steps = self.training.freeze_epochs * steps_per_epoch
        if freeze_steps and freeze_steps >= total_steps:
            raise UsageError(
                f"--freeze-epochs {self.training.freeze_epochs} ({freeze_steps} steps) leaves nothing of the "
                f"{total_steps} training steps for the whole network: lower it or train longer."
            )
        # After a frozen phase, the schedule (warm-up, boundaries) runs over the remaining steps.
        tuned_steps = total_steps - freeze_steps
        if self.training.warmup_epochs * steps_per_epoch > tuned_steps:
            raise UsageError(
                f"--warmup-epochs {self.training.warmup_epochs:g} is longer than the training it warms up "
                f"({tuned_steps / steps_per_epoch:g} epochs of {counted(steps_per_epoch, 'step')}): lower it."
            )
        return StepPlan(
            steps_per_epoch=steps_per_epoch,
            total_steps=total_steps,
            epochs=-(-total_steps // steps_per_epoch),  # whole numbers: exact at any length
            warmup_steps=round(self.training.warmup_epochs * steps_per_epoch),
            boundaries=tuple(round(fraction * tuned_steps) for fraction in self.training.step_boundaries),
            freeze_steps=freeze_steps,
        )

    def same_training(self, other, *, ignore_length=False):
        """Whether two configurations describe the same run: everything but where it runs (the
        runtime) and what the dataset adds; with ignore_length (--resume may train longer), also
        regardless of the number of epochs or steps."""

        def essence(config):
            training = config.training
            if ignore_length:
                training = dataclasses.replace(training, epochs=None, steps=None)
            # A file from before the crop was recorded means its family's crop: the same run.
            data = dataclasses.replace(config.data, evaluation_crop=config.data.preprocessing().crop_fraction)
            return (dataclasses.replace(config.model, classes=None), data, training)

        return essence(self) == essence(other)

    # -- config.json --------------------------------------------------------------------------

    def to_json(self):
        """A JSON-ready dict: the sections as objects, tuples as lists."""
        data = dataclasses.asdict(self)
        del data["defaulted"], data["weights_source"]
        return json.loads(json.dumps(data))

    @classmethod
    def from_json(cls, data, *, path="config.json"):
        """A RunConfig from `to_json()`'s dict. Raises ConfigFileError naming `path` and the problem."""
        if not isinstance(data, dict):
            raise ConfigFileError(f"{path} is not a run configuration: it holds a JSON {type(data).__name__}, not an object.")
        sections = {"model": ModelConfig, "data": DataConfig, "training": TrainingConfig, "runtime": RuntimeConfig}
        unknown = sorted(set(data) - set(sections) - {"class_names"})
        if unknown:
            raise ConfigFileError(f"{path} is not a keras_resnet run configuration: unknown section(s) {', '.join(unknown)}.")
        values = {}
        for name, section_class in sections.items():
            if name not in data and name != "runtime":
                raise ConfigFileError(f"{path} is not a keras_resnet run configuration: it has no {name!r} section.")
            values[name] = _section(section_class, data.get(name, {}), f"{path}: {name!r}")
        names = data.get("class_names")
        if names is not None and (not isinstance(names, list) or not all(isinstance(name, str) for name in names)):
            raise ConfigFileError(f"{path}: 'class_names' must be a list of strings.")
        values["class_names"] = None if names is None else tuple(names)
        return cls(**values)

    @classmethod
    def read(cls, path):
        """The RunConfig in the file `path`. Raises ConfigFileError for a missing, unreadable or foreign file."""
        try:
            with open(path, encoding="utf-8") as file:
                data = json.load(file)
        except FileNotFoundError:
            raise ConfigFileError(f"{path} does not exist.") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigFileError(f"Cannot read {path} ({reason(error)}).") from None
        except json.JSONDecodeError as error:
            raise ConfigFileError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}).") from None
        return cls.from_json(data, path=path)


# The valid values of config.json's numeric fields, by field name: (minimum, maximum), None for no
# bound, and a third element False where the maximum itself is not valid. The flags' ranges.
# The one home of every numeric field's range: train.py's flag types (keras_resnet.cli.train),
# resolve() and the config.json reader check and word them from here.
FIELD_RANGES = {
    "classes": Range(int, 1),
    "weight_decay": Range(float, 0, MAX_WEIGHT_DECAY),
    "image_size": Range(int, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE),
    "min_crop_area": Range(float, 0, 1),
    "evaluation_crop": Range(float, preprocessing_lib.MIN_CROP_FRACTION, 1),
    "train_examples": Range(int, 1),
    "validation_examples": Range(int, 1),
    "epochs": Range(int, 1),
    "steps": Range(int, 1),
    "batch_size": Range(int, 1),
    "learning_rate": Range(float, 0, MAX_LEARNING_RATE),
    "warmup_epochs": Range(float, 0),
    "momentum": Range(float, 0, 1),
    "label_smoothing": Range(float, 0, 1, maximum_included=False),
    "seed": ranges.SEED,
    "freeze_epochs": Range(int, 0),
    "cpu_replicas": Range(int, 1, MAX_CPU_REPLICAS),
    "save_every_steps": Range(int, 1),
}
FIELD_CHOICES = {
    "family": tuple(specs.FAMILIES),
    "version": specs.VERSIONS,
    "shortcut": specs.SHORTCUTS,
    "schedule": recipes.SCHEDULES,
    "strategy": STRATEGIES,
    "precision": PRECISIONS,
}


def _section(section_class, data, where):
    if not isinstance(data, dict):
        raise ConfigFileError(f"{where} must be an object.")
    fields = {field.name: field for field in dataclasses.fields(section_class)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigFileError(f"{where} has unknown field(s) {', '.join(unknown)}.")
    missing = [
        name for name, field in fields.items()
        if name not in data and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigFileError(f"{where} lacks {', '.join(missing)}.")
    for name, value in data.items():
        problem = _field_problem(name, value, fields[name].type)
        if problem:
            raise ConfigFileError(f"{where} field {name!r} {problem}. Received: {json.dumps(value)[:80]}.")
    values = {name: tuple(value) if isinstance(value, list) else value for name, value in data.items()}
    return section_class(**values)


def _finite(value):
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _field_problem(name, value, annotation):
    """What is wrong with a field's value (its annotated type, FIELD_RANGES, FIELD_CHOICES), or None."""
    kinds = set(getattr(annotation, "__args__", None) or (annotation,))
    if value is None:
        return None if type(None) in kinds else "must not be null"
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if int in kinds and float not in kinds and not (number and isinstance(value, int)):
        return "must be an integer"
    if float in kinds and not (number and _finite(value)):
        return "must be a finite number"
    if str in kinds and not isinstance(value, str):
        return "must be a string"
    if bool in kinds and not isinstance(value, bool):
        return "must be true or false"
    if tuple in kinds:
        if not isinstance(value, list) or not all(isinstance(item, (int, float, type(None))) and not isinstance(item, bool) for item in value):
            return "must be a list of numbers"
        if name == "input_shape" and (len(value) != 3 or any(item is not None and item < 1 for item in value)):
            return "must be [height, width, channels] of positive sizes"
    problem = FIELD_RANGES[name].problem(value) if name in FIELD_RANGES and number else None
    if problem:
        return problem
    if name in FIELD_CHOICES and value not in FIELD_CHOICES[name]:
        return f"must be one of {', '.join(map(str, FIELD_CHOICES[name]))}"
    return None


def counted(number, noun):
    """'1 epoch', '2 epochs', '0.5 epochs': a number and its noun, for messages."""
    text = f"{number:g}" if isinstance(number, float) else str(number)
    return f"{text} {noun}{'' if number == 1 else 's'}"


def is_published(weights):
    """Whether `weights` (train.py's --weights) names published weights rather than a file or run of ours."""
    return isinstance(weights, str) and (weights == "imagenet" or weights.startswith("timm/"))
