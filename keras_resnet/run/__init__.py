"""A training run as data, without TensorFlow: what train.py, conversion and the experiments share.

- config.py     RunConfig: the network, data, recipe and runtime of a run; config.json read and written
- recipes.py    the paper's training recipes (Sec. 3.4 and 4.2) as data
- directory.py  the run directory: its files, its lock, its history, the model of our own it holds
- resolve.py    a user's choices (train.py's flags) → one complete RunConfig
- weights_source.py  --weights resolved: the layout they dictate, their classes, their image size

resolve.py and weights_source.py sit above the weights formats (they ask a checkpoint or a run for
its network and layout); the other three import nothing of the package beyond nets.specs, ranges,
files, errors and runtime's preprocessing and labels (tests/test_import_layers.py holds the order).
"""
