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


# Class colours of write_class_folders: far apart, so that a few epochs learn them.
CLASS_COLOURS = [(210, 40, 40), (40, 190, 60), (40, 60, 210), (220, 200, 40), (200, 60, 200), (40, 200, 200)]


def write_class_folders(root, *, classes=4, per_class=10, size=(40, 30), seed=0, colours=None):
    """Class folders of PNG pictures under `root` (created): class i is a noisy field of
    CLASS_COLOURS[i] (or `colours[i]`: the colour drawn for that folder, to plant mistakes).
    Returns the class names, in folder order."""
    rng = np.random.default_rng(seed)
    names = [f"class{index}" for index in range(classes)]
    for index, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        colour = (colours or CLASS_COLOURS)[index]
        for number in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{number}.png")
    return names


def write_folder(root, classes=("cats", "dogs", "owls"), per_class=12, size=40, rng=None, splits=None):
    """Class folders of images (in root/<split>/ for each of `splits`: per_class, then half as many)."""
    rng = rng or np.random.default_rng(0)
    for split_index, split in enumerate(splits or [None]):
        base = root / split if split else root
        count = per_class if split_index == 0 else max(1, per_class // 2)
        for index, name in enumerate(classes):
            folder = base / name
            folder.mkdir(parents=True)
            for number in range(count):
                pixels = rng.integers(0, 255, (size, size + 8 * index, 3), dtype=np.uint8)
                pixels[..., index % 3] = 255  # the class shows in one colour channel
                extension = ".png" if number % 2 else ".jpg"
                Image.fromarray(pixels).save(folder / f"{number}{extension}")
    return root
