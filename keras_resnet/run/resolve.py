"""`resolve(...)`: a user's choices (train.py's flags, by the same names) → a complete RunConfig,
filling every default and derived value once: the paper's recipe for the network's family, the
learning rate scaled to the global batch, the schedule and the augmentation, and with --weights the
layout the weights dictate (keras_resnet.run.weights_source). Raises UsageError for choices that
cannot work, saying what was received and what is valid. Only the defaults that depend on the data
(batch size, image size, warm-up, frozen phase: RunConfig.fit_to_data) wait until the data is open.

It sits above the rest of keras_resnet.run: it asks a checkpoint for its network (timm names,
.safetensors files: keras_resnet.weights.torch_checkpoints) and a run directory for its own.
"""

import dataclasses

from keras_resnet.errors import UsageError
from keras_resnet.nets import specs
from keras_resnet.run import directory, recipes, weights_source
from keras_resnet.run.config import (
    DEFAULT_SAVE_EVERY_STEPS,
    FIELD_RANGES,
    LAYOUT_FIELDS,
    PRECISIONS,
    STRATEGIES,
    DataConfig,
    ModelConfig,
    RunConfig,
    RuntimeConfig,
    TrainingConfig,
    is_published,
)
from keras_resnet.runtime import preprocessing as preprocessing_lib
from keras_resnet.weights import torch_checkpoints


# train.py's flag of each field whose name differs from it (--image-size is image_size).
FLAGS = {"learning_rate": "lr", "evaluation_crop": "eval-crop"}


@dataclasses.dataclass(frozen=True)
class Choices:
    """A user's choices: train.py's flags, under the same names (`lr` is --lr). None leaves the value
    to resolve(): the paper's default for the network's family, or with `weights` the fine-tuning
    recipe's and the layout the weights dictate."""

    # The network.
    model: str | None = None  # a name: resnet50, plain56, resnet50v1.5
    depth: int | None = None
    plain: bool = False
    shortcut: str | None = None  # A, B or C
    version: str | None = None  # v1, v1.5, v2
    family: str | None = None  # imagenet or cifar (CIFAR-style depths 6n+2 otherwise)
    image_size: int | None = None
    zero_init_residual: bool = False
    # The data.
    dataset: str | None = None  # synthetic, a TFDS name, folder:PATH, tfrecord:GLOB
    data_dir: str | None = None
    eval_crop: float | None = None
    train_examples: int | None = None
    validation_examples: int | None = None
    data_service: str | None = None  # a tf.data service dispatcher, grpc://HOST:PORT
    # Training.
    weights: str | None = None  # imagenet, timm/NAME, a .safetensors file, a run or model of ours
    freeze_epochs: int | None = None
    epochs: int | None = None
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    schedule: str | None = None
    warmup_epochs: float | None = None
    weight_decay: float | None = None
    label_smoothing: float = 0.0
    seed: int = 0
    # Where and how it runs.
    save_every_steps: int = DEFAULT_SAVE_EVERY_STEPS
    strategy: str = "auto"
    precision: str = "auto"
    jit_compile: bool = False
    cpu_replicas: int = 1
    tpu: str | None = None


