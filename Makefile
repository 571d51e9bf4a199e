# dipgw — every target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: set up and run the gateway on its embedded defaults (SQLite in ./var, in-process transport)
run: $(STAMP)
	$(BIN)/dipgw serve

## test: set up and run the whole test suite
test: $(STAMP)
	deploy/dev/ensure-services.sh
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check gateway adapters tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
