"""tf.data service: the training input's reading, decoding and augmenting done by other processes,
on this machine or others, when one host's CPUs cannot feed its accelerators.

    keras-resnet data-service --port 5050 --workers 4          # a dispatcher and 4 workers here
    keras-resnet data-service --dispatcher HOST:5050            # one more worker, on another machine
    python train.py … --data-service grpc://HOST:5050           # training takes its batches from them

The trainer sends its input pipeline (the graph train.py would run itself) to the dispatcher, which
hands each worker whole epochs of it: processing mode "distributed_epoch", the pipeline's source
being its endless sequence of epoch numbers. Every example of an epoch comes from one worker, in
that epoch's order, its pixels rounded to 8 bits for the way back; a worker that dies loses the
rest of its epoch, and the others go on. The workers read the training files themselves: the
dataset's path must be the same on every machine.
"""

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from keras_resnet.errors import ServiceError
from keras_resnet.runtime import reason

SCHEME = "grpc://"
# How long the dispatcher waits for a worker's heartbeat before it hands the worker's share to the
# others (TensorFlow's default is an hour).
WORKER_TIMEOUT_MS = 10_000
# How long training waits for the dispatcher to answer before saying it cannot be reached.
CONNECT_TIMEOUT_S = 5
# How long training waits for its first step before saying that it waits for the service's workers
# (a dispatcher with none hands out nothing, and TensorFlow's client waits in silence). The first
# step also compiles the model: tens of seconds for a ResNet-50 on a CPU.
FIRST_STEP_PATIENCE_S = 120


@dataclasses.dataclass(frozen=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, text, *, flag="--data-service"):
        """grpc://HOST:PORT (or HOST:PORT) → Address. ServiceError says what was received."""
        rest = text[len(SCHEME):] if text.startswith(SCHEME) else text
        host, _, port = rest.rpartition(":")
        if not host or "/" in rest or not port.isdigit() or not 0 < int(port) < 65536:
            raise ServiceError(f"{flag} must be grpc://HOST:PORT, the dispatcher's address (e.g. grpc://trainer-host:5050). Received: {text!r}.")
        return cls(host, int(port))

    def __str__(self):
        return f"{SCHEME}{self.host}:{self.port}"


def distributed(dataset, address, *, job_name):
    """A training pipeline produced by the tf.data service, each worker making whole epochs of it.

    The pictures travel as 8-bit pixels: clipped to [0, 255] and rounded by the workers.

    Args:
        dataset: The endless training pipeline, batches of (float pixels, labels).
        address: The dispatcher's Address.
        job_name: The service's job: one serves one pipeline, so each input pipeline of a run, and
            each fit() of it, needs its own.

    Returns:
        A tf.data.Dataset of the same (float32 pixels, labels) batches, made by the service's workers.
    """
    import tensorflow as tf

    from keras_resnet.data import pipeline
    from keras_resnet.data.pictures import plain

    # Pictures travel as 8-bit pixels, rounded: a quarter of float32's bytes. Measured (2 cores, a
    # worker pinned to each, 224x224 crops): 1 worker 180 images/s as float32, 620 as uint8.
    as_bytes = dataset.map(plain(lambda images, labels: (tf.cast(tf.round(tf.clip_by_value(images, 0.0, 255.0)), tf.uint8), labels)))
    served = as_bytes.apply(
        tf.data.experimental.service.distribute(processing_mode="distributed_epoch", service=str(address), job_name=job_name)
    )
    # The client's side is a new dataset, without the pipeline's options (the workers keep them).
    return pipeline.with_input_options(
        served.map(plain(lambda images, labels: (tf.cast(images, tf.float32), labels))),
        shard_policy=tf.data.experimental.AutoShardPolicy.OFF,  # what the service's own dataset sets
    )


