# oci-dblab: two commands on a fresh machine.
#   make up     set up a venv and run `pulumi up` for the dev stack (local file backend, passphrase secrets)
# The state backend is Pulumi.yaml's `backend.url` (file://.pulumi-state), so `make` and every `pulumi` command typed
# by hand in this folder use the same state; a PULUMI_BACKEND_URL pointing elsewhere would win over it, so `stack`
# refuses to run with one.
#   make test   set up a venv, install and start what the tests need, run ruff and the whole test suite
#   make lab    no cloud account: the dev stack rehearsed on this machine (namespaces, nftables, sshd, MariaDB; root)
SHELL := /bin/bash
PY ?= python3
VENV := .venv
# checkov has its own virtualenv: its pins conflict with pulumi's (requirements-checkov.txt holds the one pin)
CHECKOV_VENV := .venv-checkov
STACK ?= dev
export PULUMI_SKIP_UPDATE_CHECK := true

.PHONY: venv checkov pulumi-cli backend-check stack up preview destroy test lint plan bench services lab lab-down

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --disable-pip-version-check -r requirements-checkov.txt
	touch $@

checkov: $(CHECKOV_VENV)/.installed

pulumi-cli:
	@command -v pulumi >/dev/null 2>&1 || { \
	  echo "The Pulumi CLI is not installed. Install it, then run 'make up' again:"; \
	  echo "  curl -fsSL https://get.pulumi.com | sh      (Linux/macOS; or: brew install pulumi/tap/pulumi)"; \
	  echo "  winget install pulumi                        (Windows)"; \
	  echo "Docs: https://www.pulumi.com/docs/install/"; exit 1; }

backend-check:
	@case "$${PULUMI_BACKEND_URL:-}" in ""|file://.pulumi-state|"file://$(CURDIR)/.pulumi-state") ;; *) \
	  echo "PULUMI_BACKEND_URL is set to '$$PULUMI_BACKEND_URL' and would win over Pulumi.yaml's backend"; \
	  echo "(file://.pulumi-state, this folder). Run 'unset PULUMI_BACKEND_URL' and try again."; exit 1;; esac

stack: venv pulumi-cli backend-check
	mkdir -p .pulumi-state
	pulumi stack select $(STACK) 2>/dev/null || pulumi stack init $(STACK) --secrets-provider passphrase

up: stack
	pulumi up --stack $(STACK)

preview: stack
	pulumi preview --stack $(STACK) --diff

destroy: stack
	pulumi destroy --stack $(STACK)

services:
	bash .ci/services.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: venv checkov services lint
	$(VENV)/bin/python -m pytest

plan: venv
	$(VENV)/bin/python -m labctl plan --stack $(STACK)

bench: venv services
	$(VENV)/bin/python bench/bench_plan.py
	$(VENV)/bin/python bench/bench_check.py

lab: venv services
	$(VENV)/bin/python -m labctl local up --stack $(STACK)

lab-down: venv
	$(VENV)/bin/python -m labctl local down --stack $(STACK)
