# Two commands for a new user: `make bench` and `make test`. Each builds .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROFILE ?= default
PLUGIN ?=
THREADS ?=

RUN_ARGS := --profile $(PROFILE) $(if $(PLUGIN),--plugin $(PLUGIN)) $(if $(THREADS),--threads $(THREADS))

.PHONY: bench bench-quick test lint format mutate clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/gradbench run $(RUN_ARGS)
	$(BIN)/gradbench train --profile $(PROFILE)
	$(BIN)/gradbench report

bench-quick:
	$(MAKE) bench PROFILE=quick

# One pytest-xdist worker per core: every test works in its own tmp_path, so they run
# side by side. --dist loadfile keeps each module on one worker, so a module fixture (a
# sweep, a whole REPORT.md) is built once, not once per worker. Mutation runs stay serial
# ([tool.mutmut] passes no -n).
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -n auto --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Mutation testing of the bookkeeping modules ([tool.mutmut] in pyproject.toml), niced; not
# part of `test`. How long it takes, the score and the survivors: docs/mutation.md. A
# stopped run resumes where it left off; after changing only_mutate, rm -rf mutants.
mutate: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,mutate]'
	nice -n 19 $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks mutants
