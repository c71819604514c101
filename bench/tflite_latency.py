"""LiteRT latency: each conversion target of ResNet-20 (32x32, 10 classes) and ResNet-50 (224x224,
1000 classes) next to the Keras model on the same CPU, at batch 1, measured in one run.

    python bench/tflite_latency.py                       # resnet20 and resnet50, 100 runs each
    python bench/tflite_latency.py --models resnet50 --runs 200 --threads 1

Latency does not depend on the weights' values, so the networks are freshly built (no training):
int8-ptq is calibrated and int8-qat's ranges set on synthetic images, which gives the graphs that
convert/to_tflite.py writes for a trained run. Keras runs the float32 model in a tf.function
(graph mode, oneDNN), as a served Keras model would; LiteRT runs on XNNPACK.
"""

import argparse
import os
import sys
import time


from keras_resnet.quiet import import_tensorflow_quietly, list_devices_quietly

CLASSES = {"resnet20": 10, "resnet50": 1000}


def keras_latency(model, image, *, runs, warmup=10):
    import numpy as np
    import tensorflow as tf

    call = tf.function(lambda images: model(images, training=False))
    batch = tf.constant(image[None])
    for _ in range(warmup):
        call(batch).numpy()
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        call(batch).numpy()
        timings.append((time.perf_counter() - start) * 1000)
    return float(np.median(timings)), float(np.percentile(timings, 90))


def convert_all(name, model, images, *, log):
    """{target: .tflite bytes} for every target, as convert/to_tflite.py makes them."""
    from keras_resnet.litert import qat, targets
    from keras_resnet.litert.trained import TrainedModel

    size = tuple(model.input_shape[1:3])
    contents = {}
    for target, spec in targets.TARGETS.items():
        started = time.perf_counter()
        if spec.quantization_aware:
            trained = TrainedModel(model=model, build_arguments=model.build_arguments, class_names=[], config=None, path="", run=None)
            twin = qat.tf_keras_twin(trained)
            qat.check_twin(trained, twin, images[:4])
            quantized = qat.quantization_aware(twin)
            qat.calibrate_ranges(quantized, twin, (images[start : start + 8] for start in range(0, len(images), 8)))
            contents[target] = targets.convert(quantized, target, image_size=size)
        else:
            calibration = lambda: (image[None] for image in images)  # noqa: E731
            contents[target] = targets.convert(model, target, image_size=size, representative_images=calibration)
        log(f"{name} {target}: converted in {time.perf_counter() - started:.0f} s")
    return contents


def _arguments(name):
    return {"classes": CLASSES[name], "input_shape": [32, 32, 3] if name == "resnet20" else [224, 224, 3]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet20,resnet50", help="comma-separated: resnet20, resnet50 (default both)")
    parser.add_argument("--runs", type=int, default=100, help="timed runs per model after 10 warm-up runs (default 100)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads for LiteRT (default: every core)")
    parser.add_argument("--calibration-images", type=int, default=32, help="synthetic images for int8 ranges (default 32)")
    args = parser.parse_args(argv)
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in models if name not in CLASSES]
    if unknown or not models or args.runs < 1 or args.threads < 1:
        parser.exit(2, f"error: --models must list {', '.join(CLASSES)}; --runs and --threads at least 1. Received: "
                    f"--models {args.models} --runs {args.runs} --threads {args.threads}.\n")
    import_tensorflow_quietly()
    list_devices_quietly()
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_resnet
    from keras_resnet.runtime.model import LiteRTModel

    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    keras.config.set_dtype_policy("float32")
    rows = []
    for name in models:
        model = keras_resnet.build(name, **_arguments(name))
        size = model.input_shape[1]
        images = np.random.default_rng(0).uniform(0, 255, (args.calibration_images, size, size, 3)).astype(np.float32)
        keras_median, keras_p90 = keras_latency(model, images[0], runs=args.runs)
        log(f"{name} Keras: {keras_median:.2f} ms")
        rows.append((name, "Keras float32 (tf.function)", None, keras_median, keras_p90))
        for target, content in convert_all(name, model, images, log=log).items():
            latency = LiteRTModel(content, threads=args.threads).latency(images[0], runs=args.runs)
            rows.append((name, target, len(content), latency["median_ms"], latency["p90_ms"]))
            log(f"{name} {target}: {latency['median_ms']:.2f} ms")

    print(f"\nLatency at batch 1, median / p90 of {args.runs} runs after 10 warm-up runs; LiteRT (ai_edge_litert, XNNPACK) "
          f"on {args.threads} threads, {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}")
    print("| model | runtime / target | size | median | p90 | × faster than Keras | × faster than fp32 .tflite |")
    print("|---|---|---|---|---|---|---|")
    for name, target, size, median, p90 in rows:
        keras_median = next(row[3] for row in rows if row[0] == name and row[2] is None)
        fp32 = next((row[3] for row in rows if row[0] == name and row[1] == "fp32"), None)
        print(
            f"| {name} | {target} | {'—' if size is None else f'{size / 1e6:.2f} MB'} | {median:.2f} ms | {p90:.2f} ms | "
            f"{keras_median / median:.2f} | {'—' if size is None or fp32 is None else f'{fp32 / median:.2f}'} |"
        )


if __name__ == "__main__":
    main()
