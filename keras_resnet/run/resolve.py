"""`resolve(...)`: a user's choices (train.py's flags, by the same names) → a complete RunConfig,
filling every default and derived value once: the paper's recipe for the network's family, the
learning rate scaled to the global batch, the schedule and the augmentation. Raises UsageError for
choices that cannot work, saying what was received and what is valid.

It sits above the rest of keras_resnet.run: it asks a checkpoint for its network (timm names,
.safetensors files: keras_resnet.weights.torch_checkpoints) and a run directory for its own.
"""

import math

from keras_resnet.nets import specs
from keras_resnet.errors import UsageError
from keras_resnet.run import directory, recipes
from keras_resnet.run.config import (
    DEFAULT_SAVE_EVERY_STEPS,
    MAX_CPU_REPLICAS,
    MAX_IMAGE_SIZE,
    MAX_LEARNING_RATE,
    MAX_SEED,
    MAX_WEIGHT_DECAY,
    MIN_IMAGE_SIZE,
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


def resolve(
    *,
    model=None,
    depth=None,
    plain=False,
    shortcut=None,
    version=None,
    family=None,
    image_size=None,
    zero_init_residual=False,
    dataset=None,
    data_dir=None,
    eval_crop=None,
    train_examples=None,
    validation_examples=None,
    weights=None,
    freeze_epochs=None,
    epochs=None,
    steps=None,
    batch_size=None,
    lr=None,
    schedule=None,
    warmup_epochs=None,
    weight_decay=None,
    label_smoothing=0.0,
    seed=0,
    save_every_steps=DEFAULT_SAVE_EVERY_STEPS,
    strategy="auto",
    precision="auto",
    jit_compile=False,
    cpu_replicas=1,
    tpu=None,
    data_service=None,
):
    """The RunConfig of the user's choices (train.py's flags, by name); None means the paper's
    default for the network's family, or with `weights` the fine-tuning recipe's
    (recipes.fine_tuning). With `weights`, the version and shortcut stay None unless chosen: the
    weights decide them (keras_resnet.training.pretrained.with_weights_layout, before training).
    Raises UsageError for invalid choices."""
    try:
        if model is None and depth is None and isinstance(weights, str) and weights.startswith("timm/"):
            from keras_resnet.weights import torch_checkpoints  # only when the weights name a checkpoint

            try:
                model = f"resnet{torch_checkpoints.checkpoint(weights).depth}"  # timm/resnet18.a1_in1k: a resnet18
            except ValueError as error:
                raise UsageError(f"--weights: {error}") from None
        if model is None and depth is None and isinstance(weights, str) and weights.endswith(".safetensors"):
            from keras_resnet.weights import torch_checkpoints

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
        name = model or f"{'plain' if plain else 'resnet'}{depth}"
        name_depth, name_plain, name_version = specs.parse_name(name)
        if depth is not None and model is not None and depth != name_depth:
            raise UsageError(f"--depth {depth} contradicts --model {model}.")
        if plain and not name_plain:
            name = name.replace("resnet", "plain", 1)
        if name_version and version and name_version != version:
            raise UsageError(f"--version {version} contradicts --model {model}.")
        version = version or name_version or (None if weights else "v1.5")
        spec = specs.spec_for_depth(name_depth, family=family)
    except UsageError:
        raise
    except ValueError as error:
        raise UsageError(str(error)) from None
    name = name.lower().removesuffix(name_version or "")
    base = recipes.RECIPES[spec.family.name]
    if weights:
        base = recipes.fine_tuning(base)
    schedule = schedule or base.schedule

    _check_choice("--schedule", schedule, recipes.SCHEDULES)
    if version is not None:
        _check_choice("--version", version, specs.VERSIONS)
    _check_choice("--strategy", strategy, STRATEGIES)
    _check_choice("--precision", precision, PRECISIONS)
    shortcut = shortcut.upper() if shortcut else None if weights else spec.family.shortcut
    if shortcut is not None:
        _check_choice("--shortcut", shortcut, specs.SHORTCUTS)
    _check(freeze_epochs is None or weights, "--freeze-epochs freezes a pretrained backbone: it needs --weights.")
    chosen = {
        "batch_size": batch_size, "learning_rate": lr, "warmup_epochs": warmup_epochs, "image_size": image_size,
        "freeze_epochs": freeze_epochs if weights else 0,
    }
    freeze_epochs = (recipes.FREEZE_EPOCHS if weights else 0) if freeze_epochs is None else freeze_epochs
    _check(freeze_epochs >= 0, f"--freeze-epochs must be at least 0. Received: {freeze_epochs}.")
    _check(weights != "", "--weights needs a value: imagenet, timm/NAME or a path.")
    _check(epochs is None or steps is None, "Pass --epochs or --steps, not both.")
    for flag, value in (("--epochs", epochs), ("--steps", steps), ("--batch-size", batch_size),
                        ("--save-every-steps", save_every_steps), ("--cpu-replicas", cpu_replicas),
                        ("--train-examples", train_examples), ("--validation-examples", validation_examples)):
        _check(value is None or value >= 1, f"{flag} must be at least 1. Received: {value}.")
    _check(
        image_size is None or MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE,
        f"--image-size must be from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}. Received: {image_size}.",
    )
    _check(cpu_replicas <= MAX_CPU_REPLICAS, f"--cpu-replicas must be at most {MAX_CPU_REPLICAS}. Received: {cpu_replicas}.")
    _check(0 <= seed <= MAX_SEED, f"--seed must be from 0 to {MAX_SEED}. Received: {seed}.")
    for flag, value in (("--lr", lr), ("--weight-decay", weight_decay), ("--warmup-epochs", warmup_epochs)):
        _check(value is None or (math.isfinite(value) and value >= 0), f"{flag} must be a number >= 0. Received: {value}.")
    _check(lr is None or lr <= MAX_LEARNING_RATE, f"--lr must be at most {MAX_LEARNING_RATE:g}. Received: {lr}.")
    _check(weight_decay is None or weight_decay <= MAX_WEIGHT_DECAY, f"--weight-decay must be at most {MAX_WEIGHT_DECAY:g}. Received: {weight_decay}.")
    _check(0 <= label_smoothing < 1, f"--label-smoothing must be in [0, 1). Received: {label_smoothing}.")
    _check(dataset != "folder:", "--dataset folder:PATH needs a path after 'folder:'.")
    if data_service is not None:
        from keras_resnet.data import service

        try:
            data_service = str(service.Address.parse(data_service))
        except service.ServiceError as error:
            raise UsageError(str(error)) from None
    _check(dataset != "tfrecord:", "--dataset tfrecord:PATTERN needs a glob of the training shards after 'tfrecord:' (e.g. tfrecord:/data/imagenet/train-*).")
    _check(
        eval_crop is None or preprocessing_lib.MIN_CROP_FRACTION <= eval_crop <= 1,
        f"--eval-crop must be from {preprocessing_lib.MIN_CROP_FRACTION} to 1. Received: {eval_crop}.",
    )

    dataset = dataset or "synthetic"
    synthetic = dataset == "synthetic"
    defaulted = frozenset(name for name, value in chosen.items() if value is None)
    if epochs is None and steps is None:
        epochs, steps = (recipes.SYNTHETIC_EPOCHS, None) if synthetic else (base.epochs, base.steps)
    batch_size = batch_size or base.batch_size
    if warmup_epochs is None:
        warmup_epochs = recipes.COSINE_WARMUP_EPOCHS if schedule == "cosine" and not weights else 0
    image_size = image_size or spec.family.input_size
    return RunConfig(
        model=ModelConfig(
            name=name,
            family=spec.family.name,
            version=version,
            shortcut=shortcut,
            input_shape=(image_size, image_size, 3),
            zero_init_residual=zero_init_residual,
            weight_decay=base.weight_decay if weight_decay is None else weight_decay,
        ),
        data=DataConfig(
            dataset=dataset,
            data_dir=data_dir,
            image_size=image_size,
            augmentation=base.augmentation,
            min_crop_area=recipes.SYNTHETIC_MIN_CROP_AREA if synthetic else base.min_crop_area,
            evaluation_crop=preprocessing_lib.for_augmentation(base.augmentation, eval_crop).crop_fraction,
            train_examples=train_examples,
            validation_examples=validation_examples,
        ),
        training=TrainingConfig(
            epochs=epochs,
            steps=steps,
            batch_size=batch_size,
            learning_rate=lr if lr is not None else base.scaled_learning_rate(batch_size),
            schedule=schedule,
            step_boundaries=tuple(base.step_boundaries),
            warmup_epochs=warmup_epochs,
            momentum=base.momentum,
            label_smoothing=label_smoothing,
            seed=seed,
            weights=weights,
            freeze_epochs=freeze_epochs,
        ),
        runtime=RuntimeConfig(
            strategy=strategy,
            precision=precision,
            jit_compile=jit_compile,
            cpu_replicas=cpu_replicas,
            tpu=tpu,
            save_every_steps=save_every_steps,
            data_service=data_service,
        ),
        defaulted=defaulted,
    )


def _check(condition, message):
    if not condition:
        raise UsageError(message)


def _check_choice(flag, value, valid):
    _check(value in valid, f"Unknown {flag} {value!r}. Valid: {', '.join(map(str, valid))}.")
