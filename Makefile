# dipgw — every target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Exact, hashed versions of every runtime and dev dependency (written by `make lock`).
LOCK := requirements.lock

.PHONY: run test lint typecheck audit check lock clean

# The locked set first (pip refuses any file whose hash differs), then the gateway itself
# with --no-deps so nothing unlocked can slip in.
$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
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

## audit: known vulnerabilities in the locked versions (PyPI's advisory data, via pip-audit).
## --strict: a version the advisory service cannot answer for fails the audit; without it
## pip-audit skips that package and still reports "No known vulnerabilities found".
audit: $(STAMP)
	@$(BIN)/pip-audit --strict --disable-pip --require-hashes -r $(LOCK) --progress-spinner off \
	  || { echo "make audit: NOT AUDITED or VULNERABLE. Either a known vulnerability is listed" \
	            "above, or the advisory service (https://pypi.org/pypi/NAME/VERSION/json) could" \
	            "not be reached or did not know a locked version." >&2; exit 1; }

check: lint typecheck test audit

## lock: re-resolve requirements.lock from pyproject.toml (any platform, Python 3.11+)
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
	  --generate-hashes --custom-compile-command 'make lock' --output-file $(LOCK)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
