"""Property tests: invariants of the simulator on random scenarios (DESIGN §3).

Scenarios are drawn at random — fully random small systems built as raw mappings and validated like
a YAML file, and shipped scenarios shrunk by overrides — and every run is observed from inside:
every round through ``round_hook``, every request through the simulation's request factory and
``Metrics.on_request_done``, every batched iteration and failure through the metrics' hooks, and the
targets' queues by a SimPy process sampling them every 0.1 s. The invariants:

- conservation: every arrived request is either complete, with exactly its output length committed
  (the prefill's token + the rounds' tokens), or still in flight: arrived == completed + in flight;
- no token committed twice: a round's ``position`` is the number of tokens committed before it;
  committed == min(accepted + 1, remaining), 0 <= accepted <= γ, acceptance on common random numbers;
- time never runs backwards: a session's rounds are ordered and do not overlap, every component of
  a round is >= 0 and they add up to the round, the clock seen by the hook never decreases, and a
  closed-loop user sends the next request only after receiving the previous one;
- the cloud: queues never negative, batches within their limits, no work on a down target, the
  iterations of a target never overlap (a failure cuts one short), utilisation in [0, 1] and equal
  to the busy time recomputed from the iterations;
- every metric is finite and non-negative, and the round counts agree with the rounds observed.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsd_gym.config import configs_dir, load_scenario
from dsd_gym.config.loader import apply_override, profile_contexts
from dsd_gym.config.schema import Scenario
from dsd_gym.runner import build
from dsd_gym.sim.cloud import BackgroundStream
from dsd_gym.sim.controller import Mode
from dsd_gym.sim.streams import Stream, Streams

EPS = 1e-9
SAMPLE_EVERY_S = 0.1

EDGE_HARDWARE = [
    "jetson-agx-orin",
    "jetson-orin-nano",
    "laptop-rtx4070",
    "apple-m3-pro",
    "phone-snapdragon-8-gen3",
]
DRAFTS = ["llama-3.2-1b", "llama-3.2-1b-int4", "qwen2.5-0.5b"]
CLOUD_HARDWARE = ["h100-sxm", "a100-sxm-80gb", "l4"]
TARGET_MODELS = ["llama-3.1-8b", "qwen2.5-7b", "llama-3.1-70b"]
ACCEPTANCE_PROFILES = ["llama-3.2-1b/llama-3.1-8b/chat", "prose-code-mix", "drifting-chat", "iid-0.7"]
TASKS = ["code", "math", "translation", "summarization"]
NETWORK_TRACE = str(configs_dir() / "traces" / "network" / "cellular-5g.csv")


# --------------------------------------------------------------------------- random scenarios


def _acceptance(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["iid", "profile", "markov", "latent"]))
    if kind == "iid":
        return {"kind": "iid", "alpha": draw(st.sampled_from([0.0, 0.3, 0.7, 0.95, 1.0]))}
    if kind == "profile":
        return draw(st.sampled_from(ACCEPTANCE_PROFILES))
    if kind == "markov":
        return {
            "kind": "markov",
            "regimes": [
                {"name": "easy", "alpha": 0.9, "mean_tokens": draw(st.sampled_from([5, 40]))},
                {"name": "hard", "alpha": 0.3, "mean_tokens": draw(st.sampled_from([5, 40]))},
            ],
        }
    return {"kind": "latent", "mean_alpha": 0.7, "logit_std": 1.0, "correlation_tokens": 20}


def _delay(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["constant", "constant", "gilbert_elliott", "trace"]))
    if kind == "constant":
        return {
            "kind": "constant",
            "one_way_ms": draw(st.sampled_from([0.0, 0.5, 5.0, 20.0, 60.0])),
            "jitter_ms": draw(st.sampled_from([0.0, 2.0, 10.0])),
            "loss": draw(st.sampled_from([0.0, 0.0, 0.02, 0.2])),
            "step_ms": draw(st.sampled_from([1.0, 10.0, 50.0])),
        }
    if kind == "gilbert_elliott":
        return {
            "kind": "gilbert_elliott",
            "good_ms": draw(st.sampled_from([2.0, 20.0])),
            "bad_ms": draw(st.sampled_from([80.0, 300.0])),
            "jitter_ms": draw(st.sampled_from([0.0, 5.0])),
            "p_good_to_bad": draw(st.sampled_from([0.01, 0.1])),
            "p_bad_to_good": draw(st.sampled_from([0.05, 0.3])),
            "loss_good": draw(st.sampled_from([0.0, 0.01])),
            "loss_bad": draw(st.sampled_from([0.05, 0.3])),
            "step_ms": draw(st.sampled_from([5.0, 20.0])),
        }
    return {"kind": "trace", "path": NETWORK_TRACE, "loss": draw(st.sampled_from([0.0, 0.05]))}


def _policy(draw: st.DrawFn, modes: list[str], choices: list[int]) -> str:
    mode = draw(st.sampled_from(modes))
    if mode == "autoregressive":
        return "autoregressive"
    gamma = draw(st.sampled_from(choices))
    return f"{'fixed' if mode == 'distributed' else 'fused'}:{gamma}"


@st.composite
def random_scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A small random system as the raw mapping a YAML file would give, and a foreground policy."""
    choices = sorted(draw(st.sets(st.integers(1, 8), min_size=1, max_size=4)))
    modes = draw(
        st.lists(
            st.sampled_from(["distributed", "fused", "autoregressive"]), min_size=1, max_size=3, unique=True
        )
    )
    widest = max(choices) + 1
    duration = draw(st.sampled_from([5.0, 10.0, 20.0, 30.0]))
    workload_kind = draw(st.sampled_from(["closed_loop", "poisson"]))

    devices = []
    for g in range(draw(st.integers(1, 3))):
        background = g > 0 and draw(st.booleans())  # group 0 is always foreground
        group: dict[str, Any] = {
            "name": f"g{g}",
            "count": draw(st.integers(1, 4)),
            "hardware": draw(st.sampled_from(EDGE_HARDWARE)),
            "draft_model": draw(st.sampled_from(DRAFTS)),
            "sessions": draw(st.integers(1 if g == 0 else 0, 2)),
            "link": {
                "uplink_mbps": draw(st.sampled_from([2.0, 20.0, 200.0])),
                "downlink_mbps": draw(st.sampled_from([5.0, 100.0, 1000.0])),
                "retransmit_timeout_ms": draw(st.sampled_from([20.0, 200.0])),
                "delay": _delay(draw),
            },
        }
        if draw(st.booleans()):
            group["latency"] = {"kind": "constant", "forward_ms": draw(st.sampled_from([0.5, 5.0, 20.0]))}
        if draw(st.booleans()):
            group["acceptance"] = _acceptance(draw)
        if background:
            group["policy"] = _policy(draw, modes, choices)
        devices.append(group)

    targets = []
    for t in range(draw(st.integers(1, 3))):
        hardware = draw(st.sampled_from(CLOUD_HARDWARE))
        target: dict[str, Any] = {
            "name": f"t{t}",
            "count": draw(st.integers(1, 2)),
            "hardware": hardware,
            "model": draw(st.sampled_from(TARGET_MODELS)),
            "draft_model": "llama-3.2-1b",
            "tensor_parallel": draw(st.sampled_from([1, 2, 4])),
            "max_batch_size": draw(st.sampled_from([1, 2, 4, 32])),
            "max_batch_tokens": draw(st.sampled_from([widest, widest + 3, 64, 512])),
            "prefill_chunk_tokens": draw(st.sampled_from([8, 128, 512])),
        }
        if draw(st.integers(0, 3)) == 0:
            target["latency"] = {
                "kind": "constant",
                "forward_ms": 15.0,
                "per_token_ms": 0.1,
                "draft_forward_ms": 1.0,
            }
        if draw(st.booleans()):
            target["mtbf_s"] = draw(st.sampled_from([1.0, 5.0, 20.0]))
            target["mttr_s"] = draw(st.sampled_from([0.05, 0.5, 3.0]))
        targets.append(target)

    background_load: dict[str, Any] = {"kind": "none"}
    if draw(st.booleans()):
        smallest = min(t["max_batch_tokens"] for t in targets)
        background_load = {
            "kind": "stochastic",
            "verify_rate_per_s": draw(st.sampled_from([0.0, 20.0, 200.0])),
            "verify_tokens": draw(st.integers(1, min(smallest, 9))),
            "prefill_rate_per_s": draw(st.sampled_from([0.0, 0.5, 3.0])),
            "prefill_tokens": {"dist": "lognormal", "median": 200, "sigma": 0.8, "min": 1, "max": 2000},
        }

    task = draw(
        st.one_of(
            st.sampled_from(TASKS),
            st.builds(
                lambda p, o: {
                    "name": "inline",
                    "prompt_tokens": {"dist": "constant", "value": p},
                    "output_tokens": {"dist": "uniform", "low": 1, "high": o},
                },
                st.sampled_from([1, 50, 600]),
                st.sampled_from([1, 3, 60]),
            ),
        )
    )
    if workload_kind == "closed_loop":
        think = draw(
            st.sampled_from(
                [
                    {"dist": "constant", "value": 0},
                    {"dist": "exponential", "mean": 0.5},
                    {"dist": "uniform", "low": 0, "high": 2},
                ]
            )
        )
        workload = {"kind": "closed_loop", "task": task, "think_time_s": think}
    else:
        workload = {"kind": "poisson", "rate_per_s": draw(st.sampled_from([0.5, 2.0, 8.0])), "task": task}

    raw = {
        "name": "random",
        "description": "hypothesis",
        "duration_s": duration,
        "warmup_s": draw(st.sampled_from([0.0, 1.0, duration / 2])),
        "seed": draw(st.integers(0, 2**31 - 1)),
        "acceptance": _acceptance(draw),
        "control": {"window_choices": choices, "modes": modes, "policy": _policy(draw, modes, choices)},
        "devices": devices,
        "cloud": {
            "targets": targets,
            "router": draw(st.sampled_from(["random", "round_robin", "jsq"])),
            "request_timeout_ms": draw(st.sampled_from([100.0, 1000.0, 5000.0])),
            "background": background_load,
        },
        "workload": workload,
    }
    return raw, _policy(draw, modes, choices)


def validate(raw: dict[str, Any]) -> Scenario:
    return Scenario.model_validate(raw, context={"profiles": profile_contexts(configs_dir())})


# --------------------------------------------------------------------------- the observed run


class Observed:
    """One simulation run with every observation point wired in."""

    def __init__(self, scenario: Scenario, policy: str | None, seed: int | None = None) -> None:
        self.records: list[Any] = []
        self.hook_clock: list[float] = []
        self.requests: list[Any] = []
        self.done: list[tuple[Any, float]] = []  # (request, simulation time of on_request_done)
        self.events: list[tuple] = []  # ("iter", target, start, duration, size, tokens) | ("fail", target, t)
        self.samples = 0
        self.sim = sim = build(scenario, policy, seed, round_hook=self._hook)
        metrics = sim.metrics

        make_request = sim._request

        def request(*args: Any, **kwargs: Any) -> Any:
            req = make_request(*args, **kwargs)
            self.requests.append(req)
            return req

        sim._request = request  # the workload processes look it up on every arrival

        on_done = metrics.on_request_done

        def request_done(req: Any, session: Any) -> None:
            self.done.append((req, sim.env.now))
            on_done(req, session)

        metrics.on_request_done = request_done

        on_iteration = metrics.on_iteration

        def iteration(target: Any, start: float, duration: float, size: int, tokens: int, bg: int) -> None:
            # Event-driven iterations are reported when they start; background-only ones are played
            # lazily and reported when someone looks (a session's job arrives, a failure, the end).
            assert start <= sim.env.now
            self.events.append(("iter", target, start, duration, size, tokens))
            on_iteration(target, start, duration, size, tokens, bg)

        metrics.on_iteration = iteration

        on_failure = metrics.on_failure

        def failure(target: Any, t: float, *args: Any, **kwargs: Any) -> None:
            self.events.append(("fail", target, t))
            on_failure(target, t, *args, **kwargs)

        metrics.on_failure = failure
        sim.env.process(self._sampler())
        self.summary = sim.run()

    def _hook(self, record: Any, session: Any) -> None:
        self.hook_clock.append(session.env.now)
        self.records.append((record, session.sid, session.env.now))

    def _sampler(self):
        env = self.sim.env
        while True:
            for t in self.sim.targets:
                assert len(t.queue) >= 0 and t.load() >= 0
                assert len(t.batch) <= t.max_batch_size
                assert sum(take for _, take in t.batch) <= t.max_batch_tokens
                assert all(take > 0 for _, take in t.batch)
                assert all(job.tokens > 0 for _, _, job in t.queue)
                if not t.up:  # a down target holds no work and does none
                    assert not t.busy and not t.batch and not t.queue
            assert self.sim.active >= 0
            self.samples += 1
            yield env.timeout(SAMPLE_EVERY_S)


def check_invariants(obs: Observed) -> None:
    sim, summary, scenario = obs.sim, obs.summary, obs.sim.scenario
    now = sim.env.now
    assert now == pytest.approx(scenario.duration_s)
    assert obs.samples >= int(scenario.duration_s / SAMPLE_EVERY_S) - 1
    choices = set(scenario.control.window_choices)
    max_batch = max(t.max_batch_size for t in sim.targets)

    # -- the clock seen by the hook never runs backwards
    assert all(a <= b for a, b in zip(obs.hook_clock, obs.hook_clock[1:], strict=False))

    # -- conservation of requests
    assert len(obs.requests) == sim.arrived == summary["arrived_requests"]
    assert [r.rid for r in obs.requests] == list(range(sim.arrived))
    done_ids = [req.rid for req, _ in obs.done]
    assert len(set(done_ids)) == len(done_ids), "a request completed twice"
    assert sim.arrived == len(obs.done) + sim.active == len(obs.done) + summary["in_flight_requests"]
    done_set = set(done_ids)

    # -- per-request rounds: positions contiguous, committed as the acceptance path says
    by_request: dict[int, list[Any]] = defaultdict(list)
    for record, sid, t in obs.records:
        by_request[record.request].append(record)
        assert record.session == sid
        assert (
            record.end_s == pytest.approx(t, abs=EPS)
            if record.mode == Mode.DISTRIBUTED
            else record.end_s <= t + EPS
        )
    for req in obs.requests:
        rounds = by_request.pop(req.rid, [])
        assert 1 <= req.output_tokens
        assert req.arrival_s <= now
        expected = 1 if req.first_token_s >= 0 else 0
        assert rounds == [] or expected == 1, "a round before the first token"
        for r in rounds:
            assert r.position == expected, "a token committed twice, or one skipped"
            assert r.context == req.prompt_tokens + r.position
            remaining = req.output_tokens - r.position
            assert remaining > 0
            if r.mode == Mode.AUTOREGRESSIVE:
                assert r.gamma == 0 and r.accepted == 0
            else:
                assert r.gamma in choices
                assert 0 <= r.accepted <= r.gamma
                assert r.accepted == req.path.accepted_count(r.position, r.gamma)  # common random numbers
            assert r.committed == min(r.accepted + 1, remaining)
            expected += r.committed
        assert req.committed == expected
        if req.rid in done_set:
            assert req.committed == req.output_tokens
            assert req.arrival_s <= req.first_token_s <= req.last_token_s == req.done_s
        else:  # in flight: decoding, or its last streamed tokens still on the downlink
            assert req.done_s < 0
            assert req.committed < req.output_tokens or req.last_token_s > now
    assert not by_request, "rounds of requests that never arrived"
    for req, t in obs.done:
        assert req.done_s <= t + EPS, "a request reported done before its last token reached the edge"

    # -- per-session rounds: ordered, non-overlapping, components add up
    by_session: dict[int, list[Any]] = defaultdict(list)
    for record, sid, _ in obs.records:
        by_session[sid].append(record)
    for rounds in by_session.values():
        for a, b in zip(rounds, rounds[1:], strict=False):
            assert b.start_s >= a.end_s - 1e-12, "rounds of a session overlap"
    for record, _, _ in obs.records:
        parts = (record.draft_s, record.uplink_s, record.queue_s, record.verify_s, record.downlink_s)
        assert all(p >= 0 and math.isfinite(p) for p in parts), parts
        assert record.start_s <= record.end_s
        assert record.verify_s > 0
        assert record.queue_depth >= 0 and 1 <= record.batch_size <= max_batch
        if record.mode == Mode.DISTRIBUTED:
            assert sum(parts) == pytest.approx(record.end_s - record.start_s, abs=1e-9)
        else:
            assert record.draft_s == record.uplink_s == record.downlink_s == 0.0
            assert record.queue_s + record.verify_s == pytest.approx(record.end_s - record.start_s, abs=1e-9)

    # -- a closed-loop user asks again only after the previous answer arrived
    by_user: dict[int, list[Any]] = defaultdict(list)
    for req in obs.requests:
        by_user[req.session].append(req)
    for reqs in by_user.values():
        for a, b in zip(reqs, reqs[1:], strict=False):
            if a.done_s >= 0:
                assert b.arrival_s >= a.done_s - EPS, "next request before the previous answer arrived"

    # -- the cloud: iterations within limits, never overlapping, utilisation recomputed
    warmup, end = scenario.warmup_s, scenario.duration_s
    busy = 0.0
    last_end: dict[int, float] = {}
    running: dict[int, list[float]] = {}  # target -> [start, planned end] of its current iteration
    for event in obs.events:
        if event[0] == "fail":
            _, target, t = event
            cur = running.pop(target.index, None)
            if cur is not None and t < cur[1]:
                cur[1] = t  # the failure cut the iteration short
                last_end[target.index] = t
            if cur is not None:
                busy += max(0.0, min(cur[1], end) - max(cur[0], warmup))
            continue
        _, target, start, duration, size, tokens = event
        assert duration > 0 and math.isfinite(duration)
        assert 1 <= size <= target.max_batch_size
        assert 1 <= tokens <= target.max_batch_tokens
        prev = running.pop(target.index, None)
        if prev is not None:
            busy += max(0.0, min(prev[1], end) - max(prev[0], warmup))
        assert start >= last_end.get(target.index, 0.0) - EPS, "iterations of a target overlap"
        running[target.index] = [start, start + duration]
        last_end[target.index] = start + duration
    for cur in running.values():
        busy += max(0.0, min(cur[1], end) - max(cur[0], warmup))
    utilization = busy / ((end - warmup) * len(sim.targets))
    assert -EPS <= summary["target_utilization"] <= 1 + EPS
    assert summary["target_utilization"] == pytest.approx(utilization, rel=1e-9, abs=1e-12)
    assert summary["target_failures"] == sum(1 for e in obs.events if e[0] == "fail")

    # -- metrics: finite, non-negative, consistent with the rounds observed
    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}.{k}")
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            return
        else:
            assert math.isfinite(value) and value >= 0, (key, value)

    walk(summary, "summary")
    measured = [r for r, _, _ in obs.records if r.end_s >= warmup]
    assert summary["rounds"] == len(measured)
    for mode in Mode:
        assert summary["rounds_by_mode"][mode.name.lower()] == sum(1 for r in measured if r.mode == mode)
    drafted = sum(r.gamma for r in measured)
    accepted = sum(r.accepted for r in measured)
    assert summary["rejected_draft_tokens"] == drafted - accepted
    assert 0 <= summary["acceptance_rate"] <= 1
    if measured:
        assert summary["tokens_per_round"] == pytest.approx(
            sum(r.committed for r in measured) / len(measured)
        )
    assert summary["completed_requests"] <= len(obs.done)
    for name in ("ttft_ms", "tpot_ms", "e2e_ms"):
        p = summary[name]
        if p["p50"] is not None:
            assert p["p50"] <= p["p95"] + EPS and p["p95"] <= p["p99"] + EPS


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(random_scenarios())
def test_invariants_on_random_systems(drawn: tuple[dict[str, Any], str]) -> None:
    raw, policy = drawn
    check_invariants(Observed(validate(raw), policy))


SHIPPED = [
    "busy-cloud",
    "cellular",
    "flaky",
    "hetero-fleet",
    "ideal",
    "lan-edge",
    "metro-5g",
    "regime-shift",
    "wan",
]


@st.composite
def shipped_variants(draw: st.DrawFn) -> tuple[Scenario, str]:
    """A shipped scenario, shortened and shrunk, under a random policy."""
    name = draw(st.sampled_from(SHIPPED))
    full = load_scenario(name)
    duration = draw(st.sampled_from([5, 10, 15]))
    overrides = [f"duration_s={duration}", f"warmup_s={draw(st.sampled_from([0, 2]))}"]
    for i, group in enumerate(full.devices):
        overrides.append(f"devices.{i}.count={draw(st.integers(1, min(group.count, 4)))}")
    if draw(st.booleans()):
        overrides.append(f"cloud.router={draw(st.sampled_from(['random', 'round_robin', 'jsq']))}")
    if draw(st.booleans()):
        overrides.append(f"cloud.targets.0.max_batch_size={draw(st.sampled_from([1, 3]))}")
    if draw(st.booleans()):
        overrides.append(f"cloud.targets.0.mtbf_s={draw(st.sampled_from([2, 8]))}")
        overrides.append("cloud.targets.0.mttr_s=1")
    scenario = load_scenario(name, overrides)
    policy = _policy(draw, list(scenario.control.modes), list(scenario.control.window_choices))
    return scenario, policy


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shipped_variants(), st.integers(0, 1000))
def test_invariants_on_shipped_scenarios(drawn: tuple[Scenario, str], seed: int) -> None:
    scenario, policy = drawn
    check_invariants(Observed(scenario, policy, seed))


# --------------------------------------------------------------------------- regressions


def test_failures_do_not_count_busy_time_after_the_crash() -> None:
    """Long iterations on a target that fails often and recovers fast: utilisation stays <= 1.

    A failure kills the running iteration; the time it would still have run is not busy time, and the
    recovered target's next iteration must not be counted on top of it.
    """
    scenario = load_scenario(
        "lan-edge",
        [
            "duration_s=30", "warmup_s=0", "cloud.targets.0.mtbf_s=1", "cloud.targets.0.mttr_s=0.01",
            "cloud.request_timeout_ms=50", "cloud.targets.0.hardware=l4",
            "cloud.targets.0.model=llama-3.1-70b",
            "cloud.targets.0.prefill_chunk_tokens=4096", "workload.task=summarization",
            "workload.think_time_s={dist: constant, value: 0}", "devices.0.count=20",
        ],
    )  # fmt: skip
    obs = Observed(scenario, "fixed:4")
    assert obs.summary["target_failures"] > 5
    check_invariants(obs)


def test_streamed_answer_arrives_before_the_request_is_done() -> None:
    """Autoregressive/fused rounds stream their tokens down a slow link: the request is done (and the
    closed-loop user asks again) only when the last token has reached the edge."""
    scenario = load_scenario(
        "wan", ["duration_s=20", "warmup_s=0", "workload.think_time_s={dist: constant, value: 0}",
                "workload.task=code", "devices.0.count=2"],
    )  # fmt: skip
    for policy in ("autoregressive", "fused:4"):
        obs = Observed(scenario, policy)
        assert obs.done
        check_invariants(obs)


def unchecked(name: str, overrides: list[str]) -> Scenario:
    """A shipped scenario with overrides, validated by the schema alone (no loader cross-checks):
    what a program building scenarios in code hands the simulator."""
    raw = yaml.safe_load((configs_dir() / "scenarios" / f"{name}.yaml").read_text())
    raw.setdefault("name", name)
    for text in overrides:
        apply_override(raw, text)
    return validate(raw)


def test_background_verify_wider_than_the_batch_budget_is_rejected() -> None:
    """A background verify that can never fit in a batch used to wedge the batcher (a negative
    SimPy delay mid-run): the schema refuses it."""
    overrides = [
        "duration_s=5", "warmup_s=0", "control.window_choices=[1,2,4]", "cloud.targets.0.max_batch_tokens=16",
        "cloud.background={kind: stochastic, verify_rate_per_s: 50, verify_tokens: 20}",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="verify_tokens"):
        unchecked("lan-edge", overrides)


def test_open_loop_workload_without_foreground_devices_is_rejected() -> None:
    """Poisson arrivals go to foreground devices; with none, the schema refuses the scenario (the
    simulator used to fail mid-run inside numpy with "high <= 0")."""
    overrides = [
        "duration_s=5",
        "warmup_s=0",
        "workload={kind: poisson, rate_per_s: 2, task: chat}",
        "devices.0.policy=fixed:4",
    ]
    with pytest.raises(ValueError, match="without a policy"):
        unchecked("lan-edge", overrides)


def test_regression_cases_found_by_hypothesis() -> None:
    """Random systems that once broke an invariant, kept as fixed examples."""
    for path in sorted((Path(__file__).parent / "data").glob("*.json")):
        case = json.loads(path.read_text())
        check_invariants(Observed(validate(case["raw"]), case["policy"]))


@pytest.mark.parametrize("seed", [2, 6])
def test_every_background_verify_that_arrives_is_served(seed: int) -> None:
    """Conservation for stochastic background load: the verifies served by the end are the ones that
    arrived, less at most a batch still waiting. The lazy catch-up once restored a stream position
    saved before the stream dropped its served block, skipping ~2,000 arrivals (seed 6, t = 10-15 s)."""
    scenario = load_scenario("metro-5g", ["duration_s=20", "warmup_s=0"])
    sim = build(scenario, "fixed:4", seed, mode="ego")
    served = sim.run()["background_jobs"]
    replica = BackgroundStream(scenario.cloud.background, Streams(sim.seed).rng(Stream.BACKGROUND, 0))
    arrived = 0
    while replica.next_s() <= scenario.duration_s:
        arrived += not replica.prefill[replica.head]
        replica.head += 1
    assert arrived > 7000
    assert 0 <= arrived - served <= scenario.cloud.targets[0].max_batch_size
