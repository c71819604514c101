"""Every ResNet of "Deep Residual Learning for Image Recognition" (He et al., 2016) in Keras 3.

>>> import keras_resnet
>>> model = keras_resnet.build("resnet20", classes=10)
>>> model = keras_resnet.build("plain56", classes=10)   # the same network without shortcuts

`import keras_resnet` imports neither TensorFlow nor Keras: the names below load them (quietly) when
first used (PEP 562), so the TensorFlow-free parts — keras_resnet.runtime on a board, the
command-line help — stay light. The classes that saved models name (ResNetModel, ChannelZeroPad,
StepDecay) are registered with Keras as soon as Keras is imported, before or after this package,
so `keras.saving.load_model("best.keras")` works in safe mode without custom objects.
"""

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.2.0"

# Public name → the module that defines it.
_EXPORTS = {
    "ChannelZeroPad": "keras_resnet.nets.layers",
    "ResNet": "keras_resnet.nets.builder",
    "ResNetModel": "keras_resnet.nets.builder",
    "build": "keras_resnet.nets.builder",
    "count_macs": "keras_resnet.nets.complexity",
    "count_parameters": "keras_resnet.nets.complexity",
    "normalize": "keras_resnet.nets.normalization",
    "WeightsDownloadError": "keras_resnet.errors",
    "WeightsError": "keras_resnet.errors",
    "model_names": "keras_resnet.nets.specs",
    "parse_name": "keras_resnet.nets.specs",
    "spec_for_depth": "keras_resnet.nets.specs",
}
# The modules among them that need no TensorFlow.
_WITHOUT_TENSORFLOW = {"keras_resnet.nets.specs", "keras_resnet.nets.normalization", "keras_resnet.errors"}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module_name = _EXPORTS.get(name)
    if module_name is None:
        try:
            return importlib.import_module(f"{__name__}.{name}")  # a submodule: keras_resnet.nets.builder, …
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    if module_name not in _WITHOUT_TENSORFLOW:
        register_keras_objects()
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # looked up once
    return value


def __dir__():
    return sorted({*globals(), *_EXPORTS})


_registration = "not yet"  # then "under way", then "done"


def register_keras_objects():
    """Imports TensorFlow quietly and registers this package's serializable Keras classes.
    Idempotent; runs by itself when Keras is imported or a Keras-backed name is used."""
    global _registration
    # Under way already: this call comes from the Keras import that registering itself started
    # (keras_resnet.nets.layers imports Keras), and the outer call finishes the work.
    if _registration != "not yet":
        return
    _registration = "under way"
    try:
        from keras_resnet.quiet import import_tensorflow_quietly

        import_tensorflow_quietly()
        from keras_resnet.nets import builder, layers  # noqa: F401  (registers ResNetModel, ChannelZeroPad)
        from keras_resnet.training import schedules  # noqa: F401  (registers StepDecay)

        # Loading a saved model needs the recursion depth that building it needed: allow up to ResNet-1202.
        builder.allow_graph_depth(layers=5000)
    except BaseException:
        _registration = "not yet"
        raise
    _registration = "done"


class _RegisterWhenKerasIsImported(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when Keras is imported, it wraps Keras' own loader so that this
    package's classes are registered right after Keras has finished loading. (TensorFlow looks
    Keras up without importing it, so the finder stays until Keras is really loaded.)"""

    searching = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras" or self.searching:
            return None
        self.searching = True  # the search below must pass this finder by
        try:
            spec = importlib.util.find_spec("keras")
        finally:
            self.searching = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            register_keras_objects()

        spec.loader.exec_module = exec_module
        return spec


if sys.modules.get("keras") is not None:
    register_keras_objects()
elif "keras" in sys.modules:
    pass  # sys.modules["keras"] = None: the host program forbids Keras (the TensorFlow-free parts still work)
elif not any(isinstance(finder, _RegisterWhenKerasIsImported) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenKerasIsImported())
