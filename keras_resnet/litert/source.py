"""What a conversion starts from: a float32 Keras model rebuilt by this package's builder, the
arguments that built it, its class names and, when known, the data it was trained on.

Saved models keep the precision policy they trained with (mixed_bfloat16 by default on CPU), so
conversion never uses them directly: it rebuilds the network in float32 with `keras_resnet.build`
and copies the weights. A run directory says how to rebuild (config.json); a lone .keras file is
read back into builder arguments from its layers, and a file this package did not build is refused.
"""

import dataclasses
import os

import keras
import numpy as np

import keras_resnet
from keras_resnet import normalization, specs
from keras_resnet.training.run_dir import RunDirectory


class ConversionError(ValueError):
    """Bad input for a conversion: a path, a file, a flag. Exit code 2."""


@dataclasses.dataclass
class Source:
    model: keras.Model  # float32, with the trained weights
    build_arguments: dict  # keras_resnet.build(**build_arguments) rebuilds `model`'s architecture
    class_names: list
    data: dict | None  # dataset, image_size, augmentation, batch_size, seed, …; None: no data known
    path: str  # the .keras file
    run: RunDirectory | None

    @property
    def name(self):
        return self.build_arguments["name"]

    @property
    def image_size(self):
        return tuple(self.build_arguments["input_shape"][:2])


def open_source(*, run=None, model_path=None, dataset=None, data_dir=None, labels=None, batch_size=128, seed=0):
    """A Source from a run directory (`run`) or a .keras file (`model_path`). For a .keras file
    outside a run directory, `dataset` names its data (as train.py's --dataset) and `labels` a
    labels.txt; without either, classes are named by index."""
    if (run is None) == (model_path is None):
        raise ConversionError("Name what to convert: --run RUN_DIR or --model FILE.keras (one of them).")
    if run is not None:
        run = RunDirectory(run)
        if not os.path.isdir(run.path):
            raise ConversionError(f"No such run directory: {run.path}.")
        if not os.path.exists(run.config):
            raise ConversionError(f"{run.path} is not a run directory (no config.json): pass a train.py output.")
        model_path = run.best_model if os.path.exists(run.best_model) else run.last_model
        if not os.path.exists(model_path):
            raise ConversionError(f"Run directory {run.path} holds no model yet (best.keras or last.keras): train first.")
    else:
        if not os.path.isfile(model_path):
            raise ConversionError(f"No such model file: {model_path}.")
        beside = RunDirectory(os.path.dirname(os.path.abspath(model_path)))
        run = beside if os.path.exists(beside.config) and dataset is None else None

    saved = _load_keras(model_path)
    if run is not None:
        config = run.read_config()
        arguments = dict(config["model"])
        class_names = config.get("class_names") or run.read_labels()
        training = config["training"]
        data = {
            **config["data"],
            "batch_size": training["batch_size"],
            "seed": training["seed"],
            "learning_rate": training["learning_rate"],
        }
        if data_dir:
            data["data_dir"] = data_dir
    else:
        arguments = builder_arguments(saved, path=model_path)
        class_names = _read_labels(labels, arguments["classes"]) if labels else None
        data = _data_for(dataset, arguments, data_dir=data_dir, batch_size=batch_size, seed=seed) if dataset else None
    arguments.setdefault("classes", len(class_names) if class_names else saved.output_shape[-1])
    if class_names is None:
        class_names = [str(index) for index in range(arguments["classes"])]
    if len(class_names) != saved.output_shape[-1]:
        raise ConversionError(
            f"{model_path} outputs {saved.output_shape[-1]} classes but {len(class_names)} class names were given."
        )
    model = rebuild_float32(saved, arguments, path=model_path)
    return Source(model=model, build_arguments=arguments, class_names=list(class_names), data=data, path=model_path, run=run)


