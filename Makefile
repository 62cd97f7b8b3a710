# One entry point per job. Every target creates .venv and installs the pinned stack first (once).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test bench experiment ui dashboard lint format clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v == (3, 11) else f"Python 3.11 is required, found {v[0]}.{v[1]} at $(PYTHON); set PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/scalper demo

test: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

experiment: $(STAMP)
	$(BIN)/python scripts/experiment_honesty.py

ui: $(STAMP)
	$(BIN)/scalper ui

dashboard: $(STAMP)
	$(BIN)/streamlit run app_streamlit/app.py --server.address 127.0.0.1 --server.headless true

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

clean:
	rm -rf lake .dagster_home dbt/target dbt/logs reports runs
