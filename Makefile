# Two commands do all setup on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha1sum | cut -c1-12)
STAGE ?= dev
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
CDK_CONTEXT := {"stage":"$(STAGE)","commit":"$(COMMIT)"}

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export AWS_DEFAULT_REGION ?= us-east-1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv demo test test-fast lint docs openapi snapshots format synth layer local bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)  ## create .venv and install the pinned requirements (when missing or changed)

demo: venv  ## the whole lifecycle on the local cloud (no AWS account, no Docker)
	$(PY) -m infra.cli demo

test: venv checks-venv oip-venv mlflow-venv chromium  ## every test: unit, integration (moto), infra (CDK, cdk-nag, cfn-lint, checkov), e2e (local cloud)
	@# The e2e tests (local cloud) run beside the others, in a second pytest process: they wait
	@# on HTTP, queues and function workers much of the time. Their output is printed after the
	@# others'; the target fails if either process does. jsii unpacks its runtime once first.
	$(PY) -c "import aws_cdk"
	@mkdir -p .mlops
	@$(PY) -m pytest tests/e2e -p no:cacheprovider > .mlops/test-e2e.log 2>&1 & e2e=$$!; \
	trap 'kill $$e2e 2>/dev/null' INT TERM; \
	$(PY) -m pytest --ignore=tests/e2e; rest=$$?; \
	wait $$e2e; e2e_status=$$?; \
	echo "==== e2e tests (tests/e2e, run beside the others) ===="; cat .mlops/test-e2e.log; \
	echo "==== exit codes: others $$rest, e2e $$e2e_status ===="; \
	exit $$(( rest != 0 || e2e_status != 0 ))

test-fast: venv  ## unit and integration tests only
	$(PY) -m pytest tests/unit tests/integration

