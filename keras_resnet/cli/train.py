"""Train any ResNet of the paper with tf.distribute: offline by default, on real datasets when present.

    python train.py --depth 20                          # ResNet-20 on the embedded dataset, offline
    python train.py --depth 20 --dataset cifar10        # the paper's CIFAR-10 recipe, via TFDS
    python train.py --depth 56 --plain --dataset cifar10
    python train.py --depth 50 --dataset imagenet2012 --data-dir /data/tfds --strategy mirrored
    python train.py --depth 18 --dataset folder:/photos/by_class --epochs 30
    python train.py --model resnet18 --weights timm/resnet18.a1_in1k --dataset folder:/photos   # fine-tune
    python train.py --depth 20 --dataset fashion_mnist --image-size 28                         # offline (Debian)
    python train.py --evaluate runs/resnet20-cifar10-20261122-101500
"""

import dataclasses
import sys

from keras_resnet.cli import ArgumentParser, HelpFormatter, Number, print_line, usage_error
from keras_resnet.nets import specs
from keras_resnet.quiet import import_tensorflow_quietly, list_devices_quietly
from keras_resnet.run import config as config_lib
from keras_resnet.run import recipes
from keras_resnet.run.resolve import Choices, resolve


def field(name):
    """The argparse type of a flag that sets the run's field `name`: its range (config.FIELD_RANGES)."""
    return Number(config_lib.FIELD_RANGES[name])


