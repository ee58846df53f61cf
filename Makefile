# Two commands for a newcomer: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export CDK_DISABLE_CLI_TELEMETRY := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test check lint typecheck unit functional infra integration e2e synth nag bench \
        bench-fingerprint bench-consumer bench-retrieval bench-quality dashboards install clean

## install: create .venv and node_modules (idempotent; reruns only when pins change)
install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	# drain3 pins cachetools 4, which pymilvus cannot use; it is only the benchmark baseline.
	$(BIN)/pip install --quiet --no-deps drain3==0.9.11
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## demo: the whole pipeline locally on embedded defaults, with a readable report
demo: install
	$(BIN)/cali demo

## test: lint, types and the whole test suite (what CI runs)
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadgroup

## unit: domain code only, no servers and no network (seconds)
unit: install
	$(BIN)/pytest -n 2 tests/unit
## functional: the same code against local servers (moto, Milvus Lite, Slack and OpenAI stand-ins, tsc)
functional: install
	$(BIN)/pytest -n 2 --dist loadgroup tests/functional
infra: install
	$(BIN)/pytest tests/infra
integration: install
	$(BIN)/pytest tests/integration
e2e: install
	$(BIN)/pytest tests/e2e

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
typecheck: install
	$(BIN)/mypy

## synth: every environment, with cdk-nag and cfn-lint
synth: install
	PATH=$(CURDIR)/$(BIN):$$PATH npx cdk synth '**' --quiet
	$(BIN)/cfn-lint --non-zero-exit-code error cdk.out/assembly-*/*.template.json

## bench: every benchmark; the README quotes their output
bench: bench-fingerprint bench-consumer bench-retrieval bench-quality
bench-fingerprint: install
	$(BIN)/python -m bench.fingerprint
bench-consumer: install
	$(BIN)/python -m bench.consumer
bench-retrieval: install
	$(BIN)/python -m bench.retrieval
bench-quality: install
	$(BIN)/python -m bench.quality

## dashboards: regenerate grafana/dashboards/*.json from grafana/build.py
dashboards: install
	$(BIN)/cali dashboards build

clean:
	rm -rf cdk.out .cali .pytest_cache .mypy_cache .ruff_cache
