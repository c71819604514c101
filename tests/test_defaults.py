"""Defaults that fit the data: the batch cap, the image size from the weights or the pictures, the
warm-up cap, each printed once; flags kept; a default never makes a valid command fail."""

import json
import math

import pytest

import keras_resnet

from keras_resnet.errors import UsageError
from keras_resnet.run import config as config_lib
from keras_resnet.run.resolve import resolve


# A model of ours trained at 64 px, written by the test that needs it.
OWN_RESNET18 = "own resnet18"


def fitted(config, **data):
    return config.fit_to_data(**{"train_examples": 50_000, **data})


# -- batch ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "examples, expected",
    [(540, 32), (50_000, 256), (4096, 256), (4095, 128), (100, 8), (5, 5), (1, 1)],
)
def test_the_recipe_batch_is_halved_until_an_epoch_has_16_steps(examples, expected):
    config, notes = fitted(resolve(depth=18, dataset="folder:x"), train_examples=examples)
    assert config.training.batch_size == expected
    # The rule, independently: at least 16 steps (or the floor of 8, or one batch of everything),
    # and the next larger halving would have fewer.
    assert examples // expected >= 16 or expected in (8, examples)
    assert expected == 256 or examples // (2 * expected) < 16
    assert math.isclose(config.training.learning_rate, 0.1 * expected / 256)  # linear scaling, as the recipe
    if expected != 256:
        assert f"batch {expected} (capped from 256: {examples} training pictures)" in notes
    config.plan(examples)  # a default never makes the command fail


def test_a_chosen_batch_and_rate_are_kept():
    config, notes = fitted(resolve(depth=18, dataset="folder:x", batch_size=256, lr=0.3), train_examples=540)
    assert (config.training.batch_size, config.training.learning_rate) == (256, 0.3)
    assert not any(note.startswith(("batch", "learning rate")) for note in notes)


def test_a_chosen_rate_stays_when_the_batch_is_capped():
    config, _ = fitted(resolve(depth=18, dataset="folder:x", lr=0.05), train_examples=540)
    assert (config.training.batch_size, config.training.learning_rate) == (32, 0.05)


def test_the_capped_batch_splits_over_the_replicas():
    config, _ = fitted(resolve(depth=20, dataset="folder:x"), train_examples=300, replicas=3)
    assert config.training.batch_size % 3 == 0 and 300 // config.training.batch_size >= 16


def test_the_recipes_batch_is_rounded_to_the_replicas_on_large_data():
    # Enough pictures for the recipe's 128: only the rounding to 3 replicas changes it, and the
    # rate follows (it was noted as 126 and left at 128, which train() then refused).
    config, notes = fitted(resolve(depth=20, dataset="folder:x"), train_examples=100_000, replicas=3)
    assert config.training.batch_size == 126
    assert math.isclose(config.training.learning_rate, resolve(depth=20, dataset="folder:x").training.learning_rate * 126 / 128)
    assert "batch 126 (the recipe's 128, rounded to a multiple of 3 replicas)" in notes


# -- warm-up ---------------------------------------------------------------------------------------------


def test_a_default_warmup_is_capped_to_a_tenth_of_a_short_run():
    # The degradation experiment's default warm-up (1 epoch) on a 20-step run used to be refused.
    config = resolve(depth=8, family="cifar", dataset="synthetic", steps=20).with_defaults(warmup_epochs=1)
    config, notes = config.fit_to_data(train_examples=10_000)
    steps_per_epoch = 10_000 // 128
    assert math.isclose(config.training.warmup_epochs, float(f"{0.1 * 20 / steps_per_epoch:.4g}"))
    assert any(note.startswith("warm-up") and "capped from 1" in note for note in notes)
    assert config.plan(10_000).warmup_steps <= 2


def test_a_chosen_warmup_longer_than_the_run_is_refused():
    config = resolve(depth=8, family="cifar", dataset="synthetic", steps=20, warmup_epochs=1)
    config, _ = config.fit_to_data(train_examples=10_000)
    with pytest.raises(UsageError, match="--warmup-epochs 1 is longer than the training it warms up"):
        config.plan(10_000)


