# hh-opsbot: `make run` starts the bot on SQLite, `make test` runs every test.
# Both create .venv and install the project (with its dev tools) on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp

.PHONY: install run migrate check-config test coverage lint format check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/hh-opsbot run

migrate: install
	$(BIN)/hh-opsbot migrate

check-config: install
	$(BIN)/hh-opsbot check-config

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

coverage: install
	$(BIN)/pytest --cov --cov-report=term $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check: lint test

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
