"""Training throughput: our ResNet-50 as train.py runs it, against keras.applications.ResNet50 in its
default float32 setup, and (--peer torch) torchvision's ResNet-50 in PyTorch in bfloat16 autocast
and float32, channels-last. Same batch, same input, same optimizer, measured in one run.

    python bench/train_throughput.py                 # ResNet-50, 224x224, batch 16
    python bench/train_throughput.py --batch-size 32 --steps 20
    python bench/train_throughput.py --peer torch    # needs torch and torchvision (not dependencies)
"""

import argparse
import os
import sys
import time


from keras_resnet.quiet import import_tensorflow_quietly


def measure(model, batches, *, warmup, steps, batch_size):
    """Images/s over `steps` training steps, timed inside one fit() from the end of the warm-up
    steps (compilation, and oneDNN's first calls, which run slower) to the end of the last."""
    import keras

    ends = []

    class StepEnds(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ends.append(time.perf_counter())

    model.fit(batches, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[StepEnds()])
    return steps * batch_size / (ends[-1] - ends[warmup - 1])


def measure_torch(images, labels, *, bfloat16, weight_decay, warmup, steps):
    """Images/s of torchvision's ResNet-50 (v1.5, as ours) training on `images` (NHWC float32 in
    [0, 255], normalized here as torchvision's recipe does) and integer `labels`, the way a PyTorch
    user runs it on a CPU: channels-last, SGD with momentum and ours' (coupled) weight decay,
    cross-entropy, bfloat16 autocast or float32. Timed from the end of the warm-up steps to the end of the last."""
    import torch
    import torchvision

    model = torchvision.models.resnet50(weights=None, num_classes=1000).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=weight_decay)
    loss_function = torch.nn.CrossEntropyLoss()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    deviation = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    batch = ((torch.from_numpy(images).permute(0, 3, 1, 2) - mean) / deviation).contiguous(memory_format=torch.channels_last)
    targets = torch.from_numpy(labels).long()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
            loss = loss_function(model(batch), targets)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * len(images) / (time.perf_counter() - started)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=16, help="images per step (default 16)")
    parser.add_argument("--image-size", type=int, default=224, help="input size (default 224)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model (default 10)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before timing (default 5)")
    parser.add_argument("--peer", choices=["torch"], help="also time PyTorch's ResNet-50 (torch and torchvision installed)")
    args = parser.parse_args(argv)
    if args.peer == "torch":
        try:
            import torch  # noqa: F401
            import torchvision  # noqa: F401
        except ImportError as error:
            print(f"error: --peer torch needs PyTorch and torchvision ({error}): pip install torch torchvision, or leave out --peer.", file=sys.stderr)
            return 2
    import_tensorflow_quietly()
    import keras
    import tensorflow as tf

    from keras_resnet.data import pipeline, sources
    from keras_resnet.run.resolve import resolve
    from keras_resnet.training import distribute, trainer

    classes = [str(index) for index in range(1000)]  # a 1000-way head, as keras.applications'
    config = resolve(depth=50, image_size=args.image_size, batch_size=args.batch_size).with_class_names(classes)
    plan = config.plan(1000 * args.batch_size)
    precision = distribute.resolve_precision(config.runtime.precision, strategy_name="default")
    source = sources.open_dataset("synthetic", image_size=args.image_size, train_examples=4 * args.batch_size)
    source.class_names = classes
    # A few batches held in memory: the input costs nothing, and both models see the same images.
    batches = (
        pipeline.training_dataset(source, image_size=args.image_size, augmentation="imagenet", batch_size=args.batch_size, seed=0)
        .take(4)
        .cache()
        .repeat()
    )

    results = []
    for policy in dict.fromkeys([precision, "float32"]):  # train.py's default, and float32 if that differs
        keras.mixed_precision.set_global_policy(policy)
        ours = trainer.build_and_compile(config, plan)
        label = f"train.py defaults, {policy}" if policy == precision else policy
        rate = measure(ours, batches, warmup=args.warmup, steps=args.steps, batch_size=args.batch_size)
        results.append((f"keras_resnet resnet50 ({label})", rate))
        del ours
    keras.mixed_precision.set_global_policy("float32")
    reference = keras.applications.ResNet50(weights=None, input_shape=(args.image_size, args.image_size, 3))
    reference.compile(keras.optimizers.SGD(0.1, momentum=0.9), keras.losses.CategoricalCrossentropy(), metrics=["accuracy"])
    normalized = batches.map(lambda images, labels: (keras.applications.resnet.preprocess_input(images), labels))
    rate = measure(reference, normalized, warmup=args.warmup, steps=args.steps, batch_size=args.batch_size)
    results.append(("keras.applications.ResNet50 (float32)", rate))
    if args.peer == "torch":
        import torch

        images, labels = next(iter(batches))
        for bfloat16 in (True, False):
            rate = measure_torch(images.numpy(), labels.numpy().argmax(-1), bfloat16=bfloat16, weight_decay=config.model.weight_decay, warmup=args.warmup, steps=args.steps)
            results.append((f"PyTorch {torch.__version__} torchvision resnet50 ({'bfloat16 autocast' if bfloat16 else 'float32'}, channels-last)", rate))

    print(f"\nTraining throughput, {args.image_size}x{args.image_size}, batch {args.batch_size}, {args.steps} timed steps, "
          f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}")
    print("| model | images/s |\n|---|---|")
    for name, rate in results:
        print(f"| {name} | {rate:.2f} |")
    rates = dict(results)
    ours, ours_float32 = results[0][1], rates.get("keras_resnet resnet50 (float32)")
    print(f"\nratio (ours, train.py defaults / keras.applications float32): {ours / rates['keras.applications.ResNet50 (float32)']:.2f}x")
    if ours_float32 is not None:
        print(f"ratio ({precision} / float32, our model): {ours / ours_float32:.2f}x")
    if args.peer == "torch":
        torch_bfloat16, torch_float32 = results[-2][1], results[-1][1]
        print(f"ratio (ours, train.py defaults / PyTorch bfloat16 autocast): {ours / torch_bfloat16:.2f}x")
        if ours_float32 is not None:
            print(f"ratio (ours float32 / PyTorch float32): {ours_float32 / torch_float32:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
