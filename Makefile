# make demo: set up .venv, train ResNet-20, convert it to LiteRT, classify a sample picture · make check: the fast tests
# (the developer loop, minutes) · make test: set up .venv and LiteRT.js, run every test (CI)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

WEB := edge_demo/web

.PHONY: setup web demo check test fixtures

setup: $(VENV)/installed

$(VENV)/installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# LiteRT.js for the browser demo, exactly as the lockfile pins it (npm writes .package-lock.json).
web: $(WEB)/node_modules/.package-lock.json

$(WEB)/node_modules/.package-lock.json: $(WEB)/package-lock.json
	npm ci --prefix $(WEB) --no-audit --no-fund --loglevel=error

# Trains once (a finished run is resumed: nothing to do), converts it to LiteRT with its report, then
# classifies a sample picture with the int8 model as a board would (edge_demo/classify.py, no TensorFlow).
DEMO_RUN := runs/demo-resnet20
# The report measures every target on LiteRT's GPU accelerator when there is a GPU (a Vulkan driver).
# A machine with no GPU device at all (no /dev/dri, no /dev/nvidia0) runs that GPU code path on
# SwiftShader, Chromium's software Vulkan driver, when it is installed: the report labels it so.
SWIFTSHADER_ICD := /usr/lib/chromium/vk_swiftshader_icd.json
NO_GPU := $(if $(VK_ICD_FILENAMES)$(VK_DRIVER_FILES)$(wildcard /dev/dri /dev/nvidia0),,yes)
DEMO_GPU := $(if $(and $(NO_GPU),$(wildcard $(SWIFTSHADER_ICD))),VK_ICD_FILENAMES=$(SWIFTSHADER_ICD) XDG_RUNTIME_DIR=$${XDG_RUNTIME_DIR:-/tmp})

demo: setup
	$(BIN)/python train.py --depth 20 --epochs 6 --output $(DEMO_RUN) $(if $(wildcard $(DEMO_RUN)/last.keras),--resume)
	$(DEMO_GPU) $(BIN)/python convert/to_tflite.py --run $(DEMO_RUN)
	$(BIN)/python edge_demo/classify.py --model $(DEMO_RUN)/tflite/resnet20_int8-qat.tflite edge_demo/samples/triangle.png

# The tiers are markers (pytest.ini): check leaves out the integration and end-to-end tests.
check: setup web
	$(BIN)/python -m pytest -m "not integration and not e2e"

test: setup web
	$(BIN)/python -m pytest

# The committed fixture of the fast tier (tests/fixtures/resnet8): a trained ResNet-8 and its .tflite
# models. Regenerate it after a change to the run directory's files or the .tflite format.
fixtures: setup
	cd tests && PYTHONPATH=$(CURDIR) $(CURDIR)/$(BIN)/python -m support.fixtures
