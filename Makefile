# dipgw — every target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Exact, hashed versions of every runtime and dev dependency (written by `make lock`).
LOCK := requirements.lock
# The console's GOV.UK Design System assets: govuk-frontend from npm at the version
# package-lock.json pins (with its integrity hash), copied out of node_modules into the
# folder the gateway serves (gitignored, rebuilt whenever the lock changes).
ASSETS := gateway/console/static/govuk
ASSETS_STAMP := $(ASSETS)/.built-stamp
GOVUK_DIST := node_modules/govuk-frontend/dist/govuk

.PHONY: run test lint typecheck audit check lock clean assets chromium screenshots

# The locked set first (pip refuses any file whose hash differs), then the gateway itself
# with --no-deps so nothing unlocked can slip in.
$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## assets: the console's GOV.UK Frontend CSS, JavaScript, fonts and images (npm ci, then copy)
assets: $(ASSETS_STAMP)

$(ASSETS_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	rm -rf $(ASSETS)
	mkdir -p $(ASSETS)
	cp $(GOVUK_DIST)/govuk-frontend.min.css $(GOVUK_DIST)/govuk-frontend.min.css.map \
	   $(GOVUK_DIST)/govuk-frontend.min.js $(GOVUK_DIST)/govuk-frontend.min.js.map $(ASSETS)/
	cp -R $(GOVUK_DIST)/assets $(ASSETS)/assets
	touch $(ASSETS_STAMP)

## run: set up and run the gateway on its embedded defaults (SQLite in ./var, in-process transport)
run: $(STAMP) $(ASSETS_STAMP)
	$(BIN)/dipgw serve

## chromium: Debian's Chromium, which the console's browser tests drive through Playwright
## (executable_path; never `playwright install`). Installed with apt only where it is
## missing, so a prepared machine pays one `command -v`. If apt cannot (not root, no
## network) the browser tests skip, or fail under DIPGW_REQUIRE_SERVICES=1, and say why.
chromium:
	@command -v chromium >/dev/null 2>&1 \
	  || { echo "make: installing Debian's chromium for the browser tests (apt-get)"; \
	       apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "make: could not install chromium with apt; the browser tests will skip (or fail under DIPGW_REQUIRE_SERVICES=1)" >&2

## test: set up and run the whole test suite twice, on SQLite and then on PostgreSQL
## (DIPGW_TEST_DATABASE=postgresql: a fresh database per test, copied from a template
## migrated once per run; tests/backends.py). Each run spreads its tests over
## TEST_WORKERS processes (pytest-xdist), then runs the few marked `exclusive` (they stop
## the broker every test shares, or load the whole machine) on their own.
TEST_WORKERS ?= 3
PYTEST := $(BIN)/python -m pytest -q
test: $(STAMP) $(ASSETS_STAMP) chromium
	deploy/dev/ensure-services.sh
	$(PYTEST) -n $(TEST_WORKERS) -m "not exclusive"
	$(PYTEST) -m exclusive
	DIPGW_TEST_DATABASE=postgresql $(PYTEST) -n $(TEST_WORKERS) -m "not exclusive"
	DIPGW_TEST_DATABASE=postgresql $(PYTEST) -m exclusive

## screenshots: the browser tests again, writing their pictures of every page the journey
## visits into docs/screenshots (shown in the README); `make test` writes them to a
## temporary folder, so an ordinary run leaves the committed pictures alone
screenshots: $(STAMP) $(ASSETS_STAMP) chromium
	DIPGW_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/console/test_browser*.py

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache node_modules $(ASSETS)

## haproxy: Debian's HAProxy, with which tests/test_deploy.py checks deploy/haproxy/haproxy.cfg
## (`haproxy -c`, nothing is started). Installed with apt only where it is missing; if apt
## cannot, that test skips, or fails under DIPGW_REQUIRE_SERVICES=1, and says why.
.PHONY: haproxy
haproxy:
	@command -v haproxy >/dev/null 2>&1 \
	  || { echo "make: installing Debian's haproxy for the deployment tests (apt-get)"; \
	       apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; } \
	  || echo "make: could not install haproxy with apt; its config check will skip (or fail under DIPGW_REQUIRE_SERVICES=1)" >&2
test: haproxy
