"""Regenerates the committed fixture tests/fixtures/resnet8/: the ResNet-8 run the session fixture
`trained_run` trains (conftest.TRAINED), converted by convert/to_tflite.py, keeping what the fast
tier's edge tests read (the run's files, three of its .tflite models and the pictures for the page, about 1.5 MB).

    make fixtures

Run it after a change to the run directory's files or to the .tflite format; commit the result.
"""

import os
import shutil
import sys
import tempfile

from support.programs import REPOSITORY, TRAINED
from support.requirements import use_swiftshader

FIXTURE = os.path.join(REPOSITORY, "tests", "fixtures", "resnet8")
RUN_FILES = ["best.keras", "config.json", "labels.txt", "metrics.json", "history.csv"]
TFLITE_FILES = ["resnet8_int8-qat.tflite", "resnet8_gpu.tflite", "resnet8_fp32.tflite", "report.json", "samples"]


def main():
    use_swiftshader()  # the conversion's GPU check, as the session fixture converted_run runs it
    from keras_resnet.cli import convert, train

    with tempfile.TemporaryDirectory() as scratch:
        run = os.path.join(scratch, "resnet8")
        if train.main([*TRAINED, "--output", run]) != 0 or convert.main(["--run", run, "--latency-runs", "50"]) != 0:
            return 1
        fresh = os.path.join(scratch, "fixture")
        os.makedirs(os.path.join(fresh, "tflite"))
        for name in RUN_FILES:
            shutil.copy(os.path.join(run, name), os.path.join(fresh, name))
        for name in TFLITE_FILES:  # "samples": the run's pictures the conversion writes for the page
            source = os.path.join(run, "tflite", name)
            (shutil.copytree if os.path.isdir(source) else shutil.copy)(source, os.path.join(fresh, "tflite", name))
        with open(os.path.join(fresh, "README"), "w") as readme:
            readme.write(
                f"Written by `make fixtures` (tests/support/fixtures.py): train.py {' '.join(TRAINED)}, then\n"
                "convert/to_tflite.py --run. The fast tier's edge tests classify with these files.\n"
            )
        shutil.rmtree(FIXTURE, ignore_errors=True)
        shutil.copytree(fresh, FIXTURE)
    print(f"Wrote {FIXTURE}: {', '.join(sorted(os.listdir(FIXTURE)))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
