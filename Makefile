# Two commands get a newcomer going: `make serve` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The browser libraries of `cove app` and `cove console` (web/package.json, pinned by its lock file), copied
# where the Python package serves them from: built at install time, never fetched by a running page.
VENDOR := src/cove/web/static/vendor
ASSETS := $(VENDOR)/.built

.PHONY: serve serve-cluster test lint format demo bench clean assets

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(ASSETS) | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(ASSETS) | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

assets: $(ASSETS)  ## install the pages' JavaScript libraries from the npm registry (needs Node.js and npm)
$(ASSETS): web/package.json web/package-lock.json
	cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp web/node_modules/htmx.org/dist/htmx.min.js web/node_modules/htmx-ext-sse/dist/sse.min.js \
	   web/node_modules/chart.js/dist/chart.umd.min.js $(VENDOR)/
	cp web/node_modules/htmx.org/LICENSE $(VENDOR)/htmx.LICENSE
	cp web/node_modules/chart.js/LICENSE.md $(VENDOR)/chart.js.LICENSE.md
	touch $@

serve: $(VENV)/.installed  ## run the relay on SQLite under ./var (see README for settings)
	$(BIN)/cove serve

# A fleet on one machine: WORKERS relay processes on the local PostgreSQL, NATS and Redis (docs/scaling.md)
WORKERS      ?= 2
CLUSTER_DB   ?= cove
CLUSTER_ENV  := COVE_DATABASE_URL=$${COVE_DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/$(CLUSTER_DB)} \
	COVE_NATS_URL=$${COVE_NATS_URL:-nats://127.0.0.1:4222} COVE_REDIS_URL=$${COVE_REDIS_URL:-redis://127.0.0.1:6379/0}
serve-cluster: $(VENV)/.installed  ## WORKERS relay processes on one port, on PostgreSQL, NATS and Redis
	@createdb -h 127.0.0.1 -U postgres $(CLUSTER_DB) 2>/dev/null || true
	$(CLUSTER_ENV) $(BIN)/cove serve --workers $(WORKERS)

# pytest-xdist processes for `make test`; TEST_WORKERS=0 runs the tests in pytest's own process
TEST_WORKERS ?= 2
test: $(VENV)/.installed-test  ## the whole suite; PostgreSQL too when COVE_TEST_POSTGRES_URL is set
	$(BIN)/pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports  # the layers: [tool.importlinter] in pyproject.toml

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix src tests bench scripts
	$(BIN)/ruff format src tests bench scripts

demo: $(VENV)/.installed  ## a real relay, two users, messages both ways, then what the server stored
	$(BIN)/python scripts/demo.py

bench: $(VENV)/.installed
	$(BIN)/python bench/relay.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis web/node_modules $(VENDOR) test-artifacts
