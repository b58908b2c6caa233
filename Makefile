# The two commands a new user types: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint up clean chaos mutation fuzz

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/posgate demo

up: $(STAMP)
	$(BIN)/posgate up

test: $(STAMP)
	$(BIN)/ruff check src tests tools
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# Fault injection, the long run (docs/testing.md): every variant, CHAOS_ROUNDS rounds each, niced.
CHAOS_ROUNDS ?= 50
chaos: $(STAMP)
	nice -n 10 $(BIN)/python -m tests.chaos --rounds $(CHAOS_ROUNDS) $(if $(CHAOS_SEED),--seed $(CHAOS_SEED))

# Coverage-guided fuzzing (atheris) of every target in tests/fuzz, FUZZ_RUNS inputs each, under nice.
# Figures go to .fuzz/summary.md; crashes to .fuzz/crashes/. One target: make fuzz FUZZ_TARGETS=pos_codec
FUZZ_RUNS ?= 1000000
FUZZ_TARGETS ?=
fuzz: $(STAMP)
	nice -n 10 $(BIN)/python -m tests.fuzz --runs $(FUZZ_RUNS) $(FUZZ_TARGETS)

lint: $(STAMP)
	$(BIN)/ruff check src tests tools
	$(BIN)/ruff format --check src tests tools
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

# Mutation testing of the guard modules (tools/mutation.toml; docs/testing.md). MUTATION_ARGS: e.g.
# --group ledger --incremental
mutation: $(STAMP)
	nice -n 10 $(BIN)/python tools/mutation.py $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache build *.egg-info src/*.egg-info mutants
