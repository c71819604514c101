"""Which picture files each reader opens, by file name: three readers, three sets, one place.

No TensorFlow, nothing newer than Python 3.7 (the board's programs use it).
"""

# What training reads from a folder: the formats TensorFlow's decoders take (JPEG, PNG, GIF's first
# frame, BMP; keras_resnet.data.pictures decodes them as Pillow does).
TRAINING_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# What classify.py opens (Pillow): those, and WebP, TIFF and the Netpbm formats.
PILLOW_EXTENSIONS = TRAINING_EXTENSIONS + (".webp", ".tif", ".tiff", ".ppm", ".pgm")
# What the demo page's sample strip shows: the formats every browser displays.
BROWSER_EXTENSIONS = TRAINING_EXTENSIONS + (".webp",)
