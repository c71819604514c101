"""The networks: the paper's ResNets as data (specs.py), their input normalization conventions
(normalization.py) — both without TensorFlow — and the Keras layers (layers.py), blocks (blocks.py),
builder (builder.py: build(), ResNet(), ResNetModel) and complexity counts (complexity.py) made from
them. Importing this package imports nothing: each module is imported by name."""
