"""The privileged oracles (DESIGN §4) against theory, against the fixed baselines, and their contract.

Comparisons run every policy on the same seeds (common random numbers) and average over them.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from dsd_gym.config import configs_dir, list_scenarios, load_profiles, load_scenario
from dsd_gym.controllers import parse_policy
from dsd_gym.controllers.oracles import candidates, expected_committed
from dsd_gym.errors import UserError
from dsd_gym.runner import build, controllers_for, simulate, telemetry_factory
from dsd_gym.sim import Simulation, expected_tokens_per_round
from dsd_gym.sim.controller import Mode

SEEDS = (0, 1, 2)
SHORT_S = 40  # per-scenario comparisons: 30 s measured after the usual 10 s warm-up
TARGET_MS = 20.0  # the ideal scenario's target forward
# Where the oracle has nothing to exploit (i.i.d. α, no queue it can dodge) it makes the best fixed
# decision, and the two runs differ only by where the rounds cut the same text: |Δ| ≤ 0.2 % measured.
TIE = 0.01
SCENARIOS = [name for name, _ in list_scenarios()]


def _policies(scenario) -> list[str]:
    """Every fixed decision the scenario allows: the baselines the oracle must match or beat."""
    out = []
    for d in candidates(scenario):
        if d.mode == Mode.DISTRIBUTED:
            out.append(f"fixed:{d.gamma}")
        elif d.mode == Mode.FUSED:
            out.append(f"fused:{d.gamma}")
        else:
            out.append("autoregressive")
    return out


@functools.cache
def _mean(name: str, overrides: tuple[str, ...], policy: str, metric: str = "throughput_tok_s") -> float:
    scenario = load_scenario(name, list(overrides))
    return float(np.mean([simulate(scenario, policy, seed)[metric] for seed in SEEDS]))


def _best_fixed(name: str, overrides: tuple[str, ...], metric: str = "throughput_tok_s") -> tuple[str, float]:
    scenario = load_scenario(name, list(overrides))
    return max(((p, _mean(name, overrides, p, metric)) for p in _policies(scenario)), key=lambda pv: pv[1])


def _leviathan(alpha: float, gamma: int, c: float) -> float:
    return expected_tokens_per_round(alpha, gamma) / (gamma * c + 1)


# -- theory: the ideal scenario -----------------------------------------------------------------


def test_expected_committed_is_leviathan_for_iid_acceptance() -> None:
    alpha = np.full(50, 0.7)
    exact = expected_committed(alpha, 3, 1000, 8)
    assert exact == pytest.approx([expected_tokens_per_round(0.7, g) for g in range(9)])
    assert expected_committed(alpha, 3, 3, 8)[2:].tolist() == pytest.approx([exact[2]] * 7), (
        "capped by the tokens left"
    )


@pytest.mark.parametrize("c", [0.05, 0.2])
@pytest.mark.parametrize("alpha", [0.5, 0.7, 0.9])
def test_ideal_oracle_takes_leviathans_argmax(alpha: float, c: float) -> None:
    overrides = (
        f"acceptance={{kind: iid, alpha: {alpha}}}",
        f"devices.0.latency.forward_ms={c * TARGET_MS}",
        "control.modes=[distributed]",
        "duration_s=200",
    )
    scenario = load_scenario("ideal", list(overrides))
    speedup = {g: _leviathan(alpha, g, c) for g in scenario.control.window_choices}
    # α = 0.5, c = 0.2 ties γ = 1 and 2 exactly; any argmax up to rounding is the theory's answer.
    argmax = {g for g, s in speedup.items() if s >= max(speedup.values()) * (1 - 1e-9)}
    chosen = set()

    def record(r, session) -> None:
        if session.request.output_tokens - r.position > max(speedup):  # the cap of a request's end aside
            chosen.add((r.mode, r.gamma))

    summary = build(scenario, "oracle", 0, round_hook=record).run()
    assert {mode for mode, _ in chosen} == {Mode.DISTRIBUTED}
    assert len(chosen) == 1 and {g for _, g in chosen} <= argmax, f"chose {chosen}; Leviathan: {argmax}"
    best = max(simulate(scenario, f"fixed:{g}", 0)["throughput_tok_s"] for g in speedup)
    assert summary["throughput_tok_s"] >= best * (1 - TIE)


@pytest.mark.parametrize("c", [0.05, 0.2])
@pytest.mark.parametrize("alpha", [0.5, 0.7, 0.9])
def test_rollout_agrees_with_the_oracle_on_ideal(alpha: float, c: float) -> None:
    overrides = (
        f"acceptance={{kind: iid, alpha: {alpha}}}",
        f"devices.0.latency.forward_ms={c * TARGET_MS}",
        "control.modes=[distributed]",
        "duration_s=100",
    )
    oracle = _mean("ideal", overrides, "oracle")
    assert _mean("ideal", overrides, "oracle-rollout") == pytest.approx(oracle, rel=0.01)


# -- contract -----------------------------------------------------------------------------------


class _Peeking:
    """Decides like ``inner``, after consulting every oracle at the same decision point."""

    def __init__(self, inner, oracles) -> None:
        self.inner = inner
        self.oracles = oracles
        self.observes = inner.observes
        self.consulted = 0

    def decide(self, session):
        for oracle in self.oracles:
            oracle.decide(session)
        self.consulted += 1
        return self.inner.decide(session)


def _fixed4_run(scenario, seed: int, peek: bool) -> tuple[dict, int]:
    fixed = controllers_for(scenario, "fixed:4")
    oracles = [parse_policy("oracle", scenario), parse_policy("oracle-rollout", scenario)]
    built: list[_Peeking] = []

    def controllers(group):
        if not peek:
            return fixed(group)
        built.append(_Peeking(fixed(group), [make(group) for make in oracles]))
        return built[-1]

    profiles = load_profiles(configs_dir())["acceptance"]
    sim = Simulation(
        scenario,
        controllers,
        seed=seed,
        telemetry=telemetry_factory,
        acceptance_profiles={name: p.process for name, p in profiles.items()},
    )
    return sim.run(), sum(p.consulted for p in built)


@pytest.mark.parametrize("name", ["busy-cloud", "flaky", "hetero-fleet", "cellular", "metro-5g"])
def test_consulting_the_oracles_changes_nothing(name: str) -> None:
    """Background load drawn lazily, lossy links and failures, shared devices and traces, bursts."""
    scenario = load_scenario(name, ["duration_s=20"])
    plain, _ = _fixed4_run(scenario, 1, peek=False)
    peeked, consulted = _fixed4_run(scenario, 1, peek=True)
    assert consulted > 100
    assert json.dumps(peeked, sort_keys=True) == json.dumps(plain, sort_keys=True)
    reference = simulate(scenario, "fixed:4", 1)
    del reference["policy"]
    assert json.dumps(plain, sort_keys=True) == json.dumps(reference, sort_keys=True)


@pytest.mark.parametrize("policy", ["oracle", "oracle-rollout"])
def test_oracles_are_deterministic(policy: str) -> None:
    scenario = load_scenario("metro-5g", ["duration_s=15"])
    assert simulate(scenario, policy, 3) == simulate(scenario, policy, 3)


@pytest.mark.parametrize("spec", ["oracle:4", "oracle-rollout:x"])
def test_oracle_specs_take_no_argument(spec: str) -> None:
    with pytest.raises(UserError, match="takes no argument"):
        parse_policy(spec, load_scenario("ideal"))


def test_oracle_offers_only_enabled_modes() -> None:
    scenario = load_scenario("ideal", ["control.modes=[distributed, autoregressive]", "duration_s=5"])
    modes = set()
    build(scenario, "oracle", 0, round_hook=lambda r, s: modes.add(r.mode)).run()
    assert modes <= {Mode.DISTRIBUTED, Mode.AUTOREGRESSIVE}


# -- on every shipped scenario -------------------------------------------------------------------
# That the oracle is at least every deployable controller on every scenario, ego and fleet, is
# tests/evaluation/test_headroom.py: through the harness, on the metric the harness reports.

# hetero-fleet: 28 sessions on 3 targets, ~20 s of the file's time under both oracles.
_SLOW = {"hetero-fleet"}


_ROLLOUT_NOISE = (
    "on a LAN the windows' round times differ by little, so K = 64 sampled rounds per candidate "
    "often rank them wrongly: measured (8 seeds, 40 s) oracle 212.8 tok/s, oracle-rollout 204.9 "
    "(-3.7 %), fixed:1 201.9"
)


def _cases(xfail: dict[str, str]) -> list:
    marks = {n: [pytest.mark.slow] if n in _SLOW else [] for n in SCENARIOS}
    for n, reason in xfail.items():
        marks[n].append(pytest.mark.xfail(strict=True, reason=reason))
    return [pytest.param(n, marks=marks[n]) for n in SCENARIOS]


@pytest.mark.parametrize("name", _cases({"lan-edge": _ROLLOUT_NOISE}))
def test_rollout_is_within_a_few_percent_of_the_oracle(name: str) -> None:
    overrides = (f"duration_s={SHORT_S}",)
    oracle = _mean(name, overrides, "oracle")
    assert _mean(name, overrides, "oracle-rollout") == pytest.approx(oracle, rel=0.03)


def test_oracle_sees_the_regime() -> None:
    """One session drafting on the edge: the window follows prose (α 0.66) and code (α 0.86)."""
    overrides = ("duration_s=60", "control.modes=[distributed]", "devices.0.count=1")
    best, best_rate = _best_fixed("regime-shift", overrides, "session_tok_s")
    oracle = _mean("regime-shift", overrides, "oracle", "session_tok_s")
    assert oracle >= best_rate * 1.02, f"oracle {oracle:.1f} tok/s per session, {best} {best_rate:.1f}"
    assert _mean("regime-shift", overrides, "oracle") > _best_fixed("regime-shift", overrides)[1]


@pytest.mark.xfail(
    strict=True,
    reason="on the shipped fleet the target saturates (utilisation 0.97 under fused rounds) and the "
    "two regimes want nearly the same window: even a policy told the regime (fused 3 in prose, 4 in "
    "code) gains 0.25 % over fused:4. Measured (3 seeds, 40 s): oracle 322.6 tok/s, fused:4 322.9",
)
def test_oracle_beats_the_best_fixed_decision_clearly_on_the_regime_shift_fleet() -> None:
    overrides = (f"duration_s={SHORT_S}",)
    assert _mean("regime-shift", overrides, "oracle") >= _best_fixed("regime-shift", overrides)[1] * 1.02
