"""python -m keras_resnet summary NAME | list (the same as the keras-resnet command)."""

import sys

from keras_resnet.cli.inspect import main

sys.exit(main())
