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

.PHONY: install run test test-fast lint format synth bootstrap deploy destroy bench lock clean openapi web-export

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(UV) pip install --quiet --python $(PY) -r requirements.lock -e . --no-deps
	touch $@

# The web page's player (hls.js) and the docs' Swagger UI, from npm at the versions web/package-lock.json pins.
web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# The browser test drives Debian's Chromium (Playwright never downloads a browser): installed when missing.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	else echo "the browser test needs Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi

install: $(VENV)/.installed web/node_modules/.installed

run: install
	$(PY) -m infra.local --port $(PORT)

# Lint first (ruff, mypy): CI runs exactly this target.
test: lint $(CHROMIUM)
	$(PY) -m pytest

# While iterating: everything but the tests marked slow (make test and CI run those too).
test-fast: lint $(CHROMIUM)
	$(PY) -m pytest -m "not slow"

# ruff, then mypy (strict on videojobs/ and functions/; what it checks is in pyproject.toml).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Speed and memory, as ratios against baselines run side by side (results in bench/results/).
bench: install
	$(PY) -m bench

# CloudFormation into cdk.out/, checked by cdk-nag: no AWS credentials, no Docker, no CDK CLI needed.
synth: install
	$(PY) -m infra.app

# The CDK CLI from npm, pinned and kept inside the project (cdk.json runs the app with .venv's Python).
CDK_CLI_VERSION := 2.1148.1
CDK := .cache/cdk-cli/node_modules/.bin/cdk
$(CDK):
	npm install --prefix .cache/cdk-cli --no-audit --no-fund --loglevel=error aws-cdk@$(CDK_CLI_VERSION)

# These use your AWS credentials (AWS_PROFILE or the usual variables); deploy also needs Docker for the worker
# image. CDK_ARGS passes more options, e.g. make deploy CDK_ARGS="--require-approval never".
bootstrap: install $(CDK)
	$(CDK) bootstrap $(CDK_ARGS)

deploy: install $(CDK)
	$(CDK) deploy --outputs-file cdk-outputs.json $(CDK_ARGS)

destroy: install $(CDK)
	$(CDK) destroy $(CDK_ARGS)

# openapi.json from the handlers' own declarations (tools/openapi.py; a test fails when it is stale).
openapi: install
	$(PY) -m tools.openapi

# The web page and API docs as static files for any host: make web-export DIR=site API_URL=https://…/v1
web-export: install
	$(PY) -m infra.local.web $(or $(DIR),site) $(if $(API_URL),--api-url $(API_URL))

# Regenerate the locked dependency sets after editing pyproject.toml.
lock: install
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock -q
	$(UV) pip compile pyproject.toml --python-version 3.12 --python-platform aarch64-manylinux2014 -o requirements-lambda.lock -q
	$(UV) pip compile pyproject.toml --extra media --python-version 3.12 --python-platform x86_64-manylinux2014 -o requirements-worker.lock -q

clean:
	rm -rf $(VENV) .cache cdk.out .local .pytest_cache .mypy_cache web/node_modules