def resolve(choices=None, *, output=None, **flags):
    """The complete RunConfig of a user's choices.

    Args:
        choices: a Choices; or its fields as keyword arguments (`flags`), e.g.
            `resolve(depth=20, dataset="cifar10")`.
        output: the run directory, when known: a run there that already started keeps the layout it
            recorded (weights_source.with_weights).

    Returns:
        A RunConfig with every default filled but those that depend on the data
        (RunConfig.fit_to_data), and with `weights` their source resolved.

    Raises:
        UsageError: choices that cannot work, saying what was received and what is valid.
    """
    if choices is None:
        choices = Choices(**flags)
    elif flags:
        raise TypeError(f"resolve() takes a Choices or its fields as keywords, not both. Received: {', '.join(flags)}.")
    name, spec, version = _network(choices)
    weights = choices.weights
    base = recipes.RECIPES[spec.family.name]
    if weights:
        base = recipes.fine_tuning(base)
    schedule = choices.schedule or base.schedule
    _check_choice("--schedule", schedule, recipes.SCHEDULES)
    _check_choice("--strategy", choices.strategy, STRATEGIES)
    _check_choice("--precision", choices.precision, PRECISIONS)
    shortcut = choices.shortcut.upper() if choices.shortcut else None if weights else spec.family.shortcut
    if shortcut is not None:
        _check_choice("--shortcut", shortcut, specs.SHORTCUTS)
    _check(choices.freeze_epochs is None or weights, "--freeze-epochs freezes a pretrained backbone: it needs --weights.")
    _check(weights != "", "--weights needs a value: imagenet, timm/NAME or a path.")
    _check(choices.epochs is None or choices.steps is None, "Pass --epochs or --steps, not both.")
    freeze_epochs = (recipes.FREEZE_EPOCHS if weights else 0) if choices.freeze_epochs is None else choices.freeze_epochs
    _check_ranges(choices, freeze_epochs=freeze_epochs)
    data_service = _data_service(choices)

    dataset = choices.dataset or "synthetic"
    synthetic = dataset == "synthetic"
    chosen = {
        "batch_size": choices.batch_size, "learning_rate": choices.lr, "warmup_epochs": choices.warmup_epochs,
        "image_size": choices.image_size, "freeze_epochs": choices.freeze_epochs if weights else 0,
    }
    epochs, steps = choices.epochs, choices.steps
    if epochs is None and steps is None:
        epochs, steps = (recipes.SYNTHETIC_EPOCHS, None) if synthetic else (base.epochs, base.steps)
    batch_size = choices.batch_size or base.batch_size
    warmup_epochs = choices.warmup_epochs
    if warmup_epochs is None:
        warmup_epochs = recipes.COSINE_WARMUP_EPOCHS if schedule == "cosine" and not weights else 0
    image_size = choices.image_size or spec.family.input_size
    config = RunConfig(
        model=ModelConfig(
            name=name,
            family=spec.family.name,
            version=version,
            shortcut=shortcut,
            input_shape=(image_size, image_size, 3),
            zero_init_residual=choices.zero_init_residual,
            weight_decay=base.weight_decay if choices.weight_decay is None else choices.weight_decay,
        ),
        data=DataConfig(
            dataset=dataset,
            data_dir=choices.data_dir,
            image_size=image_size,
            augmentation=base.augmentation,
            min_crop_area=recipes.SYNTHETIC_MIN_CROP_AREA if synthetic else base.min_crop_area,
            evaluation_crop=preprocessing_lib.for_augmentation(base.augmentation, choices.eval_crop).crop_fraction,
            train_examples=choices.train_examples,
            validation_examples=choices.validation_examples,
        ),
        training=TrainingConfig(
            epochs=epochs,
            steps=steps,
            batch_size=batch_size,
            learning_rate=choices.lr if choices.lr is not None else base.scaled_learning_rate(batch_size),
            schedule=schedule,
            step_boundaries=tuple(base.step_boundaries),
            warmup_epochs=warmup_epochs,
            momentum=base.momentum,
            label_smoothing=choices.label_smoothing,
            seed=choices.seed,
            weights=weights,
            freeze_epochs=freeze_epochs,
        ),
        runtime=RuntimeConfig(
            strategy=choices.strategy,
            precision=choices.precision,
            jit_compile=choices.jit_compile,
            cpu_replicas=choices.cpu_replicas,
            tpu=choices.tpu,
            save_every_steps=choices.save_every_steps,
            data_service=data_service,
        ),
        defaulted=frozenset(field for field, value in chosen.items() if value is None),
    )
    # The version and shortcut left None above are the weights' to decide.
    return weights_source.with_weights(config, output=output) if weights else config


