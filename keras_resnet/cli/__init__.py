"""The command-line programs, installed as console scripts (pyproject.toml) and run from a
checkout by the thin scripts that keep the README's commands: train.py, convert/to_tflite.py,
edge_demo/classify.py.

- inspect.py   keras-resnet                 summary and list of the networks (python -m keras_resnet)
- train.py     keras-resnet-train           train or evaluate (python train.py)
- convert.py   keras-resnet-convert         LiteRT models and their report (python convert/to_tflite.py)
- classify.py  keras-resnet-classify        classify pictures on a board, no TensorFlow (python edge_demo/classify.py)

Each has `main(argv=None)`, returning the exit code: 0, 1 when training failed, 2 for bad input
(one line on stderr, `usage_error`), 130 when interrupted.
"""

import sys

USAGE_ERROR = 2


def usage_error(message):
    """Bad input, as every program reports it: one line on stderr; returns exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR
