# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Each creates or refreshes .venv (when pyproject.toml changes) and installs what it needs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_SCENARIO ?= metro-5g

.PHONY: demo test test-fast bench evaluate lint clean

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

# Every controller on every shipped scenario, fleet and ego mode, and throughput against RTT:
# tables on stdout, JSON/CSV/PNG under results/. SEEDS=5 by default; ~15 min on 2 cores.
SEEDS ?= 5
CONTROLLERS := --policy fixed:4 --policy heuristic --policy backoff --policy specpp --policy analytic \
	--policy best-fixed --policy oracle
evaluate: $(STAMP)
	mkdir -p results
	for mode in fleet ego; do \
		$(BIN)/dsd-gym evaluate --scenario all $(CONTROLLERS) --seeds $(SEEDS) --mode $$mode \
			--json results/$$mode.json --csv results/$$mode.csv --plots results/$$mode || exit 1; \
	done
	$(BIN)/dsd-gym evaluate --scenario metro-5g $(CONTROLLERS) --seeds $(SEEDS) --mode ego \
		--sweep devices.0.link.delay.one_way_ms=2,5,10,20,40,80 \
		--json results/rtt.json --csv results/rtt.csv --plots results/rtt

lint: $(STAMP)
	$(BIN)/ruff check dsd_gym tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
