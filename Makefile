# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Each creates or refreshes .venv (when pyproject.toml changes) and installs what it needs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_SCENARIO ?= metro-5g

.PHONY: demo test test-fast bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first: this pin is a CPU wheel on the machine's disk; a bare `torch` can pull GBs of CUDA.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dsd-gym simulate --scenario $(DEMO_SCENARIO) \
		--policy fixed:1 --policy fixed:2 --policy fixed:3 --policy fixed:4 \
		--policy fixed:5 --policy fixed:6 --policy fixed:7 --policy fixed:8 \
		--policy fused:4 --policy autoregressive

test: $(STAMP)
	$(BIN)/pytest -n 2

test-fast: $(STAMP)
	$(BIN)/pytest -n 2 -m "not slow"

bench: $(STAMP)
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/run.py --out benchmarks/results/bench.json

lint: $(STAMP)
	$(BIN)/ruff check dsd_gym tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
