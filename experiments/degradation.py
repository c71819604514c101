"""The paper's central experiment (He et al., 2016, Sec. 4.2, Fig. 6): plain and residual networks of
growing depth, trained alike. Deeper plain nets train worse (the degradation problem); shortcuts
fix it.

    python experiments/degradation.py                       # embedded dataset, depths 20 and 56, CPU-sized
    python experiments/degradation.py --dataset cifar10 --depths 20 32 44 56 --steps 64000 --output runs/degradation-cifar10

Each network trains through train.py's code path (trainer.train: same recipe, data and seed) into
its own run directory inside --output; a finished one is not trained again, an interrupted one
resumes. Then the output directory gets:

    degradation.png   Fig. 6's layout: plain | ResNet, training error dashed, test error solid
    gradients.png     gradient norm per block, plain vs ResNet at the deepest depth, at
                      initialisation and after training (log scale)
    results.md        final training and test error per depth and net; results.json the same
"""

import argparse
import json
import os
import sys

from keras_resnet import files
from keras_resnet.cli import COUNT, NON_NEGATIVE, SEED, ArgumentParser, Number, usage_error
from keras_resnet.run import config as config_lib
from keras_resnet.quiet import import_tensorflow_quietly
from keras_resnet.run.resolve import resolve

# CPU-sized defaults on the embedded dataset: the four networks train in about 20 minutes on 2 cores.
# An epoch of warm-up there (the paper warms up only ResNet-110) keeps the 56-layer nets from
# stalling at chance in their first steps of so short a run. Real datasets get the paper's recipe.
DEFAULT_DEPTHS = (20, 56)
DEFAULT_EPOCHS = 8
DEFAULT_WARMUP_EPOCHS = 1


def parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depths", type=int, nargs="+", default=list(DEFAULT_DEPTHS), help="CIFAR-style depths 6n+2 (default: 20 56)")
    p.add_argument("--dataset", default="synthetic", help="as train.py's --dataset (default: synthetic, the embedded dataset)")
    p.add_argument("--data-dir", help="TFDS data directory")
    p.add_argument("--epochs", type=COUNT, help=f"training epochs per network (default: {DEFAULT_EPOCHS} on synthetic, else the paper's steps)")
    p.add_argument("--steps", type=COUNT, help="training steps per network instead of epochs (the paper: 64000)")
    p.add_argument("--batch-size", type=COUNT, help="global batch (default: the paper's 128)")
    p.add_argument("--lr", type=Number(float, minimum=0, maximum=config_lib.MAX_LEARNING_RATE), help="initial learning rate (default: the paper's 0.1 at batch 128)")
    p.add_argument("--warmup-epochs", type=NON_NEGATIVE, help="epochs of linear warm-up (default: 1 on synthetic, else the paper's 0)")
    p.add_argument("--image-size", type=Number(int, minimum=config_lib.MIN_IMAGE_SIZE, maximum=config_lib.MAX_IMAGE_SIZE), help="input size (default: 32)")
    p.add_argument("--train-examples", type=COUNT, help="use only this many training examples")
    p.add_argument("--validation-examples", type=COUNT, help="use only this many validation examples")
    p.add_argument("--gradient-batch", type=Number(int, minimum=1, maximum=4096), default=128, help="training images for the gradient norms (default: 128)")
    p.add_argument("--seed", type=SEED, default=0, help="the same seed for every network (default: 0)")
    p.add_argument("--output", help="output directory (default: runs/degradation-DATASET)")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    if args.epochs is not None and args.steps is not None:
        return usage_error("Pass --epochs or --steps, not both.")
    bad = [depth for depth in args.depths if depth < 8 or (depth - 2) % 6]
    if bad:
        return usage_error(f"--depths must be CIFAR-style depths 6n+2 of at least 8 (8, 14, 20, 32, 44, 56, 110, …). Received: {bad}.")
    depths = sorted(set(args.depths))
    import_tensorflow_quietly()
    from keras_resnet.data.sources import DatasetError
    from keras_resnet.run.directory import dataset_slug
    from keras_resnet.training import trainer

    output = args.output or os.path.join("runs", f"degradation-{dataset_slug(args.dataset)}")
    synthetic = args.dataset == "synthetic"
    epochs = args.epochs if args.epochs or args.steps else (DEFAULT_EPOCHS if synthetic else None)
    try:
        configs = {
            (depth, plain): resolve(
                depth=depth,
                plain=plain,
                family="cifar",
                image_size=args.image_size,
                dataset=args.dataset,
                data_dir=args.data_dir,
                train_examples=args.train_examples,
                validation_examples=args.validation_examples,
                epochs=epochs,
                steps=args.steps,
                batch_size=args.batch_size,
                lr=args.lr,
                warmup_epochs=args.warmup_epochs,
                seed=args.seed,
            ).with_defaults(warmup_epochs=DEFAULT_WARMUP_EPOCHS if synthetic else 0)  # capped to short runs (fit_to_data)
            for depth in depths
            for plain in (True, False)
        }
        runs = {}
        for number, ((depth, plain), config) in enumerate(configs.items(), start=1):
            name = config.model.name
            print(f"[{number}/{len(configs)}] {name}")
            runs[depth, plain] = _train_once(trainer, config, os.path.join(output, name))
    except (config_lib.UsageError, DatasetError) as error:
        return usage_error(str(error))
    except trainer.TrainingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except trainer.Interrupted as message:
        print(f"{message} (the finished networks are kept)", file=sys.stderr)
        return 130

    import plots
    import gradients

    results = plots.results(runs)
    files.write_text(os.path.join(output, "results.json"), json.dumps(results, indent=2) + "\n")
    table = plots.markdown_table(results)
    files.write_text(os.path.join(output, "results.md"), table + "\n")
    plots.degradation_figure(runs, os.path.join(output, "degradation.png"), dataset=args.dataset)

    deepest = depths[-1]
    print(f"Gradient norms per block of plain{deepest} and resnet{deepest}, at initialisation and after training")
    norms = {
        f"{'plain' if plain else 'resnet'}{deepest}": gradients.norms_at_start_and_end(runs[deepest, plain], batch=args.gradient_batch)
        for plain in (True, False)
    }
    files.write_text(os.path.join(output, "gradients.json"), json.dumps(norms, indent=2) + "\n")
    plots.gradient_figure(norms, os.path.join(output, "gradients.png"))
    print()
    print(table)
    print(f"\nFigures: {os.path.join(output, 'degradation.png')}, {os.path.join(output, 'gradients.png')}")
    return 0


def _train_once(trainer, config, path):
    """The run directory of `config` at `path`, trained unless it already finished."""
    from keras_resnet.errors import UsageError
    from keras_resnet.run.directory import RunDirectory

    run = RunDirectory(path)
    if run.is_finished():
        stored = run.read_config()
        if not stored.same_training(config.with_stored_defaults(stored)):  # its defaults were fitted to its data
            raise UsageError(f"{path} holds a finished run with another configuration: choose another --output or remove it.")
        print(f"{path} has finished: not trained again.")
        return run
    return trainer.train(config, output=path)



if __name__ == "__main__":
    sys.exit(main())