def test_the_cosine_warmup_of_a_long_run_is_left_alone():
    config, _ = fitted(resolve(depth=50, dataset="folder:x", schedule="cosine"), train_examples=1_281_167)
    assert config.training.warmup_epochs == 5


# -- image size --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, data, expected, origin",
    [
        # No weights: the family's size, or the pictures' when smaller.
        (dict(depth=18), dict(picture_side=64), 64, "the pictures' median shorter side"),
        (dict(depth=18), dict(picture_side=500), 224, "the default of an ImageNet-style network"),
        (dict(depth=20), dict(picture_side=28), 28, "the pictures' median shorter side"),
        (dict(depth=18), dict(picture_side=28), 64, "the pictures' median shorter side is 28 px; an ImageNet-style network gets at least 64"),
        (dict(depth=18), dict(), 224, "the default of an ImageNet-style network"),
        # Published weights: the size their accuracy is quoted at, or the pictures' when smaller.
        (dict(weights="timm/resnet18.a1_in1k"), dict(weights_image_size=288, weights_origin="timm/resnet18.a1_in1k"), 288, "from timm/resnet18.a1_in1k"),
        (dict(weights="timm/resnet18.a1_in1k"), dict(weights_image_size=288, weights_origin="timm/resnet18.a1_in1k", picture_side=96), 96, "the pictures'"),
        # A model of ours: its own size, whatever the pictures.
        (dict(depth=18, weights=OWN_RESNET18), dict(weights_image_size=64, weights_origin="runs/r18/best.keras", picture_side=40), 64, "from runs/r18/best.keras"),
        (dict(depth=18, weights=OWN_RESNET18), dict(weights_image_size=64, weights_origin="runs/r18/best.keras", picture_side=500), 64, "from runs/r18/best.keras"),
    ],
)
def test_the_default_image_size(flags, data, expected, origin, tmp_path_factory):
    if flags.get("weights") == OWN_RESNET18:  # resolve() reads the model's layout: a real one
        path = tmp_path_factory.getbasetemp() / "r18.keras"
        if not path.exists():
            keras_resnet.build("resnet18", input_shape=(64, 64, 3), classes=3).save(path)
        flags = {**flags, "weights": str(path)}
    config, notes = fitted(resolve(dataset="folder:x", **flags), **data)
    assert config.data.image_size == expected and config.model.input_shape == (expected, expected, 3)
    note = next(note for note in notes if note.startswith("image size"))
    assert note.startswith(f"image size {expected} (") and origin in note


def test_a_chosen_image_size_is_kept_and_not_announced():
    config, notes = fitted(resolve(depth=18, dataset="folder:x", image_size=112), picture_side=40, weights_image_size=288)
    assert config.data.image_size == 112 and not any(note.startswith("image size") for note in notes)


def test_which_defaults_were_chosen_stays_out_of_config_json(tmp_path):
    config = resolve(depth=18, dataset="folder:x")
    assert config.defaulted == {"batch_size", "learning_rate", "warmup_epochs", "image_size"}
    assert "defaulted" not in json.dumps(config.to_json())
    again = config_lib.RunConfig.from_json(config.to_json())
    assert again == config and again.defaulted == frozenset()
    assert resolve(depth=18, batch_size=8, lr=0.1, warmup_epochs=0, image_size=64).defaulted == frozenset()


def test_the_default_frozen_phase_takes_at_most_half_the_run():
    config, notes = fitted(resolve(weights="timm/resnet18.a1_in1k", dataset="folder:x", epochs=3), train_examples=540)
    assert config.training.freeze_epochs == 1 and "frozen phase 1 epoch (capped from 2: half the training)" in notes
    config.plan(540)
    config, _ = fitted(resolve(weights="timm/resnet18.a1_in1k", dataset="folder:x", epochs=3, freeze_epochs=3), train_examples=540)
    with pytest.raises(UsageError, match="--freeze-epochs 3 .* leaves nothing"):
        config.plan(540)  # chosen: refused, not changed
    config, _ = fitted(resolve(weights="timm/resnet18.a1_in1k", dataset="folder:x"), train_examples=540)
    assert config.training.freeze_epochs == 2  # 20 epochs: the recipe's
