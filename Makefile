# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Each creates or refreshes .venv (when pyproject.toml changes) and installs what it needs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo awc test test-fast bench evaluate lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first: this pin is a CPU wheel on the machine's disk; a bare `torch` can pull GBs of CUDA.
	$(BIN)/pip install -q torch==2.13.0
	# ray: the Ray backend's and RLlib's tests run in CI too (DESIGN §9); it pins gymnasium's release.
	$(BIN)/pip install -q -e '.[dev,ray]'
	touch $(STAMP)

# The product's main job, once per evaluation mode (MODES): collect a small WC-DNN dataset (oracle
# labels) in that mode, train, export one TorchScript file, then DAGGER rounds (collect the states the
# exported learner visits, labelled by the oracle, and retrain on the union), and evaluate the last
# controller in its mode against the baselines and the oracle on every shipped scenario. One
# controller per mode: a fleet-mode label prices the time a round costs the other tenants, an ego
# label does not, so one network over both modes' labels learns neither (`--mode`, wc_dnn/config.py).
# REPLICAS=R runs that pipeline R times, replica r with collect.seed = train.seed = r (its own
# variants and behaviour draws), and exports the mean of the R networks as the controller: pipelines
# on different data fail on different scenarios, their mean on none as badly (README, "Train a
# WC-DNN"). R = 1 takes ~2.5 min on 2 cores; each replica adds ~45 s per mode.
WC_DNN ?= small
DAGGER ?= 2
MODES ?= fleet ego
REPLICAS ?= 1
DEMO_CONFIG := configs/wc_dnn/$(WC_DNN).yaml
DEMO_EVAL := --seeds 2 --set duration_s=40 --set warmup_s=5
# A dataset collected under another collect config or other telemetry features is refused (one line);
# after a change to either (an upgrade, an edit), the demo starts its runs afresh instead.
DEMO_INPUTS := runs/wc_dnn/.$(WC_DNN).inputs
$(DEMO_INPUTS): $(DEMO_CONFIG) dsd_gym/telemetry.py
	rm -rf $(foreach mode,$(MODES),runs/wc_dnn/$(WC_DNN)-$(mode))
	mkdir -p runs/wc_dnn && touch $@
demo: $(STAMP) $(DEMO_INPUTS)
	for mode in $(MODES); do \
		members=""; \
		for r in $$(seq 0 $$(($(REPLICAS) - 1))); do \
			run=runs/wc_dnn/$(WC_DNN)-$$mode/replica-$$r; \
			wc="--config $(DEMO_CONFIG) --mode $$mode --set collect.seed=$$r --set train.seed=$$r"; \
			$(BIN)/dsd-gym collect $$wc --out $$run/data || exit 1; \
			rm -rf $$run/train $$run/dagger-*; \
			$(BIN)/dsd-gym train wc-dnn $$wc --data $$run/data --out $$run/train || exit 1; \
			$(BIN)/dsd-gym export --checkpoint $$run/train/best.pt --out $$run/controller.pt || exit 1; \
			data="--data $$run/data"; \
			for round in $$(seq 1 $(DAGGER)); do \
				$(BIN)/dsd-gym collect $$wc --out $$run/dagger-$$round --learner $$run/controller.pt || exit 1; \
				data="$$data --data $$run/dagger-$$round"; rm -rf $$run/train; \
				$(BIN)/dsd-gym train wc-dnn $$wc $$data --out $$run/train || exit 1; \
				$(BIN)/dsd-gym export --checkpoint $$run/train/best.pt --out $$run/controller.pt || exit 1; \
			done; \
			members="$$members --checkpoint $$run/train/best.pt"; \
		done; \
		$(BIN)/dsd-gym export $$members --out runs/wc_dnn/$(WC_DNN)-$$mode/controller.pt || exit 1; \
	done
	for mode in $(MODES); do \
		run=runs/wc_dnn/$(WC_DNN)-$$mode; \
		$(BIN)/dsd-gym evaluate --scenario all --mode $$mode --policy torchscript:$$run/controller.pt \
			--policy fixed:4 --policy best-fixed --policy analytic --policy oracle $(DEMO_EVAL) \
			--json $$run/evaluate.json --csv $$run/evaluate.csv || exit 1; \
	done
	@for mode in $(MODES); do \
		run=runs/wc_dnn/$(WC_DNN)-$$mode; \
		echo "$$mode mode:"; \
		r="r = 0..$$(($(REPLICAS) - 1))"; \
		echo "  datasets    $$run/replica-r/data, $$r (DAgger rounds: $$run/replica-r/dagger-N)"; \
		echo "  checkpoints $$run/replica-r/train/best.pt, $$r (TensorBoard: $$run/replica-r/train/tensorboard)"; \
		echo "  controller  $$run/controller.pt (--policy torchscript:$$run/controller.pt --mode $$mode)"; \
		echo "  evaluation  $$run/evaluate.json, $$run/evaluate.csv"; \
	done

# The best controller per mode this workbench knows how to make (README, "What the closed loop
# shows"): `make demo REPLICAS=8`, the means of replicas 0-3 and 4-7, one of the two picked on
# validation seeds 1000-1019 (`dsd-gym pick`, disjoint from the evaluation's; 10 seeds let hetero-fleet's
# noise decide the ego pick), copied to awc.pt and evaluated on seeds 0-19. Means of four decide in
# ~15 us (one network: ~11 us; eight: ~29 us). ~37 min on 2 cores, ego ~14, fleet ~23 (measured 34 min
# with a 10-seed pick).
AWC_MODES ?= ego fleet
AWC_SET := --set duration_s=40 --set warmup_s=5
awc: $(STAMP)
	$(MAKE) demo REPLICAS=8 MODES="$(AWC_MODES)"
	for mode in $(AWC_MODES); do \
		run=runs/wc_dnn/$(WC_DNN)-$$mode; \
		$(BIN)/dsd-gym export $$(for r in 0 1 2 3; do echo --checkpoint $$run/replica-$$r/train/best.pt; done) \
			--out $$run/mean-0-3.pt || exit 1; \
		$(BIN)/dsd-gym export $$(for r in 4 5 6 7; do echo --checkpoint $$run/replica-$$r/train/best.pt; done) \
			--out $$run/mean-4-7.pt || exit 1; \
		$(BIN)/dsd-gym pick $$run/mean-0-3.pt $$run/mean-4-7.pt --mode $$mode --seeds 20 \
			$(AWC_SET) --json $$run/pick.json --out $$run/awc.pt || exit 1; \
		$(BIN)/dsd-gym evaluate --scenario all --mode $$mode --policy torchscript:$$run/awc.pt --policy fixed:4 \
			--policy best-fixed --policy oracle --seeds 20 $(AWC_SET) \
			--json $$run/awc-evaluate.json --csv $$run/awc-evaluate.csv || exit 1; \
		echo "$$mode mode: controller $$run/awc.pt (the pick: $$run/pick.json; evaluation: $$run/awc-evaluate.json)"; \
	done

test: $(STAMP)
	$(BIN)/pytest -n 2

test-fast: $(STAMP)
	$(BIN)/pytest -n 2 -m "not slow"

bench: $(STAMP)
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/run.py --out benchmarks/results/bench.json
	$(BIN)/python benchmarks/rl_export_latency.py --out benchmarks/results/rl_export_latency.json
	$(BIN)/python benchmarks/rl_train_speed.py --out benchmarks/results/rl_train_speed.json

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