def rebuild_float32(saved, arguments, *, path):
    """The network of `arguments` built in float32, holding `saved`'s weights; refuses a model whose
    layers differ from what the builder makes of those arguments."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        model = keras_resnet.build(**arguments)
    except ValueError as error:
        raise ConversionError(f"{path}: cannot rebuild its network ({error}).") from None
    finally:
        keras.config.set_dtype_policy(previous)
    if _structure(model) != _structure(saved):
        raise ConversionError(
            f"{path} was not built by keras_resnet (its layers differ from {arguments['name']}'s): "
            "convert models made by train.py or keras_resnet.build."
        )
    model.set_weights(saved.get_weights())
    return model


def builder_arguments(model, *, path):
    """keras_resnet.build arguments read back from a model's layers (a .keras file without its run
    directory). Raises ConversionError for models this package did not build."""
    foreign = ConversionError(
        f"{path} was not built by keras_resnet (model {model.name!r}): convert models made by train.py or keras_resnet.build."
    )
    try:
        depth, plain, _ = specs.parse_name(model.name)
    except ValueError:
        raise foreign from None
    names = {layer.name: layer for layer in model.layers}
    if "stem_conv" not in names:
        raise foreign
    if "predictions" not in names:
        raise ConversionError(f"{path} has no classification head (built with include_top=False): nothing to classify with.")
    family = "imagenet" if "stem_pool" in names else "cifar"
    strided = [
        name for name, layer in names.items()
        if name.startswith("stage") and "_conv" in name and "shortcut" not in name and tuple(getattr(layer, "strides", (1, 1))) != (1, 1)
    ]
    version = "v2" if "post_bn" in names else ("v1" if any(name.endswith("_conv1") for name in strided) else "v1.5")
    downsample_block = "first" if not strided or any("_block1_" in name for name in strided) else "last"
    if any(name.endswith("_shortcut_pad") for name in names):
        shortcut = "A"
    elif sum(name.endswith("_shortcut_conv") for name in names) == sum(name.endswith("_conv1") and name.startswith("stage") and "shortcut" not in name for name in names):
        shortcut = "C"
    else:
        shortcut = "B"
    batch_norm = next((layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)), None)
    stem = names.get("stem_conv")
    predictions = names["predictions"]
    arguments = {
        "name": model.name,
        "family": family,
        "version": version,
        "shortcut": shortcut if not plain else None,
        "input_shape": list(model.input_shape[1:]),
        "classes": predictions.units,
        "classifier_activation": keras.activations.serialize(predictions.activation),
        "downsample_block": downsample_block,
        "conv_bias": bool(stem.use_bias) if stem is not None else False,
        "include_preprocessing": "normalize" in names,
    }
    if arguments["shortcut"] is None:
        del arguments["shortcut"]
    if isinstance(arguments["classifier_activation"], dict):
        arguments["classifier_activation"] = arguments["classifier_activation"].get("config", {}).get("name", "softmax")
    if batch_norm is not None:
        arguments["bn_epsilon"] = batch_norm.epsilon
        arguments["bn_momentum"] = batch_norm.momentum
    if "normalize" in names:
        arguments["input_normalization"] = _normalization_style(names["normalize"], foreign)
    if depth not in (18, 34, 50, 101, 152, 200) and family == "imagenet":
        raise foreign
    return arguments


def _normalization_style(layer, foreign):
    scale = np.broadcast_to(np.asarray(layer.scale, np.float32).reshape(-1), 3)
    offset = np.broadcast_to(np.asarray(layer.offset, np.float32).reshape(-1), 3)
    for style, (style_scale, style_offset) in normalization.STYLES.items():
        if np.allclose(scale, style_scale, rtol=1e-6) and np.allclose(offset, style_offset, rtol=1e-6):
            return style
    raise foreign


def _structure(model):
    """What must match for two models to share weights: layer names, types and weight shapes."""
    return [
        (layer.name, type(layer).__name__, [tuple(weight.shape) for weight in layer.weights])
        for layer in model.layers
    ]


def _load_keras(path):
    if not path.endswith(".keras"):
        raise ConversionError(f"{path} is not a Keras model file (.keras): pass a train.py run directory or a .keras file.")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # a damaged or foreign file: Keras raises many kinds
        raise ConversionError(f"Cannot load {path} as a Keras model ({type(error).__name__}: {str(error)[:200]}).") from None


def _read_labels(path, classes):
    try:
        with open(path) as file:
            names = [line.strip() for line in file if line.strip()]
    except OSError as error:
        raise ConversionError(f"Cannot read --labels {path}: {error.strerror}.") from None
    if len(names) != classes:
        raise ConversionError(f"--labels {path} has {len(names)} names but the model has {classes} classes.")
    return names


def _data_for(dataset, arguments, *, data_dir, batch_size, seed):
    from keras_resnet.training import recipe

    family = arguments["family"]
    synthetic = dataset == "synthetic"
    return {
        "dataset": dataset,
        "data_dir": data_dir,
        "image_size": arguments["input_shape"][0],
        "augmentation": recipe.RECIPES[family].augmentation,
        "min_crop_area": recipe.SYNTHETIC_MIN_CROP_AREA if synthetic else recipe.RECIPES[family].min_crop_area,
        "train_examples": None,
        "validation_examples": None,
        "batch_size": batch_size,
        "seed": seed,
        "learning_rate": recipe.RECIPES[family].learning_rate * batch_size / recipe.RECIPES[family].reference_batch,
    }
