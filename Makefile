# datastore_lite — every target sets itself up: a virtualenv in .venv with the package
# installed (editable) with its test and dev dependencies, and PostgreSQL found or started.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,dev]"
	@touch $(STAMP)

venv: $(STAMP)  ## create .venv and install the package with test/dev dependencies

postgres:  ## make sure a PostgreSQL server is reachable (starts the local one if it is down)
	@bash scripts/ensure-postgres.sh

demo: venv  ## the stale-read demonstration on the embedded SQLite default
	$(VENV)/bin/datastore-lite demo stale-reads

test: venv postgres  ## the whole test suite, on SQLite and PostgreSQL
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

bench: venv postgres  ## the benchmark suite (BENCHMARKS.md); QUICK=1 for the short run
	$(PY) -m benchmarks $(if $(QUICK),--quick,)

lint: venv  ## ruff (format + lint) and mypy --strict
	$(VENV)/bin/ruff format --check datastore_lite tests benchmarks examples
	$(VENV)/bin/ruff check datastore_lite tests benchmarks examples
	$(VENV)/bin/mypy

format: venv  ## apply ruff's formatting and fixes
	$(VENV)/bin/ruff format datastore_lite tests benchmarks examples
	$(VENV)/bin/ruff check --fix datastore_lite tests benchmarks examples

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

.PHONY: help venv postgres demo test bench lint format clean