lint: venv checks-venv docs  ## ruff, formatting, mypy; the GitHub workflows: zizmor (offline) and GitHub's workflow schema; the docs site
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	.venv-checks/bin/zizmor --offline --persona=pedantic .github/workflows/*.yml
	.venv-checks/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

docs: checks-venv  ## build the docs site into site/, strictly (a broken link or anchor fails), offline
	PYTHONPATH=$(CURDIR) NO_MKDOCS_2_WARNING=1 .venv-checks/bin/mkdocs build --strict --clean

openapi: venv  ## rewrite docs/openapi.json (the serving page's OpenAPI document) from the code
	$(PY) docs/hooks/openapi_document.py

snapshots: venv  ## rewrite the template snapshots and the stateful-resource record (tests/infra); review the diff
	MLOPS_UPDATE_SNAPSHOTS=1 $(PY) -m pytest -q -p no:randomly tests/infra/test_template_snapshot.py

format: venv  ## apply ruff's fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

synth: venv  ## synthesize cdk.out/ for STAGE (default dev), stamped with the git COMMIT
	rm -rf cdk.out
	CDK_CONTEXT_JSON='$(CDK_CONTEXT)' $(PY) -m infra.cdk.app

layer: venv  ## build the serving layer (pip, arm64 wheels, no Docker) into .mlops/build/; synth does it too
	$(PY) -m infra.cdk.layers

CDK_CLI := aws-cdk@2.1148.1
OUT ?= .mlops/train-local
.PHONY: predeploy deploy train-local

predeploy: venv  ## checks without AWS: layer size, arm64/3.13 wheels, Dockerfile, every handler imports, template changes
	$(PY) -m infra.cli predeploy --stage $(STAGE) $(PREDEPLOY_AGAINST) $(foreach id,$(ALLOW_REPLACEMENT),--allow-replacement $(id))

# make deploy compares with the deployed stack: a stateful resource replaced or deleted stops it
# unless ALLOW_REPLACEMENT="LogicalId ..." names it.
deploy: PREDEPLOY_AGAINST := --aws
deploy: predeploy synth  ## the pre-deploy checks, cdk deploy of STAGE's stack (synth writes only that one), mlops migrate --apply, the smoke test
	npx --yes $(CDK_CLI) deploy --all --app cdk.out --require-approval never
	$(PY) -m infra.cli migrate --aws --stage $(STAGE) --apply
	$(PY) -m infra.cli smoke --aws --stage $(STAGE)

train-local: venv  ## ingest, train and evaluate DATA=path locally (no cloud) into OUT (.mlops/train-local)
	@test -n "$(DATA)" || { echo "usage: make train-local DATA=path/to/file.csv [OUT=dir]"; exit 2; }
	$(PY) -m infra.cli train-local $(DATA) --out $(OUT)

local: synth  ## start the local cloud in the foreground (Ctrl-C stops)
	$(PY) -m infra.cli local up --no-synth

bench: venv .venv-evidently/.installed .venv-nannyml/.installed  ## every benchmark, each printing its figures and ratios; fails if any target is missed
	@status=0; \
	$(PY) bench/ingest_memory.py || status=1; \
	$(PY) bench/train_overhead.py --threads 1 || status=1; \
	$(PY) bench/insight.py || status=1; \
	$(PY) bench/predict.py || status=1; \
	$(PY) bench/oip_binary.py || status=1; \
	$(PY) bench/predict_models.py || status=1; \
	$(PY) bench/local_api.py || status=1; \
	$(PY) bench/workers.py || status=1; \
	$(PY) bench/drift.py || status=1; \
	$(PY) bench/cbpe.py || status=1; \
	$(PY) bench/batch.py || status=1; \
	$(PY) bench/capture.py || status=1; \
	$(PY) bench/cost_inputs.py || status=1; \
	exit $$status

.venv-evidently/.installed: bench/requirements-evidently.txt  # Evidently, for bench/drift.py only
	test -x .venv-evidently/bin/python || $(PYTHON) -m venv .venv-evidently
	.venv-evidently/bin/python -m pip install --quiet --upgrade pip==26.3
	.venv-evidently/bin/python -m pip install --quiet -r bench/requirements-evidently.txt
	touch $@

.venv-nannyml/.installed: bench/requirements-nannyml.txt  # NannyML, for bench/cbpe.py only (Python < 3.13)
	test -x .venv-nannyml/bin/python || $(PYTHON) -m venv .venv-nannyml
	.venv-nannyml/bin/python -m pip install --quiet --upgrade pip==26.3
	.venv-nannyml/bin/python -m pip install --quiet -r bench/requirements-nannyml.txt
	touch $@

.PHONY: checks-venv
checks-venv: .venv-checks/.installed  ## checkov, zizmor, check-jsonschema in their own venv (checkov's pins conflict with .venv)

.venv-checks/.installed: requirements-checks.txt
	test -x .venv-checks/bin/python || $(PYTHON) -m venv .venv-checks
	.venv-checks/bin/python -m pip install --quiet --upgrade pip==26.3
	.venv-checks/bin/python -m pip install --quiet -r requirements-checks.txt
	touch $@

.PHONY: chromium
chromium:  ## Chromium from the OS packages (Debian; as root) where it is missing: the model card's browser test needs it, offline
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

.PHONY: oip-venv
oip-venv: .venv-oip/.installed  ## tritonclient in its own venv (its ml-dtypes bound conflicts with .venv), for the Open Inference Protocol client test

.venv-oip/.installed: requirements-oip.txt
	test -x .venv-oip/bin/python || $(PYTHON) -m venv .venv-oip
	.venv-oip/bin/python -m pip install --quiet --upgrade pip==26.3
	.venv-oip/bin/python -m pip install --quiet -r requirements-oip.txt
	touch $@

.PHONY: mlflow-venv
mlflow-venv: .venv-mlflow/.installed  ## MLflow in its own venv (never this project's package), for the MLflow model format test

.venv-mlflow/.installed: requirements-mlflow.txt
	test -x .venv-mlflow/bin/python || $(PYTHON) -m venv .venv-mlflow
	.venv-mlflow/bin/python -m pip install --quiet --upgrade pip==26.3
	.venv-mlflow/bin/python -m pip install --quiet -r requirements-mlflow.txt
	touch $@

clean:  ## remove build output (keeps .venv)
	rm -rf cdk.out .mlops .bench .pytest_cache .mypy_cache .ruff_cache
