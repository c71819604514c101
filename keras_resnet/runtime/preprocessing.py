"""The evaluation transform: how one picture becomes a model's input, the same in every stage.

Keras evaluation (keras_resnet.data.pipeline, in TensorFlow), classify.py and serve.py (Pillow, here)
and the page (edge_demo/web/preprocess.js) all apply it, and a test feeds the same pictures through
the three and compares the tensors. It travels with the model: in the run's config.json (data section,
`evaluation_crop`) and inside each .tflite file (keras_resnet.runtime.metadata).

The rule: the centred square whose side is `crop_fraction` of the picture's shorter side, resized to
the model's input with Pillow's BILINEAR filter (a triangle filter widened by the downscaling factor,
so that every source pixel counts, as an antialiased resize does), horizontally first, each pass
rounded to 8 bits. The square's corners may fall between pixels: the filter samples there, it does
not round the box.

crop_fraction 0.875 is the paper's and torchvision's evaluation (resize the shorter side to 256, take
the central 224); 1.0 is the whole centred square, which suits pictures framed tightly around their
subject, and CIFAR-style nets (trained on whole 32×32 pictures).
"""

import dataclasses

# The evaluation crop of each augmentation family, unless the run chose another (train.py --eval-crop).
DEFAULT_CROP_FRACTION = {"cifar": 1.0, "imagenet": 0.875}
# What classify.py and the page did before the transform travelled with the model: the whole square.
LEGACY_CROP_FRACTION = 1.0
MIN_CROP_FRACTION = 0.1


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    crop_fraction: float = LEGACY_CROP_FRACTION
    filter: str = "bilinear"  # Pillow's BILINEAR (the only one offered: the three implementations agree on it)

    def __post_init__(self):
        if not MIN_CROP_FRACTION <= self.crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction must be from {MIN_CROP_FRACTION} to 1. Received: {self.crop_fraction}.")
        if self.filter != "bilinear":
            raise ValueError(f"filter must be 'bilinear'. Received: {self.filter!r}.")

    def box(self, width, height):
        """The region of a width × height picture that becomes the input: (left, top, right, bottom)
        in pixels, as floats (Pillow's resize box)."""
        side = min(width, height) * self.crop_fraction
        left, top = (width - side) / 2, (height - side) / 2
        return (left, top, left + side, top + side)

    def apply(self, image, size):
        """A Pillow RGB image → the model's input pixels: uint8 array (height, width, 3), `size` as
        (width, height). Pillow's two passes are made one call each, horizontal first: Pillow 13
        chooses their order by the picture's shape (its rounding between them then differs), and
        the page's implementation must give the same pixels whatever Pillow a board has."""
        import numpy as np
        from PIL import Image

        left, top, right, bottom = self.box(*image.size)
        width, height = size
        across = image.resize((width, image.height), Image.BILINEAR, box=(left, 0, right, image.height))
        return np.asarray(across.resize((width, height), Image.BILINEAR, box=(0, top, width, bottom)))

    def describe(self):
        if self.crop_fraction == 1.0:
            return "the whole centred square, bilinear (antialiased)"
        return f"the central {self.crop_fraction:.1%} of the shorter side, bilinear (antialiased)"

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data):
        """Raises ValueError for anything that is not a Preprocessing's JSON."""
        if not isinstance(data, dict) or set(data) - {"crop_fraction", "filter"}:
            raise ValueError(f"not a preprocessing description: {str(data)[:80]}")
        fraction = data.get("crop_fraction", LEGACY_CROP_FRACTION)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            raise ValueError(f"crop_fraction must be a number. Received: {fraction!r}")
        return cls(crop_fraction=float(fraction), filter=data.get("filter", "bilinear"))


def for_augmentation(augmentation, crop_fraction=None):
    """The evaluation transform of a run: its own crop fraction, or its augmentation family's."""
    return Preprocessing(crop_fraction=crop_fraction if crop_fraction is not None else DEFAULT_CROP_FRACTION[augmentation])
