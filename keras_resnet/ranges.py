"""The valid values of a numeric setting, and how they are said: the one place a range is written.
keras_resnet.run.config.FIELD_RANGES holds a run's ranges; train.py's flag types (keras_resnet.cli),
`resolve` and the config.json reader all check and word them through `Range`.

No TensorFlow, nothing newer than Python 3.7: the programs on a board (keras_resnet.cli) use it too.
"""

import math


class Range:
    """Finite ints (kind int) or numbers (kind float) from `minimum` to `maximum` (None: no bound),
    each bound included unless said otherwise."""

    def __init__(self, kind, minimum=None, maximum=None, *, minimum_included=True, maximum_included=True):
        self.kind, self.minimum, self.maximum = kind, minimum, maximum
        self.minimum_included, self.maximum_included = minimum_included, maximum_included

    def __repr__(self):
        return f"Range({self.kind.__name__}: {self.text})"

    @property
    def text(self):
        """'an integer from 1 to 64', 'a number above 0 and at most 1', 'a number from 0 to below 1'."""
        noun = "an integer" if self.kind is int else "a number"
        low, high = _show(self.minimum), _show(self.maximum)
        if not self.minimum_included:
            return f"{noun} above {low}" + (f" and {'at most' if self.maximum_included else 'below'} {high}" if self.maximum is not None else "")
        if self.maximum is None:
            return f"{noun} of at least {low}"
        return f"{noun} from {low} to {'' if self.maximum_included else 'below '}{high}"

    def contains(self, value):
        """Whether `value` (a number) lies in the range (NaN and infinities never do)."""
        try:
            if not math.isfinite(value):
                return False
        except OverflowError:  # an integer too large for a float
            return False
        if self.minimum is not None and (value < self.minimum or (value == self.minimum and not self.minimum_included)):
            return False
        return self.maximum is None or value < self.maximum or (value == self.maximum and self.maximum_included)

    def problem(self, value):
        """'must be …' when `value` is outside the range, else None."""
        return None if self.contains(value) else f"must be {self.text}"


# What NumPy's and TensorFlow's seeding take.
SEED = Range(int, 0, 2**32 - 1)


def _show(value):
    return f"{value:g}" if isinstance(value, float) else str(value)
