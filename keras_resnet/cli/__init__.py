"""The command-line programs, installed as console scripts (pyproject.toml) and run from a
checkout by the thin scripts that keep the README's commands: train.py, convert/to_tflite.py,
edge_demo/classify.py.

- inspect.py   keras-resnet                 summary and list of the networks (python -m keras_resnet)
- train.py     keras-resnet-train           train or evaluate (python train.py)
- convert.py   keras-resnet-convert         LiteRT models and their report (python convert/to_tflite.py)
- classify.py  keras-resnet-classify        classify pictures on a board, no TensorFlow (python edge_demo/classify.py)

Each has `main(argv=None)`, returning the exit code: 0, 1 when training failed, 2 for bad input
(one line on stderr, `usage_error`; `ArgumentParser` makes argparse's own errors one line too, and
`Number` types check each numeric flag's range as it is parsed, the range shown in --help), 130
when interrupted.
"""

import argparse
import math
import sys

USAGE_ERROR = 2


def usage_error(message):
    """Bad input, as every program reports it: one line on stderr; returns exit code 2."""
    print(f"error: {message}", file=sys.stderr)
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
    """An argparse type: an int or float within [minimum, maximum] (finite). A value outside is
    refused as the flag is parsed: one line naming the flag, the valid range and what was received."""

    def __init__(self, kind, *, minimum=None, maximum=None, above=None, below=None):
        self.kind, self.minimum, self.maximum, self.above, self.below = kind, minimum, maximum, above, below
        noun = "an integer" if kind is int else "a number"
        show = lambda value: f"{value:g}" if isinstance(value, float) else str(value)  # noqa: E731
        if above is not None:
            self.text = f"{noun} above {show(above)}" + (f" and at most {show(maximum)}" if maximum is not None else "")
        elif maximum is not None:
            self.text = f"{noun} from {show(minimum)} to {show(maximum)}"
        elif below is not None:
            self.text = f"{noun} from {show(minimum)} to below {show(below)}"
        else:
            self.text = f"{noun} of at least {show(minimum)}"
        self.__name__ = self.text  # argparse names the type in its own messages

    def __call__(self, text):
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expects {self.text}. Received: {text!r}.") from None
        if not (
            math.isfinite(value)
            and (self.minimum is None or value >= self.minimum)
            and (self.maximum is None or value <= self.maximum)
            and (self.above is None or value > self.above)
            and (self.below is None or value < self.below)
        ):
            raise argparse.ArgumentTypeError(f"must be {self.text}. Received: {text}.")
        return value


# The ranges the programs share.
COUNT = Number(int, minimum=1)
NON_NEGATIVE_COUNT = Number(int, minimum=0)
NON_NEGATIVE = Number(float, minimum=0)
THREADS = Number(int, minimum=1, maximum=1024)
SEED = Number(int, minimum=0, maximum=2**32 - 1)  # what NumPy's and TensorFlow's seeding take (config.MAX_SEED)
