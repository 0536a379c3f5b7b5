# Two commands set everything up on a fresh machine:
#   make run    create .venv if missing, then run the main job on the built-in simulator
#   make test   create .venv if missing, then run the test suite
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

export OMP_NUM_THREADS ?= 1
export MLFLOW_DISABLE_TELEMETRY ?= true

.PHONY: run test
run: $(STAMP)
	$(VENV)/bin/python train.py +experiment=enterprise

test: $(STAMP)
	$(VENV)/bin/python -m pytest

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev,peers]'
	touch $(STAMP)
