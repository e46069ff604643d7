PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
CDK_ENV ?= dev

.PHONY: run test lint typecheck bench clean synth

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	$(BIN)/alquimista-ops dev --host $(HOST) --port $(PORT)

test: $(STAMP_DEV)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP_DEV)
	$(BIN)/ruff check src tests bench infra
	$(BIN)/ruff format --check src tests bench infra
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP_DEV)
	$(BIN)/python bench/run_all.py

# synthesize the AWS stack with the CDK command line (installed locally by npm);
# the Lambda code is bundled locally with pip (no Docker).
synth: $(STAMP_DEV)
	cd infra && npm install --no-audit --no-fund --silent
	cd infra && JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 npx cdk synth \
		OperationalDashboardStack-$(CDK_ENV) --context env=$(CDK_ENV) --no-notices -q

clean:
	rm -rf $(VENV)
