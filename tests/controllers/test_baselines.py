"""The rule-based baselines (DESIGN §4) on scripted telemetry, and every new policy spec end to end.

Each controller sees a session that holds nothing but a real ``TelemetryTracker``: the rounds are
fed to the tracker as ``RoundRecord``s, and the decision after each round is checked against the
controller's published rule.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dsd_gym.cli import main
from dsd_gym.config import configs_dir, load_scenario
from dsd_gym.controllers import parse_policy
from dsd_gym.controllers.heuristics import TokenAcceptance, nearest_window
from dsd_gym.errors import UserError
from dsd_gym.runner import build
from dsd_gym.sim import Decision, Mode, RoundRecord
from dsd_gym.telemetry import TelemetryTracker

NEW_SPECS = ["heuristic", "backoff", "specpp", "specpp:0.5", "analytic"]
SCENARIOS = sorted(p.stem for p in (configs_dir() / "scenarios").glob("*.yaml"))


class Edge:
    """A session as a deployable controller may see it: its telemetry and nothing else."""

    __slots__ = ("telemetry",)

    def __init__(self, smoothing: float = 0.2) -> None:
        self.telemetry = TelemetryTracker(smoothing)

    def play(self, gamma: int, accepted: int, mode: Mode = Mode.DISTRIBUTED) -> None:
        """One round with window ``gamma`` of which ``accepted`` draft tokens were accepted."""
        t = self.telemetry
        start = t.rounds * 0.05
        draft = 0.002 * gamma if mode == Mode.DISTRIBUTED else 0.0
        t.update(RoundRecord(0, 0, int(mode), gamma, accepted, accepted + 1, 0, start, start + 0.04,
                             draft, 0.005, 0.001, 0.02, 0.005, 1, 1, 100))  # fmt: skip


def controller(spec: str, *overrides: str):
    return parse_policy(spec, load_scenario("ideal", list(overrides)))(None)


def windows(ctl, edge: Edge, rounds: list[tuple[int, int]]) -> list[int]:
    """The window decided before the first round and after each scripted (γ, A) round."""
    out = [ctl.decide(edge).gamma]
    for gamma, accepted in rounds:
        edge.play(gamma, accepted)
        out.append(ctl.decide(edge).gamma)
    return out


# ---------------------------------------------------------------- heuristic (Hugging Face)


def test_heuristic_adds_two_after_a_full_accept_and_drops_one_otherwise() -> None:
    ctl, edge = controller("heuristic"), Edge()
    got = windows(ctl, edge, [(5, 5), (7, 3), (6, 6), (8, 8), (8, 0), (7, 7), (8, 2)])
    #          start 5  all → 7  reject → 6  all → 8  all → 8 (cap)  → 7  all → 8 (cap)  → 7
    assert got == [5, 7, 6, 8, 8, 7, 8, 7]


def test_heuristic_floors_at_one_and_a_full_accept_at_one_climbs_again() -> None:
    ctl, edge = controller("heuristic"), Edge()
    got = windows(ctl, edge, [(5, 0), (4, 1), (3, 2), (2, 0), (1, 0), (1, 0), (1, 1), (3, 3)])
    assert got == [5, 4, 3, 2, 1, 1, 1, 3, 5]


def test_heuristic_decides_once_per_round_and_ignores_cloud_rounds() -> None:
    ctl, edge = controller("heuristic"), Edge()
    assert [ctl.decide(edge).gamma for _ in range(3)] == [5, 5, 5]  # no round yet: no change
    edge.play(5, 5)
    assert [ctl.decide(edge).gamma for _ in range(3)] == [7, 7, 7]  # one round, one step
    edge.play(0, 0, Mode.AUTOREGRESSIVE)  # nothing was drafted: no evidence either way
    assert ctl.decide(edge).gamma == 7


def test_heuristic_snaps_its_counter_to_the_nearest_choice() -> None:
    ctl, edge = controller("heuristic", "control.window_choices=[1, 2, 4, 8]"), Edge()
    # counter 5 → window 4; all 4 accepted is a full window → 7 → 8; reject → 6 (tie 4/8: smaller);
    # reject → 5 → 4; reject → 4; reject → 3 (tie 2/4: smaller) → 2
    got = windows(ctl, edge, [(4, 4), (8, 1), (4, 0), (4, 0), (4, 0)])
    assert got == [4, 8, 4, 4, 4, 2]


def test_heuristic_caps_its_start_at_the_widest_choice() -> None:
    ctl, edge = controller("heuristic", "control.window_choices=[1, 2, 3]"), Edge()
    assert windows(ctl, edge, [(3, 3), (3, 1), (2, 0)]) == [3, 3, 2, 1]


# ---------------------------------------------------------------- backoff (DSD-Sim)


@pytest.mark.parametrize(
    ("gamma", "accepted", "window"),
    [
        (4, 1, 1),  # 0.25 exactly: at or below LOW → γ_min
        (8, 2, 1),  # 0.25 exactly
        (7, 1, 1),  # 0.14
        (8, 0, 1),  # 0
        (7, 2, 4),  # 0.29: the middle band → the default
        (4, 2, 4),  # 0.5
        (7, 4, 4),  # 0.57
        (5, 3, 8),  # 0.6 exactly: at or above HIGH → γ_max
        (8, 5, 8),  # 0.625
        (8, 8, 8),  # 1
    ],
)
def test_backoff_thresholds_are_inclusive(gamma: int, accepted: int, window: int) -> None:
    ctl, edge = controller("backoff"), Edge(smoothing=1.0)  # acceptance_ewma = A/γ of the last round
    edge.play(gamma, accepted)
    assert edge.telemetry["acceptance_ewma"] == accepted / gamma
    assert ctl.decide(edge) == Decision(window, Mode.DISTRIBUTED)


def test_backoff_reads_the_smoothed_rate_and_starts_at_the_default() -> None:
    ctl, edge = controller("backoff"), Edge(smoothing=0.5)
    assert ctl.decide(edge).gamma == 4  # nothing measured
    edge.play(4, 4)  # rate 1
    assert ctl.decide(edge).gamma == 8
    edge.play(8, 0)  # smoothed accepted 2, drafted 6: 1/3, the middle band
    assert ctl.decide(edge).gamma == 4
    edge.play(8, 0)  # 1 / 7
    assert ctl.decide(edge).gamma == 1


def test_backoff_snaps_the_default_and_uses_the_scenarios_extremes() -> None:
    ctl, edge = controller("backoff", "control.window_choices=[2, 3, 5, 6]"), Edge(smoothing=1.0)
    assert ctl.decide(edge).gamma == 3  # 4 is equally far from 3 and 5: the smaller
    edge.play(5, 0)
    assert ctl.decide(edge).gamma == 2
    edge.play(5, 5)
    assert ctl.decide(edge).gamma == 6


# ---------------------------------------------------------------- specpp (SpecDec++)


def reference_alpha(rounds: list[tuple[int, int]], memory: float = TokenAcceptance.MEMORY) -> float:
    """Σ w·A / Σ w·trials, a round's weight (1 − 1/memory) to the power of the trials after it."""
    trials = [accepted + 1 if accepted < gamma else accepted for gamma, accepted in rounds]
    later = np.cumsum(trials[::-1])[::-1] - trials  # trials in the rounds after each round
    weights = (1.0 - 1.0 / memory) ** later
    return float(np.dot(weights, [a for _, a in rounds]) / np.dot(weights, trials))


def specpp_rule(alpha: float, h: float, choices: list[int]) -> int:
    """SpecDec++ per round: the largest choice with P(a rejection in γ) = 1 − α^γ ≤ h, at least γ_min."""
    return max((g for g in choices if 1.0 - alpha**g <= h), default=min(choices))


def test_token_acceptance_is_successes_over_trials() -> None:
    rounds = [(4, 2), (4, 4), (6, 0), (3, 3), (8, 5)]
    estimate, edge = TokenAcceptance(), Edge()
    for gamma, accepted in rounds:
        edge.play(gamma, accepted)
        assert estimate.update(edge.telemetry)
        assert not estimate.update(edge.telemetry)  # the same round twice counts once
    assert estimate.alpha == pytest.approx(reference_alpha(rounds), rel=1e-12)


def test_token_acceptance_recovers_alpha_where_the_acceptance_rate_under_reads_it() -> None:
    """i.i.d. α = 0.7 at γ = 4: A/γ averages α(1 − α^γ)/((1 − α)γ) = 0.443; successes/trials, 0.7."""
    rng = np.random.default_rng(7)
    estimate, edge = TokenAcceptance(memory_tokens=1e9), Edge(smoothing=0.01)
    for _ in range(5000):
        accepted = int(np.argmin(np.append(rng.random(4) < 0.7, False)))  # leading run of accepts
        edge.play(4, accepted)
        estimate.update(edge.telemetry)
    assert estimate.alpha == pytest.approx(0.7, abs=0.01)
    assert edge.telemetry["acceptance_ewma"] == pytest.approx(0.443, abs=0.03)


