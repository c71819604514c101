"""Which tf.distribute strategy and which precision a run uses."""

import contextlib
import json
import os

import keras
import tensorflow as tf

from keras_resnet import internals
from keras_resnet.errors import DistributeError
from keras_resnet.quiet import list_devices_quietly
from keras_resnet.run.config import PRECISIONS, STRATEGIES


def make_strategy(name, *, tpu=None, cpu_replicas=1):
    """The tf.distribute strategy that `name` stands for.

    "auto" picks TPUStrategy with a TPU address, MultiWorkerMirroredStrategy when TF_CONFIG is set,
    MirroredStrategy over two or more GPUs (or over `cpu_replicas` logical CPUs), one device on a
    single GPU, and the default strategy on CPU.

    Args:
        name: One of STRATEGIES: "auto", "default", "one-device", "mirrored", "multi-worker" or "tpu".
        tpu: The TPU's address (a TPU name, grpc://host:port or "local"); None: no TPU.
        cpu_replicas: Above 1, the CPU is split into that many logical devices (for tests of
            distribution); this must happen before TensorFlow initializes its devices.

    Returns:
        A tuple (the strategy, the name of the one chosen, "auto" resolved).

    Raises:
        DistributeError: An unknown name, "multi-worker" without a valid TF_CONFIG, or "tpu" without `tpu`.
    """
    if name not in STRATEGIES:
        raise DistributeError(f"Unknown strategy {name!r}. Valid: {', '.join(STRATEGIES)}.")
    if cpu_replicas > 1:
        # Logical CPUs let the distributed code paths run on machines without accelerators.
        cpu = list_devices_quietly("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
    gpus = list_devices_quietly("GPU")
    if name == "auto":
        if tpu:
            name = "tpu"
        elif os.environ.get("TF_CONFIG"):
            name = "multi-worker"
        elif len(gpus) >= 2 or cpu_replicas > 1:
            name = "mirrored"
        else:
            name = "one-device" if gpus else "default"

    if name == "default":
        return tf.distribute.get_strategy(), name
    if name == "one-device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0"), name
    if name == "mirrored":
        devices = None if gpus else [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices), name
    if name == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            raise DistributeError(
                "--strategy multi-worker needs the TF_CONFIG environment variable describing the cluster "
                "(see the README's multi-worker section)."
            )
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as error:
            raise DistributeError(f"TF_CONFIG is not valid JSON ({error}).") from None
        return tf.distribute.MultiWorkerMirroredStrategy(), name
    if not tpu:
        raise DistributeError("--strategy tpu needs --tpu ADDRESS (a TPU name, or grpc://host:port, or 'local').")
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver), name


def resolve_precision(name, *, strategy_name):
    """"auto": mixed_float16 on GPUs that run float16 fast (compute capability 7.0+), mixed_bfloat16
    on TPUs and on CPUs with bfloat16 instructions, float32 otherwise."""
    if name not in PRECISIONS:
        raise DistributeError(f"Unknown precision {name!r}. Valid: {', '.join(PRECISIONS)}.")
    if name != "auto":
        return name
    if strategy_name == "tpu":
        return "mixed_bfloat16"
    gpus = list_devices_quietly("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)) for gpu in gpus]
        return "mixed_float16" if min(capabilities) >= (7, 0) else "float32"
    return "mixed_bfloat16" if cpu_has_bfloat16() else "float32"


def cpu_has_bfloat16():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_index(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver.task_id if resolver is not None and resolver.task_id is not None else 0


def worker_count(strategy):
    """How many worker processes train together (1 outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not is_multi_worker(strategy) or resolver is None:
        return 1
    cluster = resolver.cluster_spec().as_dict()
    return max(1, sum(len(cluster.get(task, [])) for task in ("chief", "worker")))


def is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


@contextlib.contextmanager
def keras_mended(model, strategy):
    """Around fit() and evaluate() of `model` under tf.distribute, mends the places where Keras
    3.15 and TensorFlow 2.21 break; with one replica outside MultiWorkerMirroredStrategy it does
    nothing.
    - Several replicas: an empty evaluation batch is skipped (empty_evaluation_batches_skipped).
    - MultiWorkerMirroredStrategy (keras-team/keras#20585, tensorflow/tensorflow#72388):
      - Before training Keras cross-worker reduces the first input batch only to learn its
        shapes, and that eager reduce fails: `model` learns them from one local replica's batch
        instead. This one stays with the model after the block (it does the same as Keras' for
        the rest of the run).
      - Keras averages per-replica scalar metrics over axis 0, which scalars lack: they are
        averaged over the replicas, as single-worker training reports them. This one is
        Keras-wide, so it is undone when the block ends."""
    if not is_multi_worker(strategy):
        with empty_evaluation_batches_skipped(model, strategy):
            yield
        return

    def build_from_one_local_batch(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = strategy.experimental_local_results(next(batches))[0]
                break
        with model.distribute_strategy.scope():
            internals.keras_symbolic_build(model, data_batch)

    def mean_over_replicas(values, original, strategy_, reduction):
        """Keras' reduce_per_replica, averaging per-replica values over the replicas under multi-worker all-reduce.

        Args:
            values: The per-replica outputs (a nest of tensors and DistributedValues).
            original: Keras' own reduce_per_replica, used for every other case.
            strategy_: The strategy the values come from.
            reduction: Keras' reduction, e.g. "auto", "mean" or "concat".

        Returns:
            The reduced values.
        """
        if reduction in ("auto", "mean") and internals.keras_is_multi_worker_all_reduce(strategy_):
            return tf.nest.map_structure(
                lambda value: strategy_.reduce("MEAN", value, axis=None)
                if isinstance(value, tf.distribute.DistributedValues)
                else value,
                values,
            )
        return original(values, strategy_, reduction)

    internals.keras_replace_symbolic_build(model, build_from_one_local_batch)
    with empty_evaluation_batches_skipped(model, strategy), internals.keras_reduce_per_replica_replaced(mean_over_replicas):
        yield


@contextlib.contextmanager
def empty_evaluation_batches_skipped(model, strategy):
    """Within the block, `model` evaluates a batch of no pictures as nothing, under a strategy of
    several replicas (with one it does nothing).

    A validation split that the replicas cannot share out evenly (33 pictures in batches of 16 over
    2 replicas) ends with a replica whose share has run out while another's has not: tf.distribute
    then hands it a batch of no pictures, so that the replicas stay in step. oneDNN's Conv2D
    (TensorFlow 2.21 on CPUs) returns its input unchanged for an empty batch, and the next layer
    fails on that shape. Keras keeps the evaluation function it traced until it is told to trace
    again: it is dropped when the block starts and when it ends."""
    if strategy.num_replicas_in_sync == 1:
        yield
        return
    evaluate_batch = model.test_step

    # A replica may skip: Keras' evaluation step holds no cross-replica collective (batch norm
    # reduces over the replicas only in training), so the others do not wait for it.
    def test_step_skipping_empty_batches(data):
        pictures, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        pictures = tf.nest.flatten(pictures)[0]
        return tf.cond(tf.shape(pictures)[0] > 0, lambda: evaluate_batch(data), model.get_metrics_result)

    model.test_step = test_step_skipping_empty_batches  # this model's, for the block
    model.test_function = None  # traced again, with it
    try:
        yield
    finally:
        model.__dict__.pop("test_step", None)  # Keras' own again
        model.test_function = None
