"""LiteRT (.tflite) models of a trained ResNet for phones and edge devices, checked against the Keras
model: the conversion behind convert/to_tflite.py and the runtime the edge demo shares."""
