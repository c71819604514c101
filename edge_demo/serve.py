"""python edge_demo/serve.py --model M.tflite — the browser demo for a phone, without TensorFlow.

The program is keras_resnet/cli/serve.py, also installed as the `keras-resnet-serve` command; the
page it serves is edge_demo/web/ (LiteRT.js in it from `npm ci --prefix edge_demo/web`).
"""

import sys

from keras_resnet.cli.serve import main, parser  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
