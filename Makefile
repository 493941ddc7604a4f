# Two commands: `make run` (the local stack) and `make test`. Both set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
PORT ?= 8080

# jsii (behind aws-cdk-lib) unpacks ~200 MB at the first synth: keep it inside the project, and quiet.
export JSII_RUNTIME_PACKAGE_CACHE_ROOT := $(CURDIR)/.cache/jsii
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: install run test lint format synth bench lock clean

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(UV) pip install --quiet --python $(PY) -r requirements.lock -e . --no-deps
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) -m infra.local --port $(PORT)

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Speed and memory, as ratios against baselines run side by side (results in bench/results/).
bench: install
	$(PY) -m bench

synth: install
	$(PY) -m infra.app

# Regenerate the locked dependency sets after editing pyproject.toml.
lock: install
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock -q
	$(UV) pip compile pyproject.toml --python-version 3.14 --python-platform aarch64-manylinux2014 -o requirements-lambda.lock -q
	$(UV) pip compile pyproject.toml --extra media --python-version 3.14 --python-platform x86_64-manylinux2014 -o requirements-worker.lock -q

clean:
	rm -rf $(VENV) .cache cdk.out .local .pytest_cache
