"""Convert a trained ResNet to LiteRT (.tflite) for phones and edge devices, and check each file
against the Keras model.

    python convert/to_tflite.py --run runs/resnet20-synthetic-20261122-101500      # all targets + report
    python convert/to_tflite.py --model my.keras --dataset synthetic --targets gpu,int8-qat --qat-epochs 2

Targets: fp32 (reference), gpu (float16 weights: the mobile GPU delegate), dynamic (dynamic-range
int8 weights), int8-ptq (full int8, post-training calibration), int8-qat (full int8 after
quantization-aware fine-tuning: Coral / Edge TPU). Files go to RUN_DIR/tflite/ by default, with
labels.txt, report.json and report.md.
"""

import os
import sys

from keras_resnet.cli import COUNT, THREADS, ArgumentParser, HelpFormatter, Number, usage_error
from keras_resnet.litert.targets import TARGETS, parse_targets
from keras_resnet.quiet import import_tensorflow_quietly, list_devices_quietly, native_output_silenced_at_exit
from keras_resnet.run.config import FIELD_RANGES


def parser():
    p = ArgumentParser(
        description="Convert a trained ResNet to LiteRT models and report how each compares with the Keras model.",
        formatter_class=HelpFormatter,
    )
    what = p.add_argument_group("what to convert (one of)")
    what.add_argument("--run", metavar="RUN_DIR", help="a train.py run directory (its best.keras, data and labels)")
    what.add_argument("--model", metavar="FILE.keras", help="a .keras model built by keras_resnet")
    what.add_argument("--dataset", help="with --model outside a run directory: its data, as train.py's --dataset (needed by int8 targets and the checks)")
    what.add_argument("--data-dir", help="TFDS data directory (default: the run's)")
    what.add_argument("--labels", help="with --model and no --dataset: a labels.txt, one class name per line")
    what.add_argument(
        "--eval-crop", type=Number(FIELD_RANGES["evaluation_crop"]), metavar="FRACTION",
        help="with --model outside a run directory: the evaluation transform's crop it was trained with (train.py --eval-crop; "
        "default: its family's, 0.875 ImageNet-style, 1.0 CIFAR-style). A run directory records its own",
    )

    output = p.add_argument_group("output")
    output.add_argument("--targets", default="all", help=f"all, or a comma-separated list of {', '.join(TARGETS)}")
    output.add_argument("--output", help="output directory (default: RUN_DIR/tflite, or tflite/ beside the .keras file)")

    quantization = p.add_argument_group("quantization")
    quantization.add_argument("--calibration-steps", type=Number(int, minimum=1, maximum=10_000), default=4, help="training batches that calibrate int8-ptq")
    quantization.add_argument("--qat-epochs", type=Number(int, minimum=1, maximum=1000), default=1, help="quantization-aware fine-tuning epochs for int8-qat")
    quantization.add_argument("--qat-lr", type=Number(float, above=0, maximum=1), help="fine-tuning learning rate (default: the run's initial rate / 100)")
    quantization.add_argument("--qat-steps-per-epoch", type=COUNT, help="fine-tuning steps per epoch (default: one pass over the training split)")

    checks = p.add_argument_group("checks")
    checks.add_argument(
        "--strict", action="store_true",
        help="exit with code 1 when a target misses its acceptance bound (the files and the report are written all the same)",
    )
    checks.add_argument("--eval-images", type=COUNT, help="validation images for agreement and accuracy (default: the whole split)")
    checks.add_argument("--latency-runs", type=Number(int, minimum=1, maximum=100_000), default=100, help="timed runs per model (after 10 warm-up runs)")
    checks.add_argument("--threads", type=THREADS, help="CPU threads for LiteRT (default: every core)")
    checks.add_argument(
        "--gpu-eval-images",
        type=COUNT,
        default=200,
        help="validation images also run on LiteRT's GPU accelerator when a GPU (Vulkan driver) is there; "
        "a software GPU such as SwiftShader takes ~40 ms per ResNet-20 image",
    )
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    try:
        chosen = parse_targets(args.targets)
    except ValueError as error:
        return usage_error(str(error))
    import_tensorflow_quietly()
    list_devices_quietly()  # the device search's notices, now rather than amid our messages
    native_output_silenced_at_exit()  # LiteRT's GPU accelerator logs its teardown as the process ends
    from keras_resnet.litert.convert import Settings, convert
    from keras_resnet.litert.trained import ConversionError, open_trained
    from keras_resnet.runtime import LiteRTError

    try:
        trained = open_trained(
            run=args.run, model_path=args.model, dataset=args.dataset, data_dir=args.data_dir, labels=args.labels,
            evaluation_crop=args.eval_crop,
        )
        output = args.output or os.path.join(trained.run.path if trained.run else os.path.dirname(os.path.abspath(trained.path)), "tflite")
        settings = Settings(
            targets=chosen,
            output=output,
            calibration_steps=args.calibration_steps,
            qat_epochs=args.qat_epochs,
            qat_lr=args.qat_lr,
            qat_steps_per_epoch=args.qat_steps_per_epoch,
            eval_images=args.eval_images,
            latency_runs=args.latency_runs,
            threads=args.threads,
            gpu_eval_images=args.gpu_eval_images,
        )
        report, failures = convert(trained, settings)
    except (ConversionError, LiteRTError) as error:
        return usage_error(str(error))
    except OSError as error:  # a write failed midway (a full disk): what was written is whole
        from keras_resnet import files

        where = f" {error.filename}" if error.filename else ""
        print(f"error: cannot write{where} ({files.describe_os_error(error)}): free some space or choose another --output, then convert again; "
              "the files written so far are complete.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted: the targets written so far are complete files; run the command again for the rest.", file=sys.stderr)
        return 130
    for target, message in failures.items():
        print(f"error: {target}: {message}", file=sys.stderr)
    if failures:
        return 2
    if args.strict and report["missed"]:
        from keras_resnet.run.config import counted

        print(f"error: --strict: {counted(len(report['missed']), 'acceptance bound')} missed (see report.md): {report['missed'][0]}", file=sys.stderr)
        return 1
    return 0



if __name__ == "__main__":
    sys.exit(main())
