# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Each creates or refreshes .venv (when pyproject.toml changes) and installs what it needs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench evaluate lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first: this pin is a CPU wheel on the machine's disk; a bare `torch` can pull GBs of CUDA.
	$(BIN)/pip install -q torch==2.13.0
	# ray: the Ray backend's and RLlib's tests run in CI too (DESIGN §9); it pins gymnasium's release.
	$(BIN)/pip install -q -e '.[dev,ray]'
	touch $(STAMP)

# The product's main job: collect a small WC-DNN dataset (oracle labels), train, export one TorchScript
# file, then DAGGER rounds (collect the states the exported learner visits, labelled by the oracle,
# and retrain on the union), and evaluate the last controller against the baselines and the oracle on
# every shipped scenario (fleet mode).
WC_DNN ?= small
DAGGER ?= 2
DEMO_RUN := runs/wc_dnn/$(WC_DNN)
DEMO_CONFIG := configs/wc_dnn/$(WC_DNN).yaml
DEMO_EVAL := --seeds 2 --set duration_s=40 --set warmup_s=5
demo: $(STAMP)
	$(BIN)/dsd-gym collect --config $(DEMO_CONFIG) --out $(DEMO_RUN)/data
	rm -rf $(DEMO_RUN)/train $(DEMO_RUN)/dagger-*
	$(BIN)/dsd-gym train wc-dnn --config $(DEMO_CONFIG) --data $(DEMO_RUN)/data --out $(DEMO_RUN)/train
	$(BIN)/dsd-gym export --checkpoint $(DEMO_RUN)/train/best.pt --out $(DEMO_RUN)/controller.pt
	data="--data $(DEMO_RUN)/data"; \
	for round in $$(seq 1 $(DAGGER)); do \
		$(BIN)/dsd-gym collect --config $(DEMO_CONFIG) --out $(DEMO_RUN)/dagger-$$round \
			--learner $(DEMO_RUN)/controller.pt || exit 1; \
		data="$$data --data $(DEMO_RUN)/dagger-$$round"; rm -rf $(DEMO_RUN)/train; \
		$(BIN)/dsd-gym train wc-dnn --config $(DEMO_CONFIG) $$data --out $(DEMO_RUN)/train || exit 1; \
		$(BIN)/dsd-gym export --checkpoint $(DEMO_RUN)/train/best.pt --out $(DEMO_RUN)/controller.pt || exit 1; \
	done
	$(BIN)/dsd-gym evaluate --scenario all --policy torchscript:$(DEMO_RUN)/controller.pt \
		--policy fixed:4 --policy best-fixed --policy analytic --policy oracle $(DEMO_EVAL) \
		--json $(DEMO_RUN)/evaluate.json --csv $(DEMO_RUN)/evaluate.csv
	@echo "dataset     $(DEMO_RUN)/data (DAgger rounds: $(DEMO_RUN)/dagger-N)"
	@echo "checkpoint  $(DEMO_RUN)/train/best.pt (TensorBoard: $(DEMO_RUN)/train/tensorboard)"
	@echo "controller  $(DEMO_RUN)/controller.pt (--policy torchscript:$(DEMO_RUN)/controller.pt)"
	@echo "evaluation  $(DEMO_RUN)/evaluate.json, $(DEMO_RUN)/evaluate.csv"

test: $(STAMP)
	$(BIN)/pytest -n 2

test-fast: $(STAMP)
	$(BIN)/pytest -n 2 -m "not slow"

bench: $(STAMP)
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/run.py --out benchmarks/results/bench.json
	$(BIN)/python benchmarks/rl_export_latency.py --out benchmarks/results/rl_export_latency.json

# Every controller on every shipped scenario, fleet and ego mode, and throughput against RTT:
# tables on stdout, JSON/CSV/PNG under results/. SEEDS=5 by default; ~20 min on 2 cores.
SEEDS ?= 5
CONTROLLERS := --policy fixed:4 --policy heuristic --policy backoff --policy specpp --policy analytic \
	--policy best-fixed --policy oracle --policy oracle-rollout
evaluate: $(STAMP)
	mkdir -p results
	for mode in fleet ego; do \
		$(BIN)/dsd-gym evaluate --scenario all $(CONTROLLERS) --seeds $(SEEDS) --mode $$mode \
			--json results/$$mode.json --csv results/$$mode.csv --plots results/$$mode || exit 1; \
	done
	$(BIN)/dsd-gym evaluate --scenario metro-5g $(CONTROLLERS) --seeds $(SEEDS) --mode ego \
		--sweep devices.0.link.delay.one_way_ms=2,5,10,20,40,80 \
		--json results/rtt.json --csv results/rtt.csv --plots results/rtt
	# The same sweep with the edge drafting every round (no fused or autoregressive rounds): the window alone.
	$(BIN)/dsd-gym evaluate --scenario metro-5g $(CONTROLLERS) --seeds $(SEEDS) --mode ego \
		--set 'control.modes=[distributed]' --sweep devices.0.link.delay.one_way_ms=2,5,10,20,40,80 \
		--json results/rtt-distributed.json --csv results/rtt-distributed.csv --plots results/rtt-distributed

lint: $(STAMP)
	$(BIN)/ruff check dsd_gym wc_dnn tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