@pytest.mark.parametrize("h", [0.3, 0.5, 0.7, 0.9])
@pytest.mark.parametrize("seed", range(4))
def test_specpp_takes_the_largest_window_within_the_rejection_threshold(h: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ctl, edge = controller(f"specpp:{h}"), Edge()
    assert ctl.decide(edge).gamma == 4  # nothing measured: the default window
    rounds: list[tuple[int, int]] = []
    level = rng.uniform(0.2, 0.95)  # the scripted text gets easier and harder as it goes
    for _ in range(60):
        level = min(0.99, max(0.05, level + rng.normal(0.0, 0.08)))
        gamma = int(rng.integers(1, 9))
        accepted = int(np.argmin(np.append(rng.random(gamma) < level, False)))
        rounds.append((gamma, accepted))
        edge.play(gamma, accepted)
        alpha = reference_alpha(rounds)
        assert ctl.decide(edge).gamma == specpp_rule(alpha, h, list(range(1, 9))), (rounds[-1], alpha)


@pytest.mark.parametrize(
    ("rounds", "window"),
    [
        ([(4, 4)], 8),  # α̂ = 1: no rejection risk at any window
        ([(4, 0)], 1),  # α̂ = 0: a rejection is certain; γ_min
        ([(4, 2)], 2),  # α̂ = 2/3: 1 − (2/3)^2 = 0.56 ≤ 0.7 < 1 − (2/3)^3 = 0.70
        ([(8, 7)], 8),  # α̂ = 7/8: 1 − (7/8)^8 = 0.66 ≤ 0.7
    ],
)
def test_specpp_default_threshold_on_single_rounds(rounds: list[tuple[int, int]], window: int) -> None:
    ctl, edge = controller("specpp"), Edge()
    assert windows(ctl, edge, rounds)[-1] == window


# ---------------------------------------------------------------- specs: parsing, running, refusing


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_new_spec_parses_on_every_shipped_scenario(name: str) -> None:
    scenario = load_scenario(name)
    for spec in NEW_SPECS:
        ctl = parse_policy(spec, scenario)(scenario.devices[0])
        assert ctl.observes is True
        edge = Edge()
        first = ctl.decide(edge)  # zero rounds measured
        assert first.mode == Mode.DISTRIBUTED and first.gamma in scenario.control.window_choices


@pytest.mark.parametrize("spec", NEW_SPECS)
def test_every_new_spec_runs_in_the_simulator_within_its_choices(spec: str) -> None:
    scenario = load_scenario("regime-shift", ["duration_s=20", "control.window_choices=[1, 2, 3, 5, 8]"])
    decided = set()
    summary = build(scenario, spec, seed=1, round_hook=lambda r, s: decided.add(r.gamma)).run()
    assert summary["rounds"] > 0 and summary["throughput_tok_s"] > 0
    assert decided <= {1, 2, 3, 5, 8}
    if spec != "backoff":  # backoff's rate on this text stays in its middle band: one window
        assert len(decided) > 1, "an adaptive controller that never adapts"


@pytest.mark.parametrize("spec", NEW_SPECS)
def test_every_new_spec_runs_from_the_command_line(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["simulate", "--scenario", "metro-5g", "--policy", spec, "--set", "duration_s=20"])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, ""), err
    assert spec in out


def test_the_installed_command_runs_a_new_spec() -> None:
    argv = ["-m", "dsd_gym", "simulate", "--scenario", "metro-5g", "--policy", "analytic"]
    proc = subprocess.run([sys.executable, *argv, "--set", "duration_s=20", "--json"], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


BAD_SPECS = [
    ("specpp:2", "strictly between 0 and 1"),
    ("specpp:x", "strictly between 0 and 1"),
    ("specpp:0", "strictly between 0 and 1"),
    ("specpp:1", "strictly between 0 and 1"),
    ("specpp:nan", "strictly between 0 and 1"),
    ("specpp:-0.5", "strictly between 0 and 1"),
    ("heuristic:3", "heuristic takes no argument; allowed: "),
    ("backoff:0.2,0.7", "backoff takes no argument; allowed: "),
    ("analytic:fast", "analytic takes no argument; allowed: "),
    ("torchscript:a.pt", "controller file a.pt: no such file"),
    ("sb3:model.zip", "RL run model.zip: no such file or folder"),
    ("sb3", "give the run folder dsd-gym train rl wrote, sb3:PATH"),
    ("torchscript", "give the exported file, torchscript:PATH"),
]


@pytest.mark.parametrize(("spec", "allowed"), BAD_SPECS)
def test_bad_specs_fail_with_one_line_naming_the_spec(spec: str, allowed: str) -> None:
    with pytest.raises(UserError) as info:
        parse_policy(spec, load_scenario("metro-5g"))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"policy {spec!r}: ")
    assert allowed in message


@pytest.mark.parametrize("spec", ["specpp:2", "heuristic:3", "torchscript:a.pt"])
def test_bad_specs_exit_2_with_one_line_from_the_command_line(
    spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["simulate", "--scenario", "metro-5g", "--policy", spec, "--set", "duration_s=20"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and repr(spec) in err


@pytest.mark.parametrize("spec", NEW_SPECS)
def test_new_specs_need_distributed_mode(spec: str) -> None:
    scenario = load_scenario("ideal", ["control.modes=[fused, autoregressive]"])
    with pytest.raises(UserError, match=r"mode distributed is not enabled"):
        parse_policy(spec, scenario)


def test_nearest_window_breaks_ties_toward_the_smaller() -> None:
    assert nearest_window([1, 2, 4, 8], 6) == 4
    assert nearest_window([1, 2, 4, 8], 7) == 8
    assert nearest_window([2, 3, 5, 6], 4) == 3
    assert nearest_window([6, 7], 1) == 6
