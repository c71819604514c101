"""python edge_demo/classify.py --model M.tflite photo.jpg — classify on a board, without TensorFlow.

The program is keras_resnet/cli/classify.py, also installed as the `keras-resnet-classify` command
(`pip install 'keras-resnet-edge[demo]'` on a board: ai-edge-litert, numpy and Pillow only).
"""

import sys

from keras_resnet.cli.classify import main, parser  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
