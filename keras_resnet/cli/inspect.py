"""keras-resnet summary NAME | list (also python -m keras_resnet) — look at a network before training it;
keras-resnet data-service (keras_resnet.cli.data_service)."""

import sys

from keras_resnet.cli import COUNT, ArgumentParser, HelpFormatter, Number, data_service
from keras_resnet.nets import specs
from keras_resnet.run import config as config_lib


def _parser():
    parser = ArgumentParser(
        prog="keras-resnet", description="Inspect the ResNets of He et al. (2016)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser(
        "summary",
        help="print model.summary(), parameter counts and multiply-accumulates per image",
        formatter_class=HelpFormatter,
    )
    summary.add_argument("name", help="model name: resnetD or plainD, optionally with v1/v1.5/v2 (e.g. resnet50, plain56)")
    summary.add_argument("--classes", type=COUNT, default=None, help="classes (default: 1000 ImageNet-style, 10 CIFAR-style)")
    summary.add_argument("--image-size", type=Number(config_lib.FIELD_RANGES["image_size"]), default=None, help="input height and width (default: 224 or 32)")
    summary.add_argument("--family", choices=list(specs.FAMILIES), default=None, help="force the ImageNet- or CIFAR-style network of a depth")
    summary.add_argument("--version", choices=specs.VERSIONS, default=None, help="block version (default v1.5)")
    shortcut_defaults = ", ".join(f"{family.shortcut} {name}-style" for name, family in specs.FAMILIES.items())
    summary.add_argument("--shortcut", choices=specs.SHORTCUTS, default=None, help=f"shortcut option (default: {shortcut_defaults})")
    commands.add_parser("list", help="list the named networks")
    data_service.add_command(commands)
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "list":
        print("\n".join(specs.model_names()))
        return 0
    if args.command == "data-service":
        return data_service.run(args)

    import keras_resnet
    from keras_resnet.quiet import list_devices_quietly

    list_devices_quietly()
    try:
        input_shape = None if args.image_size is None else (args.image_size, args.image_size, 3)
        model = keras_resnet.build(
            args.name,
            classes=args.classes,
            input_shape=input_shape,
            family=args.family,
            version=args.version,
            shortcut=args.shortcut,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    model.summary()
    total, trainable = keras_resnet.count_parameters(model)
    macs = keras_resnet.count_macs(model)
    height, width, channels = model.input_shape[1:]
    print(f"Model:                 {model.name} ({height}x{width}x{channels} input, {model.output_shape[-1]} classes)")
    print(f"Total parameters:      {total:,}")
    print(f"Trainable parameters:  {trainable:,}")
    short = f"{macs / 1e9:.2f} G" if macs >= 1e9 else f"{macs / 1e6:.1f} M"
    print(f"Multiply-accumulates:  {macs:,} per image ({short})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
