"""python edge_demo/serve.py --model M.tflite — the browser demo for a phone, without TensorFlow.

The program is keras_resnet/cli/serve.py, also installed as the `keras-resnet-serve` command; the
page it serves is web/ beside this file (LiteRT.js in it from `npm ci --prefix edge_demo/web`),
wherever the package itself was installed from.
"""

import os
import sys

from keras_resnet.cli.serve import main, parser  # noqa: F401

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")

if __name__ == "__main__":
    sys.exit(main(web_dir=WEB_DIR))
