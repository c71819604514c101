"""Pictures that exercise the evaluation transform: several aspect ratios and sizes, odd sizes (the
crop box falls between pixels), grayscale, transparency, PNG and JPEG, a phone photo stored sideways
with its EXIF orientation."""

import numpy as np
from PIL import Image

# (width, height, mode, format)
PARITY_PICTURES = [
    (64, 64, "RGB", "png"),
    (97, 61, "RGB", "jpg"),
    (61, 97, "L", "png"),
    (300, 200, "RGB", "jpg"),
    (33, 120, "RGB", "png"),
    (28, 28, "L", "jpg"),
    (225, 224, "RGB", "png"),
    (17, 19, "RGBA", "png"),
    (640, 427, "RGB", "jpg"),
    (90, 60, "RGB-rotated", "jpg"),  # stored 90 × 60, EXIF orientation 6: shown 60 × 90
]
EXIF_ORIENTATION = 0x0112


def write_parity_pictures(folder, *, seed=0):
    """Writes PARITY_PICTURES into `folder` (smooth colour fields with edges, as photos have);
    returns their paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for index, (width, height, mode, extension) in enumerate(PARITY_PICTURES):
        coarse = rng.uniform(0, 255, (height // 6 + 2, width // 6 + 2, 4)).astype(np.uint8)
        picture = Image.fromarray(coarse, "RGBA").resize((width, height), Image.BICUBIC)
        picture = picture if mode == "RGBA" else picture.convert("RGB").convert(mode.split("-")[0])
        path = folder / f"{index}-{width}x{height}-{mode}.{extension}"
        options = {"quality": 90} if extension == "jpg" else {}
        if mode.endswith("-rotated"):
            exif = Image.Exif()
            exif[EXIF_ORIENTATION] = 6  # a quarter turn clockwise to be upright, as phones write it
            options["exif"] = exif.tobytes()
        picture.save(path, **options)
        paths.append(path)
    return paths
