"""python convert/to_tflite.py --run RUN_DIR — LiteRT models of a trained ResNet, from a checkout.

The program is keras_resnet/cli/convert.py, also installed as the `keras-resnet-convert` command.
"""

import sys

from keras_resnet.cli.convert import main, parser  # noqa: F401  (tests call to_tflite.main in-process)

if __name__ == "__main__":
    sys.exit(main())
