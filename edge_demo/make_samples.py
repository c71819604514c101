"""Write edge_demo/samples/: one picture per class of the embedded dataset, for the README and the tests.

    python edge_demo/make_samples.py                 # rewrites edge_demo/samples/*.png
    python edge_demo/make_samples.py --output /tmp/s --size 256

Each is the first example of its class in the validation split (no model chooses them), rendered at
--size pixels: the same scene a model trained on the embedded dataset sees at 32 × 32, drawn finer,
as a photo is finer than a model's input. The samples are committed, so a board without TensorFlow
has them; this script (which needs TensorFlow) is how they were made.
"""

import argparse
import os
import sys


from keras_resnet import files
from keras_resnet.quiet import import_tensorflow_quietly, list_devices_quietly

SAMPLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--output", default=SAMPLES_DIR, help="directory for CLASS.png")
    p.add_argument("--size", type=int, default=128, help="width and height in pixels")
    args = p.parse_args(argv)
    if not 16 <= args.size <= 2048:
        print(f"error: --size must be between 16 and 2048. Received: {args.size}.", file=sys.stderr)
        return 2
    import_tensorflow_quietly()
    list_devices_quietly()  # the device search's notices (cuInit on machines without a GPU), silenced
    from PIL import Image

    from keras_resnet.data import synthetic

    os.makedirs(args.output, exist_ok=True)
    wanted = set(range(len(synthetic.CLASS_NAMES)))
    for image, label in synthetic.dataset("validation", image_size=args.size).as_numpy_iterator():
        if label not in wanted:
            continue
        wanted.discard(label)
        path = os.path.join(args.output, f"{synthetic.CLASS_NAMES[label]}.png")
        with files.replacing(path) as temporary:
            Image.fromarray(image).save(temporary, format="PNG", optimize=True)
        relative = os.path.relpath(path)
        print(path if relative.startswith("..") else relative)
        if not wanted:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
