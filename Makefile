# The two commands of the README: `make demo` and `make test`.
# Each creates the virtual environment it needs on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# sepkit_torch's torch, pinned: an unpinned torch can pull a multi-GB CUDA build.
# Override for another platform, e.g. `make test TORCH="torch==2.9.1"`.
TORCH ?= torch==2.13.0

.PHONY: demo weights test bench lint clean clean-cache

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The install step also compiles sepkit's kernels into the kernel cache (docs/api.md), in
# WARMUP_JOBS processes at once, so that neither the demo nor the tests wait on a compilation.
WARMUP_JOBS ?= $(shell nproc 2>/dev/null || echo 1)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,torch]"
	OMP_NUM_THREADS=1 $(BIN)/python -m sepkit warmup --jobs $(WARMUP_JOBS)
	touch $@

# The main job: ECMRNet's seven-task sequence on procedural thermal scenes (tiny model,
# about 15 minutes on one CPU core); the report lands in runs/demo/report.md.
DEMO_FLAGS ?= --overwrite
demo: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(BIN)/python -m sepkit_torch.pipeline --preset demo --out runs/demo $(DEMO_FLAGS)

# The built-in model (sepkit_torch/weights/default.pt): the cpu preset (tiny model on
# detailed procedural scenes, about two hours on one CPU core), then its weights exported.
# The same command gives the same file on the same torch build (docs/pipeline.md).
WEIGHTS_FLAGS ?= --overwrite
weights: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(BIN)/python -m sepkit_torch.pipeline --preset cpu --out runs/cpu $(WEIGHTS_FLAGS)
	$(BIN)/python -m sepkit_torch.pipeline export runs/cpu --out sepkit_torch/weights/default.pt

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

# Deletes sepkit's compiled kernels (docs/api.md, "The kernel cache"). Never needed for
# correctness: each version of the kernel sources has a cache folder of its own; this
# only frees the disk space of old ones. Also removes entries of older sepkit versions.
clean-cache:
	find sepkit -type d -name 'sepkit-cache*' -prune -exec rm -rf {} +
	find sepkit \( -name '*.nbi' -o -name '*.nbc' \) -delete

clean: clean-cache
	rm -rf $(VENV) build *.egg-info
