# Two commands: `make run` opens the console over the bundled article, `make test` runs every check.
# Both create .venv and install the project first when needed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CODE := bot index tests scripts
# SQuAD v1.1 dev, read by the benchmark's build, ingest and scale rows: `make bench SQUAD_DEV=PATH`.
SQUAD_DEV ?= ../shared/data/squad/dev-v1.1.json

.PHONY: run test lint bench clean

run: $(STAMP)
	$(BIN)/articlebot

test: $(STAMP) lint
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python scripts/bench.py --squad-file $(SQUAD_DEV)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --editable '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
