# Two commands on a fresh machine: `make run` and `make test`. Only python3 is assumed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTANCE ?= instance

.PHONY: run test lint bench clean

# An editable install leaves mailflow/ uncompiled; with PYTHONDONTWRITEBYTECODE set, every
# process would compile it again (~0.1 s a start), so it is compiled once here.
$(BIN)/mailflow: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q mailflow
	touch $(BIN)/mailflow

$(INSTANCE)/mailflow.toml: | $(BIN)/mailflow
	$(BIN)/mailflow init --demo $(INSTANCE)

run: $(BIN)/mailflow $(INSTANCE)/mailflow.toml
	$(BIN)/mailflow --home $(INSTANCE) check
	$(BIN)/mailflow --home $(INSTANCE) run

test: $(BIN)/mailflow
	$(BIN)/python -m pytest -q

lint: $(BIN)/mailflow
	$(BIN)/ruff check mailflow tests bench
	$(BIN)/mypy

bench: $(BIN)/mailflow
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
