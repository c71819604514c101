"""Serve the browser demo (edge_demo/web/) with a .tflite model, to open on a phone on the same network.

    npm ci --prefix edge_demo/web                     # once: LiteRT.js from npm, as the lockfile pins it
    python edge_demo/serve.py --model runs/…/tflite/resnet20_gpu.tflite
    python edge_demo/serve.py --model M --certfile cert.pem --keyfile key.pem   # https: the phone's camera
    python edge_demo/serve.py --model M --samples photos/val/Bag                 # the sample strip's pictures

The page runs the model with LiteRT.js: on WebGPU when the browser has it (a phone's GPU), else on
WASM/XNNPACK. Everything it loads comes from this server (no CDN). Needs only the standard library,
ai-edge-litert, numpy and Pillow (the model's input and class names are read with keras_resnet.runtime.classifier).

Before the page trusts WebGPU it runs the model's self-test pictures there and compares the scores with
the CPU's, which this server computes (keras_resnet.runtime.selftest); a model the conversion marked
CPU only is run on WASM without trying.
"""

import base64

import http.server
import json
import os
import socket
import ssl
import sys
import threading
from urllib.parse import unquote, urlsplit

from keras_resnet.cli import ArgumentParser, HelpFormatter, Number, usage_error
from keras_resnet.runtime import LiteRTError, selftest
from keras_resnet.runtime.classifier import DEFAULT_TOP_K, Classifier

HERE = os.path.dirname(os.path.abspath(__file__))
WEB_DIR = os.path.join(HERE, "web")
NODE_MODULES = os.path.join(WEB_DIR, "node_modules")
# URL prefix → directory. The page's import map points at /vendor/ (edge_demo/web/index.html).
STATIC_ROOTS = {
    "/vendor/litertjs/core/": os.path.join(NODE_MODULES, "@litertjs", "core"),
    "/vendor/litertjs/wasm-utils/": os.path.join(NODE_MODULES, "@litertjs", "wasm-utils"),
    "/": WEB_DIR,
}
# Where convert/to_tflite.py writes a few of the run's validation pictures, beside the models.
CONVERTED_SAMPLES = "samples"
PAGE_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")  # what every browser shows
# A client that sends nothing for this long is disconnected: idle or slow connections (plain or TLS)
# hold only their own thread, never the server.
CLIENT_TIMEOUT_SECONDS = 20
# A client that trickles (a byte now and then, never idle for CLIENT_TIMEOUT_SECONDS) has this long
# from connecting to a whole request (TLS handshake and headers): then it is disconnected.
REQUEST_DEADLINE_SECONDS = 10
# Connections served at once (one thread each), and of those from one address: a flood of
# connections from one machine is refused at accept() beyond its share, and the others are served.
# A browser opens at most 6 to a server.
MAX_CONNECTIONS = 64
MAX_CONNECTIONS_PER_CLIENT = 16
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",  # WebAssembly.instantiateStreaming insists on it
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".webp": "image/webp",
    ".txt": "text/plain; charset=utf-8",
    ".tflite": "application/octet-stream",
}


def parser():
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
    return p


def model_description(classifier):
    """What the page needs to feed the model and read its scores, and to check its GPU's answers:
    the self-test pictures (raw uint8 pixels, base64) with the CPU's probabilities for them."""

    def tensor(details):
        scale, zero_point = details["quantization"]
        return {
            "shape": [int(d) for d in details["shape"]],
            "dtype": details["dtype"].__name__,
            "scale": float(scale),
            "zero_point": int(zero_point),
        }

    pictures = selftest.pictures(classifier.metadata, classifier.model.input["shape"])
    verdict = classifier.metadata.gpu
    return {
        "name": os.path.basename(classifier.model_path),
        "input": tensor(classifier.model.input),
        "output": tensor(classifier.model.output),
        "labels": classifier.labels,
        "top_k": min(DEFAULT_TOP_K, len(classifier.labels)),
        "preprocessing": classifier.preprocessing.to_json(),
        "gpu": None if verdict is None else verdict.to_json(),
        "selftest": {
            "pictures": [base64.b64encode(picture.tobytes()).decode("ascii") for picture in pictures],
            "expected": [[round(float(p), 6) for p in scores] for scores in selftest.expected_scores(classifier.model, pictures)],
            "tolerance": selftest.TOLERANCE,
        },
    }


