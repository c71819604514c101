# make demo: set up .venv, train ResNet-20 and convert it to LiteRT · make test: set up .venv and run the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test

setup: $(VENV)/installed

$(VENV)/installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Trains once (a finished run is resumed: nothing to do), then converts it to LiteRT with its report.
DEMO_RUN := runs/demo-resnet20

demo: setup
	$(BIN)/python train.py --depth 20 --epochs 6 --output $(DEMO_RUN) $(if $(wildcard $(DEMO_RUN)/last.keras),--resume)
	$(BIN)/python convert/to_tflite.py --run $(DEMO_RUN)

test: setup
	$(BIN)/python -m pytest
