"""Checking an accelerator's answers before they are shown: the same self-test pictures through the
model on the accelerator and on the CPU (LiteRT's reference for the file), compared class by class.

A GPU path that agrees on one model can be wrong on the next (seen: an int8 ResNet-18 on LiteRT's GPU
accelerator agreeing with its CPU run on 42.5 % of pictures), so classify.py, serve.py's page and the
conversion report all run this check, with this tolerance, before they trust the GPU.
"""

import dataclasses

import numpy as np

# The most any class's probability may differ between the GPU and the CPU on a self-test picture. The
# GPU computes in float16 (integer models in float from their dequantized weights): measured
# differences of agreeing models are up to 14 uint8 steps (0.055); a wrong graph differs by far more.
TOLERANCE = 0.10
GENERATED_PICTURES = 4


@dataclasses.dataclass(frozen=True)
class SelfTestResult:
    pictures: int
    worst_difference: float  # the largest |Δp| over every picture and class
    worst_picture: int  # its index

    @property
    def passed(self):
        return self.worst_difference <= TOLERANCE

    def describe(self):
        # A broken GPU may answer anything: what is not a probability is said so, not printed.
        if not np.isfinite(self.worst_difference):
            amount = "a score that is not a number"
        elif self.worst_difference > 1:
            amount = "more than 1 (scores that are not probabilities)"
        else:
            amount = f"{self.worst_difference:.2f}"
        return (
            f"on {self.pictures} self-test picture{'s' if self.pictures != 1 else ''} a class's probability differs from the CPU's by up to "
            f"{amount} (picture {self.worst_picture + 1}; tolerance {TOLERANCE:.2f})"
        )


def pictures(metadata, input_shape):
    """The model's own self-test pictures (from its metadata), or generated ones for a file that
    carries none. uint8 arrays of the input's (height, width, 3)."""
    if metadata.selftest:
        return list(metadata.selftest)
    return generated(*input_shape[1:3])


def generated(height, width, count=GENERATED_PICTURES):
    """Deterministic pictures with structure at several scales (gradients, stripes, blobs, smoothed noise).

    Random pixels alone excite few of a classifier's features.

    Args:
        height: Each picture's height in pixels.
        width: Each picture's width in pixels.
        count: How many pictures.

    Returns:
        A list of `count` uint8 arrays of shape (height, width, 3), the same on every call.
    """
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    rng = np.random.default_rng(0)
    result = []
    for index in range(count):
        phase = rng.uniform(0, 2 * np.pi, 3)
        frequency = 2.0 + 3.0 * index
        channels = [
            np.sin(frequency * np.pi * (x * np.cos(p) + y * np.sin(p)) + p) for p in phase
        ]
        noise = rng.normal(0, 0.35, (height // 4 + 1, width // 4 + 1, 3)).repeat(4, 0).repeat(4, 1)[:height, :width]
        picture = np.stack(channels, axis=-1) * 0.6 + noise
        result.append(np.clip(np.round((picture + 1) * 127.5), 0, 255).astype(np.uint8))
    return result


def compare(accelerated, reference, test_pictures):
    """Runs pictures through two runtime models and measures how far the first's probabilities stray from the second's.

    Args:
        accelerated: The model under test (keras_resnet.runtime.model's interface: set_image, invoke,
            probabilities), e.g. a gpu.GpuModel.
        reference: The model it is compared with, with the same interface (the file on the CPU).
        test_pictures: The pictures, (H, W, 3) arrays of pixels in [0, 255] at the models' input size.

    Returns:
        A SelfTestResult: the largest absolute difference of any class's probability over every
        picture (infinity when a score is not a number) and the picture it was on.
    """
    worst, worst_picture = 0.0, 0
    for index, picture in enumerate(test_pictures):
        difference = float(np.max(np.abs(_scores(accelerated, picture) - _scores(reference, picture))))
        if not difference <= worst:  # a NaN is the worst
            worst, worst_picture = (difference if np.isfinite(difference) else float("inf")), index
    return SelfTestResult(pictures=len(test_pictures), worst_difference=worst, worst_picture=worst_picture)


def expected_scores(reference, test_pictures):
    """The reference model's probabilities for each picture: what the page compares its GPU with."""
    return [_scores(reference, picture) for picture in test_pictures]


def _scores(model, picture):
    model.set_image(np.asarray(picture, np.float32))
    model.invoke()
    return model.probabilities()
