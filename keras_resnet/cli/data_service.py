"""keras-resnet data-service: a tf.data service dispatcher and workers for train.py --data-service
(keras_resnet.data.service)."""

import argparse
import sys

from keras_resnet.cli import COUNT, HelpFormatter, Number, usage_error
from keras_resnet.runtime import reason


def add_command(commands):
    parser = commands.add_parser(
        "data-service",
        help="run a tf.data service (a dispatcher and workers) that prepares train.py's input on other processes or machines",
        formatter_class=HelpFormatter,
        description="Either a dispatcher and --workers worker processes on this machine (--port), or one worker for a "
        "dispatcher elsewhere (--dispatcher). Train with: python train.py … --data-service grpc://HOST:PORT.",
    )
    parser.add_argument("--port", type=Number(int, minimum=0, maximum=65535), default=None,
                        help="the dispatcher's port (with --dispatcher: this worker's port; default any free one)")
    parser.add_argument("--workers", type=COUNT, default=None, help="worker processes to start beside the dispatcher (default 1)")
    parser.add_argument("--dispatcher", metavar="HOST:PORT", help="add one worker to the dispatcher at HOST:PORT instead")
    parser.add_argument("--host", help="the name trainers reach this machine's workers by (default: its name)")
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)  # the workers --port starts


def run(args):
    from keras_resnet.data import service
    from keras_resnet.quiet import import_tensorflow_quietly

    if args.dispatcher is None and args.port is None:
        return usage_error("data-service needs --port PORT (a dispatcher here) or --dispatcher HOST:PORT (a worker for one elsewhere).")
    if args.dispatcher is not None and args.workers is not None:
        return usage_error("--workers starts workers beside a dispatcher started here (--port); with --dispatcher, start one worker per command.")
    import_tensorflow_quietly()
    try:
        if args.dispatcher is not None:
            dispatcher = service.Address.parse(args.dispatcher, flag="--dispatcher")
            service.work(dispatcher=dispatcher, port=args.port or 0, host=args.host, log=None if args.quiet else print)
        else:
            service.serve(port=args.port, workers=args.workers or 1, host=args.host)
    except service.ServiceError as error:
        return usage_error(str(error))
    except (OSError, RuntimeError) as error:  # a port taken: TensorFlow's "Could not start gRPC server"
        print(f"error: Cannot start the tf.data service on port {args.port} ({reason(error)}): is the port taken? Choose another --port.", file=sys.stderr)
        return 1
    return 0