def _network(choices):
    """(name, ArchitectureSpec, version) of the chosen network: from --model or --depth (and
    --plain), or the network the weights name (a timm checkpoint, a .safetensors file, a run or
    model of ours). The version stays None where the weights decide it."""
    model, depth, family, weights = choices.model, choices.depth, choices.family, choices.weights
    try:
        if model is None and depth is None and isinstance(weights, str) and weights.startswith("timm/"):
            try:
                model = f"resnet{torch_checkpoints.checkpoint(weights).depth}"  # timm/resnet18.a1_in1k: a resnet18
            except ValueError as error:
                raise UsageError(f"--weights: {error}") from None
        if model is None and depth is None and isinstance(weights, str) and weights.endswith(".safetensors"):
            try:
                model = f"resnet{torch_checkpoints.depth_of_file(weights)}"  # the file's keys name its blocks
            except ValueError as error:
                raise UsageError(f"--weights {weights}: {error}") from None
        if model is None and depth is None and weights and not is_published(weights):
            own = directory.own_model(weights)  # a run or .keras of ours names its network
            if own is not None:
                model, family = own.network, family or own.build_arguments.get("family")
        if model is None and depth is None:
            raise UsageError(
                "Name a network: --depth D or --model NAME (e.g. --depth 20, --model plain56), or --weights "
                "with a run directory or .keras model of ours, or timm/NAME."
            )
        name = model or f"{'plain' if choices.plain else 'resnet'}{depth}"
        name_depth, name_plain, name_version = specs.parse_name(name)
        if depth is not None and model is not None and depth != name_depth:
            raise UsageError(f"--depth {depth} contradicts --model {model}.")
        if choices.plain and not name_plain:
            name = name.replace("resnet", "plain", 1)
        if name_version and choices.version and name_version != choices.version:
            raise UsageError(f"--version {choices.version} contradicts --model {model}.")
        version = choices.version or name_version or (None if weights else specs.LAYOUT_DEFAULTS["version"])
        spec = specs.spec_for_depth(name_depth, family=family)
    except UsageError:
        raise
    except ValueError as error:
        raise UsageError(str(error)) from None
    if version is not None:
        _check_choice("--version", version, specs.VERSIONS)
    return name.lower().removesuffix(name_version or ""), spec, version


def _check_ranges(choices, *, freeze_epochs):
    """Each numeric choice against its field's range (config.FIELD_RANGES: argparse checked them
    already when they came from train.py's command line; here for every other caller)."""
    for field, value in (
        ("epochs", choices.epochs), ("steps", choices.steps), ("batch_size", choices.batch_size),
        ("save_every_steps", choices.save_every_steps), ("cpu_replicas", choices.cpu_replicas),
        ("train_examples", choices.train_examples), ("validation_examples", choices.validation_examples),
        ("image_size", choices.image_size), ("seed", choices.seed), ("learning_rate", choices.lr),
        ("weight_decay", choices.weight_decay), ("warmup_epochs", choices.warmup_epochs),
        ("label_smoothing", choices.label_smoothing), ("freeze_epochs", freeze_epochs), ("evaluation_crop", choices.eval_crop),
    ):
        problem = None if value is None else FIELD_RANGES[field].problem(value)
        _check(problem is None, f"--{FLAGS.get(field, field.replace('_', '-'))} {problem}. Received: {value}.")


def _data_service(choices):
    """The dataset's form and the tf.data service's address, normalised (None without one)."""
    _check(choices.dataset != "folder:", "--dataset folder:PATH needs a path after 'folder:'.")
    _check(
        choices.dataset != "tfrecord:",
        "--dataset tfrecord:PATTERN needs a glob of the training shards after 'tfrecord:' (e.g. tfrecord:/data/imagenet/train-*).",
    )
    if choices.data_service is None:
        return None
    from keras_resnet.data import service

    try:
        return str(service.Address.parse(choices.data_service))
    except service.ServiceError as error:
        raise UsageError(str(error)) from None


def for_model(build_arguments, **choices):
    """The RunConfig train.py would have used for a model of ours that comes without its run
    directory (a lone .keras file): its network and its whole layout from its build arguments, the
    recipe and the rest from `choices` (resolve's other parameters: dataset, batch_size, …)."""
    input_size = (build_arguments.get("input_shape") or [None])[0]
    config = resolve(
        depth=build_arguments["depth"],
        plain=bool(build_arguments.get("plain")),
        family=build_arguments.get("family"),
        version=build_arguments.get("version"),
        shortcut=build_arguments.get("shortcut"),
        image_size=input_size if isinstance(input_size, int) else None,
        **choices,
    )
    return config.with_model(**{field: build_arguments[field] for field in LAYOUT_FIELDS if field in build_arguments})


def _check(condition, message):
    if not condition:
        raise UsageError(message)


def _check_choice(flag, value, valid):
    _check(value in valid, f"Unknown {flag} {value!r}. Valid: {', '.join(map(str, valid))}.")