def parser():
    cifar, imagenet = recipes.RECIPES["cifar"], recipes.RECIPES["imagenet"]
    p = ArgumentParser(
        description="Train a ResNet (He et al., 2016). Defaults follow the paper's recipe for the network's family.",
        formatter_class=HelpFormatter,
    )
    network = p.add_argument_group("network")
    network.add_argument("--depth", type=int, help=specs.valid_depths_text())
    network.add_argument("--model", help="a model name instead of --depth: resnet20, plain56, resnet50v2, …")
    network.add_argument("--plain", action="store_true", help="the paper's plain network: no shortcuts")
    shortcut_defaults = ", ".join(f"{family.shortcut} {name}-style" for name, family in specs.FAMILIES.items())
    network.add_argument("--shortcut", choices=specs.SHORTCUTS, help=f"shortcut option (default: {shortcut_defaults})")
    network.add_argument("--version", choices=specs.VERSIONS, help="block version (default v1.5)")
    network.add_argument("--family", choices=list(specs.FAMILIES), help="the CIFAR-style net of a depth that is also ImageNet-style (50, 152, 200)")
    size_defaults = ", ".join(f"{family.input_size} {name}-style" for name, family in specs.FAMILIES.items())
    network.add_argument(
        "--image-size", type=field("image_size"),
        help=f"training image size (default: a run or .keras of ours given as --weights: its size; published weights: "
        f"the size their accuracy is quoted at; else {size_defaults}; the last two at most the pictures' median shorter side)",
    )
    network.add_argument("--zero-init-residual", action="store_true", help="start each residual branch's last BN at zero")

    data = p.add_argument_group("data")
    data.add_argument("--dataset", help="'synthetic' (embedded, offline; the default), a TFDS image dataset (cifar10, imagenet2012, fashion_mnist, …) folder:PATH (class folders, or train/ and val/ holding them) or tfrecord:PATTERN (the training shards of Model Garden-style TFRecords; validation-* beside them, labels.txt the class names). With --evaluate: the data to evaluate on (default: the run's validation split; a folder of class folders is evaluated whole)")
    data.add_argument(
        "--eval-crop", type=field("evaluation_crop"), metavar="FRACTION",
        help="evaluation transform: the centred square of this fraction of the shorter side, resized to --image-size "
        "(default 0.875 ImageNet-style, as the paper and torchvision; 1.0 CIFAR-style). It travels with the model: "
        "--evaluate, the conversion report, classify.py and the page all apply it",
    )
    data.add_argument("--data-dir", help="TFDS data directory holding prepared datasets (TFDS default: ~/tensorflow_datasets)")
    data.add_argument("--train-examples", type=field("train_examples"), help="use only this many training examples (quick experiments)")
    data.add_argument("--validation-examples", type=field("validation_examples"), help="use only this many validation examples")

    tuning = p.add_argument_group(
        "fine-tuning (changes the recipe's defaults: SGD at "
        f"{recipes.fine_tuning(imagenet).learning_rate:g} per {recipes.fine_tuning(imagenet).reference_batch} images, cosine, "
        f"{recipes.FINE_TUNING_EPOCHS} epochs, batch {recipes.fine_tuning(imagenet).batch_size}, crops keeping >= "
        f"{recipes.FINE_TUNING_MIN_CROP_AREA:.0%} of the image ImageNet-style)"
    )
    tuning.add_argument(
        "--weights",
        help="start from pretrained weights, with a new classifier for the dataset: imagenet (keras.applications), "
        "timm/NAME (timm/resnet18.a1_in1k, timm/resnet50.tv_in1k, …), a .safetensors/.h5 weights file, or a "
        ".keras model or run directory of ours (continued training; its classifier is kept for the same classes)",
    )
    tuning.add_argument(
        "--freeze-epochs", type=field("freeze_epochs"),
        help=f"with --weights: first train only the classifier this many epochs, the backbone frozen (batch norm in "
        f"inference mode), at {recipes.HEAD_RATE_FACTOR}x the learning rate; then the whole network (default {recipes.FREEZE_EPOCHS}, "
        "at most half the training)",
    )

    recipe = p.add_argument_group("recipe (defaults: the paper's, per family)")
    recipe.add_argument("--epochs", type=field("epochs"), help=f"training epochs (default: {imagenet.epochs} ImageNet-style; {recipes.SYNTHETIC_EPOCHS} on the synthetic dataset)")
    recipe.add_argument("--steps", type=field("steps"), help=f"training steps instead of epochs (default: {cifar.steps} CIFAR-style, as the paper)")
    recipe.add_argument("--batch-size", type=field("batch_size"), help=f"global batch over all replicas (default: {cifar.batch_size} CIFAR-style, {imagenet.batch_size} ImageNet-style, halved "
                        f"down to {config_lib.MIN_FITTED_BATCH} until an epoch has {config_lib.MIN_STEPS_PER_EPOCH} steps)")
    recipe.add_argument("--lr", type=field("learning_rate"), help=f"peak learning rate (default: {cifar.learning_rate} per {cifar.reference_batch} images CIFAR-style, per {imagenet.reference_batch} ImageNet-style)")
    recipe.add_argument("--schedule", choices=recipes.SCHEDULES, help="step: lr / 10 at 50%%/75%% (CIFAR) or 1/3, 2/3 (ImageNet) of training (default step; cosine with --weights)")
    recipe.add_argument("--warmup-epochs", type=field("warmup_epochs"), help=f"linear warm-up epochs (default: 0 for step, {recipes.COSINE_WARMUP_EPOCHS} for cosine, at most a tenth of the training)")
    recipe.add_argument("--weight-decay", type=field("weight_decay"), help=f"SGD weight decay (default {cifar.weight_decay:g})")
    recipe.add_argument("--label-smoothing", type=field("label_smoothing"), default=0.0, help="label smoothing")
    recipe.add_argument("--seed", type=field("seed"), default=0, help="seed of initialization, shuffling and augmentation")

    runtime = p.add_argument_group("runtime")
    runtime.add_argument("--strategy", default="auto", choices=config_lib.STRATEGIES,
                         help="auto: TPU with --tpu, multi-worker with TF_CONFIG, mirrored on 2+ GPUs, one device on 1 GPU, default on CPU")
    runtime.add_argument("--tpu", help="TPU name or address for --strategy tpu")
    runtime.add_argument("--data-service", metavar="grpc://HOST:PORT",
                         help="take the training input from a tf.data service (keras-resnet data-service; default: prepare it here)")
    runtime.add_argument("--cpu-replicas", type=field("cpu_replicas"), default=1, help="split the CPU into this many logical devices and mirror over them")
    runtime.add_argument("--precision", default="auto", choices=config_lib.PRECISIONS,
                         help="auto: mixed_float16 on recent GPUs, mixed_bfloat16 on TPUs and bf16-capable CPUs, else float32")
    runtime.add_argument("--jit-compile", action="store_true", help="compile steps with XLA")
    runtime.add_argument("--save-every-steps", type=field("save_every_steps"), default=config_lib.DEFAULT_SAVE_EVERY_STEPS, help="back up the training state every N steps")

    output = p.add_argument_group("output")
    output.add_argument("--output", help="run directory (default: runs/<model>-<dataset>-<timestamp>)")
    output.add_argument("--resume", action="store_true", help="continue the run in --output (an interrupted run resumes by itself)")
    output.add_argument(
        "--evaluate", metavar="RUN_DIR_OR_MODEL",
        help="only evaluate a trained model (a run directory or .keras file) on its validation split or on --dataset; "
        "writes evaluation-<data>.json (top-1, top-5, loss, per-class results, confusion matrix) and confusion-<data>.png beside it",
    )
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # per-epoch lines reach log files as they happen
    try:
        # Every flag but --output, --resume and --evaluate is a field of Choices, under the same name.
        choices = Choices(**{field.name: getattr(args, field.name) for field in dataclasses.fields(Choices)})
        config = None if args.evaluate else resolve(choices, output=args.output)
    except config_lib.UsageError as error:
        return usage_error(error)
    import_tensorflow_quietly()
    if args.evaluate:
        # The device search's notices (cuInit on machines without a GPU) now rather than amid our
        # lines. Not before training: --cpu-replicas configures the devices before they are listed.
        list_devices_quietly()
    from keras_resnet.data.sources import DatasetError
    from keras_resnet.training import evaluate, trainer

    try:
        if args.evaluate:
            evaluate.evaluate(args.evaluate, dataset=args.dataset, batch_size=args.batch_size, data_dir=args.data_dir)
        else:
            trainer.train(config, output=args.output, resume=args.resume)
        return 0
    except (config_lib.UsageError, DatasetError) as error:
        return usage_error(error)
    except trainer.TrainingError as error:
        print_line(f"error: {error}")
        return 1
    except trainer.Interrupted as message:
        print_line(message)
        return 130



if __name__ == "__main__":
    sys.exit(main())
