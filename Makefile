# docflow: `make run` serves a seeded demo on http://127.0.0.1:8000, `make test` runs
# the whole suite. Both set up what they need first (system packages, virtualenv).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SYNCED := $(VENV)/.synced
PG_URL ?= postgres://postgres@127.0.0.1:5432/docflow_ci
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help bootstrap venv run seed test test-postgres lint format lock ci docs

help:
	@echo "make run            install, migrate, seed demo data, serve on 127.0.0.1:8000"
	@echo "make test           run the whole test suite (DATABASE_URL honoured)"
	@echo "make test-postgres  the suite on a local PostgreSQL ($(PG_URL))"
	@echo "make lint           ruff check, ruff format --check, the import contracts"
	@echo "make format         ruff format and ruff check --fix"
	@echo "make venv           create .venv and sync it with requirements.lock"
	@echo "make lock           re-lock requirements.lock from pyproject.toml"
	@echo "make docs           build the documentation site into site/ (warnings fail)"
	@echo "make ci             what CI runs (.ci/run)"

bootstrap:
	@scripts/bootstrap-system

venv: $(SYNCED)

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "docflow needs Python 3.11 or newer: try 'make PYTHON=python3.12 ...'" >&2; \
		exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv

# Re-sync only when the lock file is newer than the last sync.
$(SYNCED): requirements.lock | $(PY)
	$(VENV)/bin/uv pip sync --quiet --python $(PY) requirements.lock
	@touch $@

run: export DJANGO_DEBUG ?= 1
run: bootstrap venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py seed_demo
	$(PY) manage.py seed_intake_demo
	$(PY) manage.py setup_schedules
	scripts/run-dev

seed: export DJANGO_DEBUG ?= 1
seed: venv
	$(PY) manage.py seed_demo
	$(PY) manage.py seed_intake_demo

test: bootstrap venv
	$(PY) -m pytest $(PYTEST_ARGS)

test-postgres:
	scripts/ensure-postgres "$(PG_URL)"
	$(MAKE) test DATABASE_URL="$(PG_URL)"

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) scripts/check-private-imports

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lock: venv
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev -o requirements.lock \
		--python-version 3.11

docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

ci:
	bash .ci/run
