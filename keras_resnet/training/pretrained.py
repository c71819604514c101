"""Where a fine-tuning run starts (train.py --weights), once resolve() has resolved its source
(keras_resnet.run.weights_source): the weights fetched before the run directory is made, loaded with
a classifier kept or new for the dataset, and the backbone frozen or not."""

from keras_resnet import weights as weights_lib
from keras_resnet.errors import UsageError, WeightsDownloadError, WeightsError
from keras_resnet.nets import specs
from keras_resnet.weights import keras_applications, own, torch_checkpoints


def keeps_classifier(source, config):
    """Whether the weights' classifier serves the run's dataset: the same classes (by name where the
    source names them, else by number; ImageNet's 1000 for published weights)."""
    if source.whole_file:
        return True
    if source.class_names is not None:
        return tuple(source.class_names) == tuple(config.class_names)
    if source.own_model:
        return False  # a lone .keras without its run: its classes are unknown
    return config.model.classes == keras_applications.IMAGENET_CLASSES


def load(model, source, config):
    """Loads the run's starting weights into its model, with the classifier kept or new.

    Args:
        model: The Keras model built from `config`.
        source: The keras_resnet.run.weights_source.WeightsSource of train.py's --weights.
        config: The run's RunConfig, its class names included.

    Returns:
        What was done, for the log: "classifier kept" or "classifier new (N classes)".

    Raises:
        WeightsError: The weights do not fit the model or hold values no trained network has.
        WeightsDownloadError: Published weights could not be downloaded (`fetch` downloads them first).
    """
    keep = keeps_classifier(source, config)
    if source.own_model:
        own.load_model_into(model, source.weights, describe=f"model {source.weights}", skip=() if keep else ("predictions",))
        weights_lib.check_values(model, f"model {source.weights}")
    else:
        spec = specs.spec_for_depth(specs.parse_name(config.model.name)[0], family=config.model.family)
        classes = config.model.classes if keep else -1  # -1: never the file's width, always a new classifier
        weights_lib.load(model, source.weights, spec=spec, version=config.model.version, include_top=True, classes=classes)
    classes = len(config.class_names)
    return f"classifier {'kept' if keep else f'new ({classes} classes)'}"


def fetch(source, config):
    """Downloads published weights now (cached), so that an offline machine fails before the run
    directory is made; UsageError saying where to put the file by hand."""
    try:
        if torch_checkpoints.is_hub_name(source.weights):
            torch_checkpoints.download(source.weights)
        elif source.weights == "imagenet":
            depth = specs.parse_name(config.model.name)[0]
            keras_applications.download_imagenet(depth, config.model.version, include_top=keeps_classifier(source, config))
    except (WeightsError, WeightsDownloadError) as error:
        raise UsageError(f"--weights {source.weights}: {error}") from None


def set_backbone_frozen(model, frozen):
    """Everything but the classifier frozen (batch norms then run in inference mode) or trainable."""
    for layer in model.layers:
        if layer.name != "predictions":
            layer.trainable = not frozen
