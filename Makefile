# The two commands of the README: `make demo` and `make test`.
# Each creates the virtual environment it needs on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python -m sepkit

test: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest

# addopts cleared: the doctest options of pyproject.toml are for the test suite only.
bench: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest benchmarks --benchmark-only -o addopts="" -p no:cacheprovider

# The peer partitioners of benchmarks/test_bench_codeseg.py, in the benchmark environment only.
.PHONY: bench-peers
bench-peers: $(VENV)/.installed
	$(BIN)/python -m pip install -r benchmarks/requirements-peers.txt

lint: $(VENV)/.installed
	$(BIN)/ruff check sepkit sepkit_torch tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
