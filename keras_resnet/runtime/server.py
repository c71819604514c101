"""The browser demo's HTTP server, without TensorFlow: what the page asks for (the model, its
description and labels, the sample pictures, the page's own files and LiteRT.js), answered by one
thread per connection within limits that keep a flood or a slow client from taking the server.
The program around it is keras_resnet/cli/serve.py (python edge_demo/serve.py, keras-resnet-serve).

Before the page trusts WebGPU it runs the model's self-test pictures there and compares the scores
with the CPU's, which `model_description` computes (keras_resnet.runtime.selftest).
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

from keras_resnet.runtime import reason, selftest
from keras_resnet.runtime.classifier import DEFAULT_TOP_K
from keras_resnet.runtime.labels import labels_text
from keras_resnet.runtime.pictures import BROWSER_EXTENSIONS


def static_roots(web_dir):
    """URL prefix → folder of the page's files: the page (index.html, app.js, …) and LiteRT.js as npm
    installed it beside them. The page's import map points at /vendor/ (edge_demo/web/index.html)."""
    node_modules = os.path.join(web_dir, "node_modules")
    return {
        "/vendor/litertjs/core/": os.path.join(node_modules, "@litertjs", "core"),
        "/vendor/litertjs/wasm-utils/": os.path.join(node_modules, "@litertjs", "wasm-utils"),
        "/": web_dir,
    }


# Where convert/to_tflite.py writes a few of the run's validation pictures, beside the models.
CONVERTED_SAMPLES = "samples"
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


def handler_for(model_path, description, *, web_dir, samples_dir=None):
    """The request handler class of the page for one model.

    Args:
        model_path: The .tflite file served as /model.tflite.
        description: What `model_description` returned for the model, served as /model.json (its
            labels as /labels.txt).
        web_dir: The folder of the page's files (and of node_modules/ with LiteRT.js).
        samples_dir: The folder of the sample strip's pictures, served under /samples/ and listed
            once, now, as /samples.json; None for no samples.

    Returns:
        A http.server.BaseHTTPRequestHandler subclass, for DemoServer.
    """
    model_json = json.dumps(description, indent=1).encode()
    labels_txt = labels_text(description["labels"]).encode()
    samples = sorted(
        name for name in os.listdir(samples_dir)
        if name.lower().endswith(BROWSER_EXTENSIONS) and not name.startswith(".") and os.path.isfile(os.path.join(samples_dir, name))
    ) if samples_dir else []
    samples_json = json.dumps(samples).encode()
    roots = {"/samples/": samples_dir, **static_roots(web_dir)} if samples_dir else static_roots(web_dir)

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
                self.log_error("cannot read %s (%s)", path, reason(error))
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