def check_reachable(address, *, otherwise="or train without --data-service"):
    """Raises ServiceError when nothing listens at `address`: TensorFlow's client would otherwise
    retry for ever without a word. `otherwise`: the advice after how to start one."""
    try:
        with socket.create_connection((address.host, address.port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        raise ServiceError(
            f"Cannot reach the tf.data service dispatcher at {address} ({reason(error)}): "
            f"start it with `keras-resnet data-service --port {address.port}` on {address.host}, {otherwise}."
        ) from None


def serve(*, port, workers, host=None, log=print):
    """Runs a dispatcher and worker processes on this machine until interrupted (Ctrl-C, SIGTERM).

    A worker that exits is reported; the others go on. The workers end with this process, however it ends.

    Args:
        port: The dispatcher's port; 0: any free one (the log names it).
        workers: How many worker processes to start here.
        host: The name trainers reach this machine by; None: its fully qualified name.
        log: Called with each line to report.

    Raises:
        ServiceError: `port` is in use on this machine.
    """
    import tensorflow as tf

    _stop_on_sigterm()  # first: a SIGTERM from here on takes the workers down too
    if port and _listening("localhost", port):
        # gRPC binds with SO_REUSEPORT: a second dispatcher would share the port without an error.
        raise ServiceError(f"Port {port} is in use on this machine (another tf.data service?): choose another --port.")
    host = host or socket.getfqdn()
    dispatcher = tf.data.experimental.service.DispatchServer(
        tf.data.experimental.service.DispatcherConfig(port=port, worker_timeout_ms=WORKER_TIMEOUT_MS)
    )
    port = int(dispatcher.target.rsplit(":", 1)[1])  # the one chosen, for --port 0
    processes = []
    try:
        for _ in range(workers):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "keras_resnet", "data-service", "--dispatcher", f"localhost:{port}", "--host", host, "--quiet"],
                    preexec_fn=_end_with_parent,
                )
            )
        here = f" ({SCHEME}localhost:{port} from this machine)" if host != "localhost" else ""
        log(
            f"tf.data service: dispatcher at {SCHEME}{host}:{port}{here}, "
            f"{workers} worker process(es) (pid {', '.join(str(process.pid) for process in processes)}). "
            f"Train with --data-service {SCHEME}{host}:{port}; add workers elsewhere with "
            f"`keras-resnet data-service --dispatcher {host}:{port}`. Ctrl-C stops it."
        )
        running = dict(enumerate(processes))
        while True:
            for number, process in list(running.items()):
                if process.poll() is not None:
                    log(f"warning: worker {number + 1} (pid {process.pid}) exited with status {process.returncode}; the others go on.")
                    del running[number]
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    log("tf.data service stopped.")


def _listening(host, port):
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


def _end_with_parent():
    """In a worker process before it starts (Linux): a SIGTERM when the process that started it
    ends, even by SIGKILL, so that no worker outlives its service."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: Ctrl-C and SIGTERM still stop the workers
        pass


def work(*, dispatcher, port=0, host=None, log=print):
    """Runs one worker for a dispatcher until interrupted.

    Args:
        dispatcher: The dispatcher's Address.
        port: The worker's port; 0: any free one.
        host: The name the trainer reaches this machine by; None: localhost for a dispatcher on this
            machine, else this machine's fully qualified name.
        log: Called with the line that says the worker runs; None: nothing is said.

    Raises:
        ServiceError: Nothing listens at the dispatcher's address.
    """
    import tensorflow as tf

    check_reachable(dispatcher, otherwise="then this worker")
    if host is None:
        host = "localhost" if dispatcher.host in ("localhost", "127.0.0.1") else socket.getfqdn()
    worker = tf.data.experimental.service.WorkerServer(
        tf.data.experimental.service.WorkerConfig(
            dispatcher_address=f"{dispatcher.host}:{dispatcher.port}", worker_address=f"{host}:%port%", port=port
        )
    )
    if log:
        log(f"tf.data service worker (pid {os.getpid()}) serving {dispatcher}, reached as {host}. Ctrl-C stops it.")
    try:
        while True:  # the worker serves from its own threads; this one waits where Ctrl-C reaches it
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    del worker


def _stop_on_sigterm():
    """SIGTERM (a service manager stopping it) stops it as Ctrl-C does: workers are taken down too."""

    def interrupt(signal_number, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
