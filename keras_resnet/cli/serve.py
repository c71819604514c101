"""keras-resnet-serve (python edge_demo/serve.py): the browser demo (edge_demo/web/) with a .tflite
model, to open on a phone on the same network.

    npm ci --prefix edge_demo/web                     # once: LiteRT.js from npm, as the lockfile pins it
    python edge_demo/serve.py --model runs/…/tflite/resnet20_gpu.tflite
    python edge_demo/serve.py --model M --certfile cert.pem --keyfile key.pem   # https: the phone's camera
    python edge_demo/serve.py --model M --samples photos/val/Bag                 # the sample strip's pictures

The page runs the model with LiteRT.js: on WebGPU when the browser has it (a phone's GPU), else on
WASM/XNNPACK. Everything it loads comes from this server (no CDN); the server itself is
keras_resnet.runtime.server. Needs only the standard library, ai-edge-litert, numpy and Pillow; a
model the conversion marked CPU only is run on WASM without trying WebGPU.
"""

import os
import ssl
import sys

from keras_resnet.cli import ArgumentParser, HelpFormatter, Number, usage_error
from keras_resnet.runtime import LiteRTError, reason
from keras_resnet.runtime.classifier import Classifier
from keras_resnet.runtime.server import CONVERTED_SAMPLES, DemoServer, handler_for, lan_address, model_description, samples_folder, static_roots

# The page's files in a checkout of this repository, found from the package (an editable install,
# or a run from the checkout); edge_demo/serve.py passes its own web/ folder instead.
CHECKOUT_WEB_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "edge_demo", "web")


def parser(*, web_dir=CHECKOUT_WEB_DIR):
    p = ArgumentParser(
        description="Serve the LiteRT.js browser demo with a .tflite model (open the printed URL on a phone).",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--model", required=True, help="the .tflite file (convert/to_tflite.py; the gpu target suits WebGPU)")
    p.add_argument("--labels", help="class names, one per line (default: the labels packed in the model file)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0: every interface, so a phone can connect)")
    p.add_argument("--port", type=Number(int, minimum=0, maximum=65535), default=8000, help="TCP port (0: any free port)")
    p.add_argument("--certfile", help="TLS certificate (PEM): serve https, which phones require for the camera")
    p.add_argument("--keyfile", help="the certificate's private key (PEM)")
    p.add_argument(
        "--samples", metavar="DIR",
        help=f"pictures for the page's sample strip (default: the {CONVERTED_SAMPLES}/ folder convert/to_tflite.py writes "
        "beside the model: a few of the run's validation pictures)",
    )
    p.add_argument(
        "--web", metavar="DIR", default=web_dir,
        help="the page's folder (index.html, app.js, and LiteRT.js in node_modules/ from `npm ci`); default: edge_demo/web of this checkout",
    )
    return p


def main(argv=None, *, web_dir=CHECKOUT_WEB_DIR):
    """The program; `web_dir`: the page's folder unless --web names another."""
    args = parser(web_dir=web_dir).parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    if bool(args.certfile) != bool(args.keyfile):
        return usage_error("https needs both --certfile and --keyfile")
    for flag, path in (("--certfile", args.certfile), ("--keyfile", args.keyfile)):
        if path and not os.path.isfile(path):  # a pipe or a device would block the read for ever
            what = "not a regular file (a pipe or a device)" if os.path.exists(path) else "no such file"
            return usage_error(f"{flag} {path}: {what}: pass a PEM file")
    if not os.path.isfile(os.path.join(args.web, "index.html")):
        return usage_error(f"--web {args.web}: the page's files (index.html) are not there: pass --web with the edge_demo/web folder of a checkout of keras-resnet")
    if not os.path.isfile(os.path.join(static_roots(args.web)["/vendor/litertjs/core/"], "dist", "index.js")):
        node_modules = os.path.relpath(os.path.join(args.web, "node_modules"))
        return usage_error(f"LiteRT.js is not installed in {node_modules}: run `npm ci --prefix {os.path.relpath(args.web)}` first")
    samples_dir = samples_folder(args.model, args.samples)
    if samples_dir is not None and not os.path.isdir(samples_dir):
        return usage_error(f"--samples {samples_dir}: no such folder")
    try:
        classifier = Classifier(args.model, labels=args.labels, threads=1)
        description = model_description(classifier)
        classifier.model.close()
    except LiteRTError as error:
        return usage_error(str(error))
    try:
        server = DemoServer((args.host, args.port), handler_for(args.model, description, web_dir=args.web, samples_dir=samples_dir))
    except OSError as error:
        return usage_error(f"cannot listen on {args.host}:{args.port} ({reason(error)}): pass another --port or --host")
    scheme = "http"
    if args.certfile:
        try:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(args.certfile, args.keyfile)
        except (OSError, ssl.SSLError) as error:
            server.server_close()
            return usage_error(f"cannot use {args.certfile} / {args.keyfile} for https ({error}): pass a PEM certificate and its key")
        server.tls_context = context
        scheme = "https"

    port = server.server_address[1]
    width, height = description["input"]["shape"][2], description["input"]["shape"][1]
    print(f"Serving {description['name']} ({description['input']['dtype']} input {width}×{height}, {len(description['labels'])} classes)")
    if args.host in ("0.0.0.0", "::"):
        print(f"  on this machine:           {scheme}://localhost:{port}/")
        address = lan_address()
        if address:
            print(f"  on a phone (same network): {scheme}://{address}:{port}/")
    else:
        print(f"  {scheme}://{args.host}:{port}/")
    if scheme == "http":
        print(
            "Browsers allow the camera only on https:// or http://localhost; over plain http a phone can still\n"
            "classify pictures it picks. For the phone's camera either serve https (--certfile/--keyfile, e.g.\n"
            "openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=demo -keyout key.pem -out cert.pem,\n"
            "then accept the warning on the phone), or connect the phone by USB and forward the port\n"
            f"(Chrome: chrome://inspect → Port forwarding {port} → localhost:{port}) and open http://localhost:{port}/ on it."
        )
    print(f"Sample pictures: {samples_dir}" if samples_dir else "No sample pictures (--samples DIR adds some to the page).")
    if description["gpu"] is not None and not description["gpu"]["usable"]:
        print(f"The conversion marked this model CPU only (on the GPU {description['gpu']['reason']}): the page runs it on WASM.")
    print("Ctrl-C stops the server.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopped")
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
