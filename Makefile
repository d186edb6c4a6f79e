# Two commands get a newcomer going: `make serve` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: serve test lint format demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

serve: $(VENV)/.installed  ## run the relay on SQLite under ./var (see README for settings)
	$(BIN)/cove serve

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
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