def samples_folder(model_path, samples):
    """The sample strip's folder: --samples, else the one the conversion wrote beside the model (None
    when there is none)."""
    if samples is not None:
        return samples
    beside = os.path.join(os.path.dirname(os.path.abspath(model_path)), CONVERTED_SAMPLES)
    return beside if os.path.isdir(beside) else None


def handler_for(model_path, description, *, samples_dir=None):
    model_json = json.dumps(description, indent=1).encode()
    labels_txt = "".join(f"{name}\n" for name in description["labels"]).encode()
    samples = sorted(
        name for name in os.listdir(samples_dir)
        if name.lower().endswith(PAGE_IMAGE_EXTENSIONS) and not name.startswith(".") and os.path.isfile(os.path.join(samples_dir, name))
    ) if samples_dir else []
    samples_json = json.dumps(samples).encode()
    roots = {"/samples/": samples_dir, **STATIC_ROOTS} if samples_dir else STATIC_ROOTS

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "keras-resnet-edge-demo"
        timeout = CLIENT_TIMEOUT_SECONDS  # per read: a client that stops sending loses its connection

        def parse_request(self):
            parsed = super().parse_request()  # reads the headers
            # The request is in: what remains is answering it, however long a large file takes.
            deadline = getattr(_deadline, "timer", None)
            if deadline is not None:
                deadline.cancel()
            return parsed

        def do_GET(self):
            self._respond(send_body=True)

        def do_HEAD(self):
            self._respond(send_body=False)

        def _method_not_allowed(self):
            self.send_response(405)
            self.send_header("Allow", "GET, HEAD")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed

        def _respond(self, *, send_body):
            path = _url_path(self.path)
            if path is None:
                self.send_error(400, "Bad request path")
                return
            generated = {"/model.json": (model_json, ".json"), "/labels.txt": (labels_txt, ".txt"), "/samples.json": (samples_json, ".json")}
            try:
                if path in generated:
                    body, extension = generated[path]
                elif path == "/model.tflite":
                    body, extension = _read(model_path), ".tflite"
                else:
                    file_path = _static_file(path, roots)
                    if file_path is None:
                        self.send_error(404, "Not found")
                        return
                    body, extension = _read(file_path), os.path.splitext(file_path)[1]
            except OSError as error:  # a file removed or unreadable since the server started
                self.log_error("cannot read %s (%s)", path, error.strerror or error)
                self.send_error(500, "Cannot read the file")
                return
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPES.get(extension, "application/octet-stream"))
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            # Cross-origin isolation lets the page use SharedArrayBuffer: LiteRT.js's multi-threaded WASM.
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def log_message(self, format, *args):
            pass  # one line per request would bury the URL; errors go through log_error

        def log_error(self, format, *args):
            if getattr(_deadline, "cut", None) is not None and _deadline.cut.is_set():
                return  # a client too slow to send its request, disconnected: as an idle one, not logged
            if args and str(args[0]).startswith("404"):
                message = f"not found: {self.path}"
            elif args and str(args[0])[:1] in ("4", "5"):
                message = f"{self.client_address[0]}: {format % args}"
            elif not args or "Request timed out" in format % args:
                return  # an idle client dropped: nothing the operator needs to read
            else:
                message = format % args
            _log(message)

    return Handler


