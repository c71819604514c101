"""`resolve(...)`: a user's choices (train.py's flags, by the same names) → a complete RunConfig,
filling every default and derived value once: the paper's recipe for the network's family, the
learning rate scaled to the global batch, the schedule and the augmentation, and with --weights the
layout the weights dictate (keras_resnet.run.weights_source). Raises UsageError for choices that
cannot work, saying what was received and what is valid. Only the defaults that depend on the data
(batch size, image size, warm-up, frozen phase: RunConfig.fit_to_data) wait until the data is open.

It sits above the rest of keras_resnet.run: it asks a checkpoint for its network (timm names,
.safetensors files: keras_resnet.weights.torch_checkpoints) and a run directory for its own.
"""

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
    output=None,
):
    """The RunConfig of the user's choices (train.py's flags, by name); None means the paper's
    default for the network's family, or with `weights` the fine-tuning recipe's
    (recipes.fine_tuning) and the layout the weights dictate — a run in `output` that already
    started keeps the layout it recorded (weights_source.with_weights). Raises UsageError for
    invalid choices."""
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
        name = model or f"{'plain' if plain else 'resnet'}{depth}"
        name_depth, name_plain, name_version = specs.parse_name(name)
        if depth is not None and model is not None and depth != name_depth:
            raise UsageError(f"--depth {depth} contradicts --model {model}.")
        if plain and not name_plain:
            name = name.replace("resnet", "plain", 1)
        if name_version and version and name_version != version:
            raise UsageError(f"--version {version} contradicts --model {model}.")
        version = version or name_version or (None if weights else specs.LAYOUT_DEFAULTS["version"])
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
    _check(weights != "", "--weights needs a value: imagenet, timm/NAME or a path.")
    _check(epochs is None or steps is None, "Pass --epochs or --steps, not both.")
    # Each flag against its field's range (config.FIELD_RANGES: argparse checked them already when
    # they came from train.py's command line; here for every other caller).
    for field, value in (
        ("epochs", epochs), ("steps", steps), ("batch_size", batch_size), ("save_every_steps", save_every_steps),
        ("cpu_replicas", cpu_replicas), ("train_examples", train_examples), ("validation_examples", validation_examples),
        ("image_size", image_size), ("seed", seed), ("learning_rate", lr), ("weight_decay", weight_decay),
        ("warmup_epochs", warmup_epochs), ("label_smoothing", label_smoothing), ("freeze_epochs", freeze_epochs),
        ("evaluation_crop", eval_crop),
    ):
        problem = None if value is None else FIELD_RANGES[field].problem(value)
        _check(problem is None, f"--{FLAGS.get(field, field.replace('_', '-'))} {problem}. Received: {value}.")
    _check(dataset != "folder:", "--dataset folder:PATH needs a path after 'folder:'.")
    if data_service is not None:
        from keras_resnet.data import service

        try:
            data_service = str(service.Address.parse(data_service))
        except service.ServiceError as error:
            raise UsageError(str(error)) from None
    _check(dataset != "tfrecord:", "--dataset tfrecord:PATTERN needs a glob of the training shards after 'tfrecord:' (e.g. tfrecord:/data/imagenet/train-*).")

    dataset = dataset or "synthetic"
    synthetic = dataset == "synthetic"
    defaulted = frozenset(name for name, value in chosen.items() if value is None)
    if epochs is None and steps is None:
        epochs, steps = (recipes.SYNTHETIC_EPOCHS, None) if synthetic else (base.epochs, base.steps)
    batch_size = batch_size or base.batch_size
    if warmup_epochs is None:
        warmup_epochs = recipes.COSINE_WARMUP_EPOCHS if schedule == "cosine" and not weights else 0
    image_size = image_size or spec.family.input_size
    config = RunConfig(
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
    # The version and shortcut left None above are the weights' to decide.
    return weights_source.with_weights(config, output=output) if weights else config


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
