"""One evaluation transform in three implementations: Keras' evaluation (TensorFlow,
keras_resnet.data), classify.py (Pillow, keras_resnet.runtime) and the page (JavaScript,
edge_demo/web/preprocess.js). The same pictures through each must give the model the same input.
(The page's own decoding in Chromium is compared in tests/test_edge_demo.py.)"""

import base64
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from support.programs import REPOSITORY
from keras_resnet.data import pipeline, sources
from keras_resnet.data.pictures import decode_picture
from keras_resnet.runtime.classifier import load_image
from keras_resnet.runtime.preprocessing import Preprocessing, for_augmentation
from support.pictures import write_parity_pictures

CROPS = (1.0, 0.875, 0.5)
SIZES = (32, 64, 224)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    return write_parity_pictures(tmp_path_factory.mktemp("parity"))


def keras_input(path, size, preprocessing):
    """What Keras' evaluation feeds the model for the picture file at `path`."""
    picture = decode_picture(tf.io.read_file(str(path)), sources.picture_orientation(path))
    return pipeline.evaluation_transform(picture, size, preprocessing).numpy()


def test_keras_evaluation_and_classify_py_give_the_model_the_same_pixels(pictures):
    worst = 0.0
    for path in pictures:
        image = load_image(path)
        for crop in CROPS:
            for size in SIZES:
                preprocessing = Preprocessing(crop)
                device = preprocessing.apply(image, (size, size)).astype(np.float32)
                keras = keras_input(path, size, preprocessing)
                if "rotated" in path.name:
                    assert image.size == (60, 90)  # upright in both
                assert device.shape == keras.shape == (size, size, 3)
                difference = np.abs(device - keras).max()
                assert difference <= 1.0, (path.name, crop, size, difference)  # one 8-bit step
                worst = max(worst, difference)
    # Not trivially equal: Pillow rounds between its passes, TensorFlow does not.
    assert worst == 1.0


def test_the_page_transform_gives_pillows_pixels_exactly(pictures, tmp_path):
    """edge_demo/web/preprocess.js under node's test runner, on the pictures' decoded pixels."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    cases = []
    for path in pictures:
        image = load_image(path)
        pixels = np.asarray(image)
        for crop in CROPS:
            for size in SIZES:
                expected = Preprocessing(crop).apply(image, (size, size))
                cases.append({
                    "name": path.name, "width": image.width, "height": image.height, "size": size, "cropFraction": crop,
                    "pixels": base64.b64encode(pixels.tobytes()).decode(), "expected": base64.b64encode(expected.tobytes()).decode(),
                })
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    result = subprocess.run(
        [node, "--test", os.path.join(REPOSITORY, "edge_demo", "web", "preprocess.test.mjs")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PREPROCESS_CASES": str(tmp_path / "cases.json")},
    )
    failures = [line for line in result.stdout.splitlines() if line.startswith("not ok") or "differ from Pillow" in line]
    assert result.returncode == 0, "\n".join(failures[:40]) + result.stderr[-2000:]
    assert f"# pass {len(cases) + 1}" in result.stdout and "# fail 0" in result.stdout


def test_the_crop_box_and_the_family_defaults():
    assert Preprocessing(1.0).box(300, 200) == (50.0, 0.0, 250.0, 200.0)
    assert Preprocessing(0.875).box(256, 256) == (16.0, 16.0, 240.0, 240.0)  # torchvision's 224 of 256
    assert for_augmentation("imagenet") == Preprocessing(0.875)
    assert for_augmentation("cifar") == Preprocessing(1.0)
    assert for_augmentation("imagenet", 1.0) == Preprocessing(1.0)
    with pytest.raises(ValueError, match="crop_fraction must be from 0.1 to 1. Received: 1.5"):
        Preprocessing(1.5)
    assert Preprocessing.from_json(Preprocessing(0.9).to_json()) == Preprocessing(0.9)


def test_a_square_picture_at_the_input_size_is_taken_as_it_is(pictures):
    """No resampling where none is needed (CIFAR-style nets on 32 × 32 pictures): both keep the pixels."""
    path = pictures[0]  # 64 × 64
    image = load_image(path)
    np.testing.assert_array_equal(Preprocessing(1.0).apply(image, (64, 64)), np.asarray(image))
    np.testing.assert_array_equal(keras_input(path, 64, Preprocessing(1.0)), np.asarray(image, np.float32))
