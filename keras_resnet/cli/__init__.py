"""The command-line programs, installed as console scripts (pyproject.toml) and run from a
checkout by the thin scripts that keep the README's commands: train.py, convert/to_tflite.py,
edge_demo/classify.py.

- inspect.py   keras-resnet                 summary and list of the networks (python -m keras_resnet)
- train.py     keras-resnet-train           train or evaluate (python train.py)
- convert.py   keras-resnet-convert         LiteRT models and their report (python convert/to_tflite.py)
- classify.py  keras-resnet-classify        classify pictures on a board, no TensorFlow (python edge_demo/classify.py)
- serve.py     keras-resnet-serve           the browser demo for a phone, no TensorFlow (python edge_demo/serve.py)

Each has `main(argv=None)`, returning the exit code: 0, 1 when training failed, 2 for bad input
(one line on stderr, `usage_error`; `ArgumentParser` makes argparse's own errors one line too, and
`Number` types check each numeric flag's range as it is parsed, the range shown in --help), 130
when interrupted.
"""

import argparse
import sys

from keras_resnet import ranges
from keras_resnet.ranges import Range

USAGE_ERROR = 2


def print_line(line):
    """`line` on stderr in one write. print() writes a line and its end separately, and with stderr
    unbuffered (PYTHONUNBUFFERED) TensorFlow's C++ log lines from other threads (the input pipeline
    still decoding a damaged picture) can land between the two, leaving the line glued to theirs."""
    sys.stderr.write(f"{line}\n")
    sys.stderr.flush()


def usage_error(message):
    """Bad input, as every program reports it: one line on stderr; returns exit code 2."""
    print_line(f"error: {message}")
    return USAGE_ERROR


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line, as every other bad input (the usage is in --help)."""

    def error(self, message):
        self.exit(USAGE_ERROR, f"error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.HelpFormatter):
    """Each flag's help with its valid range (a `Number` type) and its default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if isinstance(action.type, Number) and action.type.text not in text:
            text += f" [{action.type.text}]"
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS or "default" in text:
            return text
        return text + " (default: %(default)s)"


class Number:
    """An argparse type: a number in a keras_resnet.ranges.Range (`Number(range)`, or the range's
    arguments: `Number(int, minimum=1)`). A value outside is refused as the flag is parsed: one line
    naming the flag, the valid range and what was received."""

    def __init__(self, kind_or_range, *, minimum=None, maximum=None, above=None, below=None):
        if isinstance(kind_or_range, Range):
            self.range = kind_or_range
        else:
            self.range = Range(
                kind_or_range,
                minimum if above is None else above,
                maximum if below is None else below,
                minimum_included=above is None,
                maximum_included=below is None,
            )
        self.text = self.range.text
        self.__name__ = self.text  # argparse names the type in its own messages

    def __call__(self, text):
        try:
            value = self.range.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expects {self.text}. Received: {text!r}.") from None
        if not self.range.contains(value):
            raise argparse.ArgumentTypeError(f"must be {self.text}. Received: {text}.")
        return value


# The ranges the programs share.
COUNT = Number(int, minimum=1)
NON_NEGATIVE_COUNT = Number(int, minimum=0)
NON_NEGATIVE = Number(float, minimum=0)
THREADS = Number(int, minimum=1, maximum=1024)
SEED = Number(ranges.SEED)
