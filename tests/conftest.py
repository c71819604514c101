"""Shared fixtures, the --require option and the tiers (pytest.ini). Helpers live in tests/support/."""

import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


import numpy as np  # noqa: E402
import pytest  # noqa: E402

# The GPU tests run LiteRT's GPU accelerator on SwiftShader where there is no GPU; `--require gpu`
# (CI) makes them fail instead of skipping when no Vulkan driver is there.
from support.requirements import NEEDS, REQUIRED, missing, require_gpu, use_swiftshader  # noqa: E402

use_swiftshader()

import keras_resnet  # noqa: E402,F401
from keras_resnet.quiet import import_tensorflow_quietly  # noqa: E402
from support.programs import REPOSITORY, TINY, TRAINED  # noqa: E402

import_tensorflow_quietly()  # once, before any test imports TensorFlow loudly


def pytest_addoption(parser):
    parser.addoption(
        "--require", default="", metavar="NEEDS",
        help=f"comma-separated needs ({', '.join(NEEDS)}, or all) whose absence fails a test instead of skipping it (CI)",
    )


def pytest_configure(config):
    requested = {need.strip() for need in config.getoption("--require").split(",") if need.strip()}
    requested = set(NEEDS) if "all" in requested else requested
    unknown = requested - set(NEEDS)
    if unknown:
        raise pytest.UsageError(f"--require {','.join(sorted(unknown))}: not a need; valid: {', '.join(NEEDS)}, all")
    REQUIRED.update(requested)


# Fixtures that make a test part of a slower tier whichever module it is in: a test that trains and
# converts its own network is an integration test; one that drives the browser is end to end.
TIER_OF_FIXTURE = {"trained_run": "integration", "converted_run": "integration", "chromium": "e2e"}


def pytest_collection_modifyitems(items):
    for item in items:
        for fixture, tier in TIER_OF_FIXTURE.items():
            if fixture in item.fixturenames:
                item.add_marker(tier)


def pytest_runtest_setup(item):
    """The gpu and root markers are the tests' requirements: checked before the test starts."""
    if item.get_closest_marker("gpu"):
        require_gpu()
    if item.get_closest_marker("root") and os.geteuid() != 0:
        missing("root", "needs root (it mounts a small filesystem)")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished run of support.programs.TINY for 2 epochs (8 steps), trained once per session and
    shared: tests read it, and copy it to change it."""
    from keras_resnet.cli import train

    output = tmp_path_factory.mktemp("runs") / "tiny"
    assert train.main([*TINY, "--epochs", "2", "--output", str(output)]) == 0
    return output


# The same run, trained and converted once by tests/fixtures/make_fixtures.py and committed: what the
# fast tier's edge tests classify with (they test the runtime, not training or conversion).
COMMITTED_RUN = os.path.join(REPOSITORY, "tests", "fixtures", "resnet8")


@pytest.fixture(scope="session")
def committed_run(tmp_path_factory):
    """A copy of the committed ResNet-8 run directory with its tflite/ (tests may write into it)."""
    copy = tmp_path_factory.mktemp("committed") / "resnet8"
    shutil.copytree(COMMITTED_RUN, copy)
    return copy


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A train.py run directory of a trained ResNet-8 (shared by the conversion and edge tests)."""
    import train

    output = tmp_path_factory.mktemp("runs") / "resnet8"
    assert train.main([*TRAINED, "--output", str(output)]) == 0
    return output


@pytest.fixture(scope="session")
def converted_run(trained_run):
    """trained_run/tflite: every LiteRT target of convert/to_tflite.py, with its report."""
    from keras_resnet.cli import convert

    assert convert.main(["--run", str(trained_run), "--latency-runs", "50"]) == 0
    return trained_run / "tflite"