class DemoServer(http.server.ThreadingHTTPServer):
    """One thread per connection, TLS included: the handshake happens in the connection's thread with
    a timeout, not in accept() on the serving thread, where one client that connects and sends
    nothing would block every other client. At most MAX_CONNECTIONS threads (MAX_CONNECTIONS_PER_CLIENT
    per address), and each connection has REQUEST_DEADLINE_SECONDS to deliver its request."""

    daemon_threads = True
    tls_context = None
    # The kernel's queue of connections not yet accepted (socketserver's default, 5, overflows at
    # the first burst: clients then half-connect and resend, and are admitted or refused late).
    request_queue_size = 256

    def __init__(self, *args, **kwargs):
        self._open = {}  # client address → connections being served
        self._open_lock = threading.Lock()
        self._refusals = 0
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        """On the accepting thread: a connection beyond the limits is closed at once, before a thread
        is made for it."""
        with self._open_lock:
            host = client_address[0]
            if sum(self._open.values()) >= MAX_CONNECTIONS or self._open.get(host, 0) >= MAX_CONNECTIONS_PER_CLIENT:
                self._refusals += 1
                refused = self._refusals
                admitted = False
            else:
                self._open[host] = self._open.get(host, 0) + 1
                admitted = True
        if not admitted:
            self.shutdown_request(request)
            if refused in (1, 10, 100) or refused % 1000 == 0:  # a few lines, not one per connection of a flood
                _log(f"{host}: too many connections (at most {MAX_CONNECTIONS}, {MAX_CONNECTIONS_PER_CLIENT} per address): {refused} refused so far")
            return
        try:
            super().process_request(request, client_address)
        except Exception:  # no thread could be made: the connection is closed, its place given back
            self._release(host)
            self.shutdown_request(request)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(client_address[0])

    def _release(self, host):
        with self._open_lock:
            self._open[host] -= 1
            if not self._open[host]:
                del self._open[host]

    def finish_request(self, request, client_address):
        request.settimeout(CLIENT_TIMEOUT_SECONDS)
        # The deadline closes the socket under a reader that is still waiting for the request; the
        # handler cancels it once the request's headers are in (Handler.parse_request).
        _deadline.cut = threading.Event()  # set when the deadline disconnected the client
        _deadline.timer = threading.Timer(REQUEST_DEADLINE_SECONDS, _cut, args=(request, _deadline.cut))
        _deadline.timer.daemon = True
        _deadline.timer.start()
        try:
            if self.tls_context is None:
                super().finish_request(request, client_address)
                return
            try:
                connection = self.tls_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as error:
                _log(f"{client_address[0]}: TLS handshake failed ({getattr(error, 'reason', None) or error or type(error).__name__})")
                return
            try:
                super().finish_request(connection, client_address)
            finally:
                self.shutdown_request(connection)
        finally:
            _deadline.timer.cancel()

    def handle_error(self, request, client_address):
        """One line instead of socketserver's traceback (a client that hung up mid-response)."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError, ssl.SSLError)):
            return
        _log(f"{client_address[0]}: {type(error).__name__}: {error}")


# The request deadline of the connection the current thread serves.
_deadline = threading.local()


def _cut(connection, cut):
    cut.set()
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _log(message):
    """A line on the operator's console. Clients choose request paths and headers: their control
    characters (terminal escape sequences) are written as escapes, never as themselves."""
    sys.stderr.write(_printable(str(message)) + "\n")
    sys.stderr.flush()


def _printable(text):
    return "".join(character if character.isprintable() else character.encode("unicode_escape").decode("ascii") for character in text)


def _url_path(target):
    """The decoded path of a request target, or None for one that is not an absolute path in UTF-8
    without NUL bytes."""
    try:
        path = unquote(urlsplit(target).path, errors="strict")
    except (ValueError, UnicodeDecodeError):
        return None
    if not path.startswith("/") or "\0" in path:
        return None
    return path


def _static_file(url_path, roots):
    """The file under one of `roots` (URL prefix → folder) that `url_path` names, or None (also for
    anything that would leave its root)."""
    if url_path.endswith("/"):
        url_path += "index.html"
    for prefix, root in roots.items():
        if url_path.startswith(prefix):
            root = os.path.realpath(root)
            candidate = os.path.realpath(os.path.join(root, url_path[len(prefix):]))
            if candidate.startswith(root + os.sep) and os.path.isfile(candidate):
                return candidate
            return None
    return None


def _read(path):
    with open(path, "rb") as file:
        return file.read()


def lan_address():
    """This machine's address on the network a phone would share (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.254.254.254", 1))
            return probe.getsockname()[0]
        except OSError:
            return None


def main(argv=None):
    args = parser().parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    if bool(args.certfile) != bool(args.keyfile):
        return usage_error("https needs both --certfile and --keyfile")
    for flag, path in (("--certfile", args.certfile), ("--keyfile", args.keyfile)):
        if path and not os.path.isfile(path):  # a pipe or a device would block the read for ever
            what = "not a regular file (a pipe or a device)" if os.path.exists(path) else "no such file"
            return usage_error(f"{flag} {path}: {what}: pass a PEM file")
    if not os.path.isfile(os.path.join(STATIC_ROOTS["/vendor/litertjs/core/"], "dist", "index.js")):
        return usage_error(f"LiteRT.js is not installed in {os.path.relpath(NODE_MODULES)}: run `npm ci --prefix {os.path.relpath(WEB_DIR)}` first")
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
        server = DemoServer((args.host, args.port), handler_for(args.model, description, samples_dir=samples_dir))
    except OSError as error:
        return usage_error(f"cannot listen on {args.host}:{args.port} ({error.strerror or error}): pass another --port or --host")
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
