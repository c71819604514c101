"""Numeric ranges have one home (keras_resnet.run.config.FIELD_RANGES): train.py's flag types,
resolve() and the config.json reader check and word each one from it, and agree."""

import argparse
import math

import pytest

from keras_resnet.cli import Number
from keras_resnet.cli import train as train_cli
from keras_resnet.errors import ConfigFileError, UsageError
from keras_resnet.ranges import Range
from keras_resnet.run import config as config_lib
from keras_resnet.run.resolve import FLAGS, resolve


@pytest.mark.parametrize(
    "bounds, inside, outside, text",
    [
        (Range(int, 1), [1, 10**30], [0, -5], "an integer of at least 1"),
        (Range(int, 0, 64), [0, 64], [-1, 65], "an integer from 0 to 64"),
        (Range(float, 0, 1, maximum_included=False), [0.0, 0.999], [1.0, -1e-9], "a number from 0 to below 1"),
        (Range(float, 0, 1, minimum_included=False), [1e-12, 1.0], [0.0, 1.5], "a number above 0 and at most 1"),
        (Range(float, 0, 1e6), [0.0, 1e6], [math.nan, math.inf, -math.inf, 1e6 + 1], "a number from 0 to 1e+06"),
    ],
)
def test_a_range_holds_its_bounds_and_says_them(bounds, inside, outside, text):
    assert bounds.text == text
    assert all(bounds.contains(value) for value in inside)
    assert not any(bounds.contains(value) for value in outside)
    assert bounds.problem(outside[0]) == f"must be {text}" and bounds.problem(inside[0]) is None


def test_an_integer_too_large_for_a_float_is_outside_any_range():
    assert not Range(int, 0).contains(10**400)


def test_every_numeric_flag_of_train_py_takes_its_fields_range():
    flags = {action.dest: action for action in train_cli.parser()._actions}
    checked = 0
    for field, bounds in config_lib.FIELD_RANGES.items():
        dest = FLAGS.get(field, field).replace("-", "_")
        if dest not in flags:
            continue  # a field without a flag (classes, momentum, min_crop_area: from the data or the recipe)
        assert isinstance(flags[dest].type, Number) and flags[dest].type.range is bounds, field
        checked += 1
    assert checked == 15


@pytest.mark.parametrize(
    "field, section, value",
    [("seed", "training", -1), ("image_size", "data", 4), ("label_smoothing", "training", 1.0), ("learning_rate", "training", 2e6)],
)
def test_the_flag_resolve_and_config_json_refuse_a_value_in_the_same_words(field, section, value, capsys):
    text = config_lib.FIELD_RANGES[field].text
    flag = "--" + FLAGS.get(field, field.replace("_", "-"))

    with pytest.raises(SystemExit) as exit_code:
        train_cli.parser().parse_args(["--depth", "8", flag, str(value)])
    assert exit_code.value.code == 2 and f"argument {flag}: must be {text}. Received: {value}." in capsys.readouterr().err

    with pytest.raises(UsageError, match=rf"^{flag} must be {text}\. Received: {value}\.$".replace("+", r"\+")):
        resolve(depth=8, **{"lr" if field == "learning_rate" else field: value})

    stored = resolve(depth=8).to_json()
    stored[section][field] = value
    with pytest.raises(ConfigFileError) as error:
        config_lib.RunConfig.from_json(stored)
    assert f"'{section}' field '{field}' must be {text}. Received: {value}." in str(error.value)


def test_number_types_of_the_other_programs_word_their_ranges_alike():
    threads = Number(int, minimum=1, maximum=1024)
    assert threads.text == Range(int, 1, 1024).text == "an integer from 1 to 1024"
    with pytest.raises(argparse.ArgumentTypeError, match=r"^must be an integer from 1 to 1024\. Received: 0\.$"):
        threads("0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expects an integer from 1 to 1024\. Received: 'x'\.$"):
        threads("x")
