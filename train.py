"""python train.py --depth 20 — train or evaluate a ResNet from a checkout.

The program is keras_resnet/cli/train.py, also installed as the `keras-resnet-train` command.
"""

import sys

from keras_resnet.cli.train import main, parser  # noqa: F401  (tests call train.main in-process)

if __name__ == "__main__":
    sys.exit(main())
