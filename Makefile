# churn-kfp: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CDNOW_FILE ?= $(CURDIR)/../shared/data/cdnow/CDNOW_master.txt
export CHURN_HOME ?= $(CURDIR)/.churn
export MLFLOW_DISABLE_TELEMETRY ?= true
export OMP_WAIT_POLICY ?= PASSIVE
# VERBOSE=1 make run  -> every task's log on the terminal (default: one line per task;
# the full logs are in $(CHURN_HOME)/logs/ either way).
QUIET := $(if $(VERBOSE),,--quiet)
# IMAGE=registry/churn:tag make compile  -> components run in that image on a cluster.
ifdef IMAGE
export CHURN_IMAGE := $(IMAGE)
endif
# Where `make compile` / `submit` / `schedule` write the compiled pipelines.
PIPELINES_DIR ?= build/pipelines

.PHONY: help install run test test-fast lint lint-imports typecheck format compile bench bench-scale \
        simulate serve predict example-cdnow submit schedule images manifests clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "; printf "churn-kfp targets (local state lives in CHURN_HOME, default .churn/):\n\n"} \
	     /^[a-zA-Z_-]+:.*## / {printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

install: $(STAMP) ## Create .venv if missing; install the pinned project with its dev tools

run: $(STAMP) ## Train, evaluate and register a churn model locally (kfp.local, no cluster; VERBOSE=1: task logs)
	$(BIN)/churn run $(QUIET)

test: lint ## The lint checks, then the whole test suite (unit, pipeline, serving, storage, manifests)
	$(BIN)/python -m pytest

# test-fast spreads the tests over every core (pytest-xdist) and lets Python cache bytecode
# (some shells set PYTHONDONTWRITEBYTECODE, which makes pytest re-rewrite every test module).
test-fast: lint ## Inner loop: the lint checks, then every test but pipeline runs, servers and long scenarios
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n auto -m "not (slow or pipeline or serving or s3 or spark)"

# The same checks run as pre-commit hooks (.pre-commit-config.yaml).
lint: $(STAMP) ## Check with ruff (lint and format), the import contracts and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/lint_imports.py
	$(BIN)/mypy

lint-imports: $(STAMP) ## Check the import contracts (layers, light components) on the installed layout
	$(BIN)/python tools/lint_imports.py

typecheck: $(STAMP) ## Type-check the package with mypy (configured in pyproject.toml)
	$(BIN)/mypy

format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

compile: $(STAMP) ## Compile the pipelines to build/pipelines/*.yaml (IMAGE=registry/churn-kfp:tag)
	$(BIN)/churn compile --out-dir $(PIPELINES_DIR)

bench: $(STAMP) ## Measure speed and memory; prints figures, writes bench/results/*.json
	$(BIN)/python bench/run_all.py --out-dir bench/results

# 100M transactions: about 10 minutes on 2 cores; needs ~24 GiB of memory and disk for the
# generated Parquet in $TMPDIR (removed afterwards).
bench-scale: $(STAMP) ## Feature growth curve at 1M, 10M, 30M and 100M transactions (JSON + PNG)
	$(BIN)/python bench/features_bench.py --scale --out bench/results/features-scale.json

simulate: $(STAMP) ## Replay months of continuous learning: retraining vs a frozen model
	$(BIN)/churn simulate

serve: $(STAMP) ## Serve the champion with MLServer (V2 protocol) on 127.0.0.1 (MODEL_VERSION=n)
	$(BIN)/churn serve $(if $(MODEL_VERSION),--version $(MODEL_VERSION))

example-cdnow: $(STAMP) ## Import the real CDNOW purchase log and train on it (90-day horizon)
	$(BIN)/churn import examples/cdnow/mapping.yaml $(CDNOW_FILE) \
	    --landing-zone "$(CHURN_HOME)/landing-cdnow" --fresh
	$(BIN)/churn run --no-generate --landing-zone "$(CHURN_HOME)/landing-cdnow" \
	    --model-name churn-classifier-cdnow --horizon-days 90 --train-cutoffs 2 \
	    --eligibility-days 365 --windows 30,90,180,365 --test-cutoff 1998-03-01 $(QUIET)

submit: compile ## Upload the training pipeline to Kubeflow and run it (IMAGE, KFP_HOST, KFP_NAMESPACE, KFP_TOKEN; DEMO=1: synthetic data)
	$(BIN)/churn submit --pipeline churn-training --out-dir $(PIPELINES_DIR) $(if $(DEMO),--param generate=true)

schedule: compile ## Recurring run of the retraining pipeline (CRON="0 6 1 * *", 5-field cron)
	$(BIN)/churn schedule --cron "$(or $(CRON),0 6 1 * *)" --out-dir $(PIPELINES_DIR)

images: ## Build and push the component image: IMAGE=registry/churn-kfp:tag make images (needs docker)
	@test -n "$(IMAGE)" || { echo "set IMAGE, e.g. IMAGE=registry.example.com/ml/churn-kfp:0.1.0 make images" >&2; exit 2; }
	@command -v docker >/dev/null || { echo "docker not found: build the image where a Docker engine runs" >&2; exit 2; }
	docker build -f docker/Dockerfile -t "$(IMAGE)" \
	  --build-arg CHURN_GIT_COMMIT="$$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
	  --build-arg CHURN_VERSION="$$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)" .
	docker push "$(IMAGE)"

manifests: $(STAMP) ## Render every kustomize overlay to stdout (offline, no cluster; production needs its credential files)
	@for overlay in manifests/overlays/*/; do echo "--- # $$overlay"; \
	  if [ "$$overlay" = manifests/overlays/production/ ] && [ ! -f "$${overlay}credentials/minio.env" ]; then \
	    echo "# skipped: create $${overlay}credentials/*.env first (docs/deploy-kubeflow.md, step 1)"; continue; fi; \
	  $(BIN)/kubectl kustomize "$$overlay" || exit 1; done

clean: ## Remove local state (CHURN_HOME) and build outputs (keeps .venv)
	rm -rf "$(CHURN_HOME)" build bench/results
