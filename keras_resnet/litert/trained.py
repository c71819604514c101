"""What a conversion starts from: a trained model rebuilt in float32 by this package's builder, the
arguments that built it, its class names and, when known, the run configuration it was trained with.

Saved models keep the precision policy they trained with (mixed_bfloat16 by default on CPU), so
conversion never uses them directly: it rebuilds the network in float32 with `keras_resnet.ResNet`
and copies the weights. A model built by this package carries its build arguments
(`ResNetModel.build_arguments`); for the files of keras_resnet 0.1.0, which do not, the run
directory's config.json says how to rebuild. Anything else is refused.
"""

import dataclasses
import os

import keras

from keras_resnet.errors import ConversionError
from keras_resnet.nets.builder import ResNetModel, from_build_arguments
from keras_resnet.run import config as config_lib
from keras_resnet.run.directory import RunDirectory
from keras_resnet.run.resolve import for_model
from keras_resnet.runtime import labels as labels_lib, reason
from keras_resnet.runtime import preprocessing as preprocessing_lib


@dataclasses.dataclass
class TrainedModel:
    model: keras.Model  # float32, with the trained weights
    build_arguments: dict  # keras_resnet.ResNet(**build_arguments) rebuilds `model`'s architecture
    class_names: list
    config: config_lib.RunConfig | None  # the data and recipe it trained with; None: no data known
    path: str  # the .keras file
    run: RunDirectory | None
    evaluation_crop: float | None = None  # for a file without its run: the crop it was trained for

    @property
    def name(self):
        return self.build_arguments["name"]

    @property
    def image_size(self):
        return tuple(self.build_arguments["input_shape"][:2])

    @property
    def preprocessing(self):
        """The evaluation transform the model was trained for: its run's, else its family's."""
        if self.config is not None:
            return self.config.data.preprocessing()
        return preprocessing_lib.for_augmentation(self.build_arguments.get("family", "imagenet"), self.evaluation_crop)


def open_trained(*, run=None, model_path=None, dataset=None, data_dir=None, labels=None, batch_size=128, seed=0, evaluation_crop=None):
    """A TrainedModel from a run directory (`run`) or a .keras file (`model_path`). For a .keras file
    outside a run directory, `dataset` names its data (as train.py's --dataset), `labels` a
    labels.txt (without either, classes are named by index) and `evaluation_crop` the evaluation
    transform's crop it was trained for (default: its family's)."""
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

    if run is not None and evaluation_crop is not None:
        raise ConversionError(
            f"--eval-crop is for a .keras file outside its run: {run.path} records the evaluation transform it trained with. Nothing was written."
        )
    saved = _load_keras(model_path)
    if run is not None:
        try:
            config = run.read_config()
        except config_lib.ConfigFileError as error:
            raise ConversionError(str(error)) from None
        if data_dir:
            config = dataclasses.replace(config, data=dataclasses.replace(config.data, data_dir=data_dir))
        arguments = saved.build_arguments if isinstance(saved, ResNetModel) else config.model.build_arguments()
        class_names = list(config.class_names or run.read_labels())
    else:
        if not isinstance(saved, ResNetModel):
            raise ConversionError(
                f"{model_path} was not built by keras_resnet (or by a version before 0.2, which did not record how): "
                "convert models made by train.py or keras_resnet.build, or the run directory it came from."
            )
        arguments = saved.build_arguments
        config = (
            _config_for(dataset, arguments, data_dir=data_dir, batch_size=batch_size, seed=seed, evaluation_crop=evaluation_crop)
            if dataset else None
        )
        class_names = _read_labels(labels, saved.output_shape[-1]) if labels else None
    if not arguments.get("include_top", True):
        raise ConversionError(f"{model_path} has no classification head (built with include_top=False): nothing to classify with.")
    # The same weights and function; only training differs (sync), and the graph LiteRT's GPU
    # accelerator computes int8 models right for (subsampling before strided 1x1 convolutions).
    arguments = {**arguments, "sync_batch_norm": False, "subsampled_pointwise": True}
    arguments.setdefault("classes", len(class_names) if class_names else saved.output_shape[-1])
    if class_names is None:
        class_names = [str(index) for index in range(arguments["classes"])]
    if len(class_names) != saved.output_shape[-1]:
        raise ConversionError(
            f"{model_path} outputs {saved.output_shape[-1]} classes but {len(class_names)} class names were given."
        )
    model = rebuild_float32(saved, arguments, path=model_path)
    return TrainedModel(
        model=model, build_arguments=arguments, class_names=class_names, config=config, path=model_path, run=run,
        evaluation_crop=evaluation_crop,
    )


def rebuild_float32(saved, arguments, *, path):
    """The network of `arguments` built in float32, holding `saved`'s weights; refuses a model whose
    layers differ from what the builder makes of those arguments."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        model = from_build_arguments(arguments)
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


def _structure(model):
    """What must match for two models to share weights: layer names, types and weight shapes (the
    subsampling layers of subsampled_pointwise aside: they change no weight and no output)."""
    return [
        (layer.name, type(layer).__name__, [tuple(weight.shape) for weight in layer.weights])
        for layer in model.layers
        if not (layer.name.endswith("_subsample") and type(layer).__name__ == "MaxPooling2D")
    ]


def _load_keras(path):
    if not path.endswith(".keras"):
        raise ConversionError(f"{path} is not a Keras model file (.keras): pass a train.py run directory or a .keras file.")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # a damaged or foreign file: Keras raises many kinds
        raise ConversionError(f"Cannot load {path} as a Keras model ({type(error).__name__}: {reason(error)}).") from None


def _read_labels(path, classes):
    try:
        with open(path) as file:
            names = labels_lib.names_in(file)
    except OSError as error:
        raise ConversionError(f"Cannot read --labels {path}: {reason(error)}.") from None
    if len(names) != classes:
        raise ConversionError(f"--labels {path} has {len(names)} names but the model has {classes} classes.")
    return names


def _config_for(dataset, arguments, *, data_dir, batch_size, seed, evaluation_crop):
    """The run configuration train.py would have used for this network on `dataset` (its recipe:
    augmentation, learning rate), for a model file without its run directory."""
    try:
        return for_model(
            arguments,
            dataset=dataset,
            data_dir=data_dir,
            eval_crop=evaluation_crop,
            batch_size=batch_size,
            seed=seed,
        )
    except config_lib.UsageError as error:
        raise ConversionError(str(error)) from None
