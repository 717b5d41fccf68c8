# crs-predict: `make run` (train on the simulated default) and `make test` (the whole suite).
# Works from a fresh clone on a machine with Python 3.11, git and make only.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 5000

export PATH := $(abspath $(BIN)):$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1

.PHONY: help install run test test-fast lint ui bench clean lock

help:
	@echo "make run        create .venv, install, run the DVC pipeline on the SYNTHETIC default cohort"
	@echo "make test       install, ruff, the whole pytest suite (slow end-to-end tests included)"
	@echo "make test-fast  unit and property tests only"
	@echo "make ui         MLflow UI on http://127.0.0.1:$(PORT) for this project's store"
	@echo "make bench      benchmarks (speed and memory; not part of the tests)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# exact versions from requirements.lock (reproducible bytes), then the project itself without deps
$(STAMP): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@test -d .dvc || $(BIN)/dvc init --quiet
	$(BIN)/dvc repro
	@echo
	@echo "Done. The default cohort is SYNTHETIC (simulated); no clinical validity."
	@echo "  metrics:       data/metrics.json   (headline: dvc metrics show; every number: data/metrics_full.json)"
	@echo "  plots:         data/plots/, data/explain/shap_beeswarm.png"
	@echo "  model:         data/model/ ; registered as 'severe-crs' (see data/registration.json)"
	@echo "  MLflow store:  $(CURDIR)/mlflow.db ; open it with: make ui  (http://127.0.0.1:$(PORT))"

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -q

test-fast: lint
	$(BIN)/python -m pytest -q -m "not slow"

ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
		--default-artifact-root $(CURDIR)/mlartifacts --host 127.0.0.1 --port $(PORT)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

# re-resolve the dependency ranges of pyproject.toml (with the dev and spark extras) into requirements.lock
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet ".[dev,spark]"
	{ sed -n '1,3p' requirements.lock; .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^crs-predict'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
