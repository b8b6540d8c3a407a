"""Rule-based window controllers from the literature: ``heuristic``, ``backoff``, ``specpp`` (DESIGN §4).

Each reads only ``session.telemetry`` (the edge-observable features of ``dsd_gym.telemetry``), picks
a window among the scenario's choices, and runs distributed rounds. A controller notices a new round
by the tracker's round count, so a decision made before any round (zero rounds) or made twice
without a round in between (a prefill again after a failure) changes nothing.

>>> from dsd_gym.config import load_scenario
>>> from dsd_gym.controllers import parse_policy
>>> from dsd_gym.telemetry import TelemetryTracker
>>> class Edge:  # a session as a controller sees it: its telemetry
...     telemetry = TelemetryTracker()
>>> parse_policy("heuristic", load_scenario("ideal"))(None).decide(Edge())
Decision(gamma=5, mode=<Mode.DISTRIBUTED: 0>)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from dsd_gym.controllers.fixed import check_mode
from dsd_gym.controllers.registry import register, usages
from dsd_gym.errors import UserError
from dsd_gym.sim.controller import ControllerFactory, Decision, Mode
from dsd_gym.telemetry import INDEX

if TYPE_CHECKING:
    from dsd_gym.config.schema import Scenario
    from dsd_gym.telemetry import TelemetryTracker

__all__ = [
    "DEFAULT_WINDOW",
    "AcceptanceBackoffController",
    "HeuristicController",
    "SpecPPController",
    "TokenAcceptance",
    "nearest_window",
]

DEFAULT_WINDOW = 4  # the window before anything is measured, and backoff's middle band
_ACCEPTED = INDEX["accepted"]
_DRAFTED = INDEX["drafted"]
_ACCEPTANCE_EWMA = INDEX["acceptance_ewma"]


def nearest_window(choices: list[int], gamma: int) -> int:
    """The window choice nearest to ``gamma``; a tie goes to the smaller window."""
    return min(choices, key=lambda choice: (abs(choice - gamma), choice))


class TokenAcceptance:
    """Per-token acceptance probability α̂ from the rounds' accepted/drafted counts.

    A round of window γ with A accepted is A + 1 Bernoulli trials with A successes when A < γ (the
    rejection is seen) and γ trials with γ successes when all were accepted, so successes / trials is
    the maximum-likelihood α under i.i.d. acceptance, whatever rule chose γ. The telemetry's
    ``acceptance_ewma`` (accepted / drafted) is the *acceptance rate* of DESIGN §3's metrics instead,
    which under-reads α: E[A]/γ = α(1 − α^γ) / ((1 − α)γ), 0.44 for α = 0.7, γ = 4.
    Both counts forget per trial, not per round: a round's counts enter with weight 1 and the
    earlier ones are multiplied by (1 − 1/``memory_tokens``) per trial of the new round, so the
    estimate remembers about ``memory_tokens`` draft positions whatever the windows were.
    """

    __slots__ = ("keep", "successes", "trials", "rounds")
    MEMORY = 50.0

    def __init__(self, memory_tokens: float = MEMORY) -> None:
        self.keep = 1.0 - 1.0 / memory_tokens  # the weight left on the past after one more trial
        self.successes = 0.0
        self.trials = 0.0  # 0 until a distributed round has been seen
        self.rounds = 0  # the tracker's round count when last looked at

    def update(self, tracker: TelemetryTracker) -> bool:
        """Take in the tracker's newest round, if there is one; True if α̂ changed."""
        if tracker.rounds == self.rounds:
            return False
        self.rounds = tracker.rounds
        v = tracker.values
        drafted = v[_DRAFTED]
        if drafted <= 0.0:  # a fused or autoregressive round: nothing drafted at the edge
            return False
        accepted = v[_ACCEPTED]
        trials = accepted + 1.0 if accepted < drafted else accepted
        keep = self.keep**trials
        self.successes = keep * self.successes + accepted
        self.trials = keep * self.trials + trials
        return True

    @property
    def alpha(self) -> float:
        """α̂ in [0, 1]; only meaningful once ``trials`` > 0."""
        return self.successes / self.trials


def _decisions(choices: list[int]) -> dict[int, Decision]:
    return {gamma: Decision(gamma, Mode.DISTRIBUTED) for gamma in choices}


class HeuristicController:
    """Hugging Face assisted generation's ``"heuristic"`` schedule of ``num_assistant_tokens``.

    Rule: after a round in which every draft token was accepted, γ += 2; otherwise γ −= 1, floor 1.
    Source: ``transformers``, ``src/transformers/generation/candidate_generator.py``,
    ``AssistedCandidateGenerator.update_candidate_strategy`` (``num_matches == num_assistant_tokens``
    → ``+= 2.0``, else ``max(1.0, ... - 1.0)``), used when
    ``GenerationConfig.num_assistant_tokens_schedule`` is ``"heuristic"``.

    Start value 5: ``GenerationConfig.num_assistant_tokens`` defaulted to 5 while ``"heuristic"`` was
    the default schedule (later releases default to 20 with a ``"constant"`` schedule). The counter
    persists across the session's requests, as ``"heuristic"`` (unlike ``"heuristic_transient"``)
    keeps it across ``generate`` calls. Adaptations to a finite action set: the counter is capped at
    the largest window choice, and each round drafts the choice nearest to the counter (ties to the
    smaller). "Every draft token accepted" compares with the window actually drafted.
    """

    __slots__ = ("gamma", "cap", "rounds", "decisions")
    observes = True
    START = 5

    def __init__(self, choices: list[int]) -> None:
        self.cap = max(choices)
        self.gamma = min(self.START, self.cap)  # HF's counter, before snapping to a choice
        self.rounds = 0
        by_window = _decisions(choices)
        self.decisions = [by_window[nearest_window(choices, g)] for g in range(self.cap + 1)]

    def decide(self, session: Any) -> Decision:
        t = session.telemetry
        if t.rounds != self.rounds:
            self.rounds = t.rounds
            v = t.values
            drafted = v[_DRAFTED]
            if drafted > 0.0:
                if v[_ACCEPTED] >= drafted:
                    self.gamma = min(self.gamma + 2, self.cap)
                elif self.gamma > 1:
                    self.gamma -= 1
        return self.decisions[self.gamma]


class AcceptanceBackoffController:
    """The acceptance back-off of the DSD authors' simulator (DSD-Sim, Yu et al. 2025).

    Rule: γ_min when the smoothed acceptance rate is at or below ``LOW`` = 0.25, γ_max at or above
    ``HIGH`` = 0.6, otherwise the default window (4, snapped to the nearest choice); the default also
    before any round. γ_min and γ_max are the scenario's smallest and largest window choices.
    Source: github.com/yfzzzyyls/dsdSim, ``src/sim.py``, ``AcceptanceBackoffGammaPolicy``
    (``ratio <= low`` → ``min_gamma``, ``ratio >= high`` → ``max_gamma``, else the default), with
    the thresholds of its ``acceptance_backoff`` preset
    (``experiments/scripts/gamma_policy_draft_sweep.py``: 0.25, 0.6, default 4, γ from 2 to 8).
    Its ratio is accepted / drafted tokens, which here is the telemetry's ``acceptance_ewma``.
    """

    __slots__ = ("low", "middle", "high")
    observes = True
    LOW = 0.25
    HIGH = 0.6

    def __init__(self, choices: list[int]) -> None:
        self.low = Decision(min(choices), Mode.DISTRIBUTED)
        self.middle = Decision(nearest_window(choices, DEFAULT_WINDOW), Mode.DISTRIBUTED)
        self.high = Decision(max(choices), Mode.DISTRIBUTED)

    def decide(self, session: Any) -> Decision:
        t = session.telemetry
        if t.rounds == 0:
            return self.middle
        rate = t.values[_ACCEPTANCE_EWMA]
        if rate <= self.LOW:
            return self.low
        if rate >= self.HIGH:
            return self.high
        return self.middle


class SpecPPController:
    """A per-round form of SpecDec++'s stop rule (Huang, Guo and Wang 2024, arXiv:2405.19715).

    SpecDec++ drafts token by token and stops "when the predicted probability that at least one token
    gets rejected exceeds a threshold" h (the optimal policy of its MDP is such a threshold policy).
    With one acceptance estimate α̂ for every position, P(a rejection among γ tokens) = 1 − α̂^γ, so
    the round drafts the largest window choice γ with 1 − α̂^γ ≤ h, at least γ_min (the smallest
    choice). α̂ is the per-token estimate of :class:`TokenAcceptance` (SpecDec++ predicts per-token
    acceptance probabilities); before any distributed round, the default window (4, snapped).
    h defaults to 0.7, the ``stop_threshold`` of the DSD authors' ``specpp`` preset; their
    ``SpecPPGammaPolicy`` (github.com/yfzzzyyls/dsdSim, ``src/sim.py``) applies the same rule to
    per-position predictions: the deepest window whose cumulative rejection probability stays ≤ h.
    """

    __slots__ = ("threshold", "estimate", "descending", "smallest", "default", "decision")
    observes = True
    THRESHOLD = 0.7

    def __init__(self, choices: list[int], threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        self.estimate = TokenAcceptance()
        by_window = _decisions(choices)
        self.descending = tuple((g, by_window[g]) for g in sorted(choices, reverse=True))
        self.smallest = by_window[min(choices)]
        self.default = by_window[nearest_window(choices, DEFAULT_WINDOW)]
        self.decision = self.default

    def decide(self, session: Any) -> Decision:
        estimate = self.estimate
        if estimate.update(session.telemetry):
            alpha, h = estimate.alpha, self.threshold
            self.decision = self.smallest
            for gamma, decision in self.descending:
                if 1.0 - alpha**gamma <= h:
                    self.decision = decision
                    break
        return self.decision


def _no_argument(name: str, arg: str) -> None:
    if arg:
        raise UserError(f"policy '{name}:{arg}': {name} takes no argument; allowed: {usages()}")


@register("heuristic", "heuristic", "Hugging Face assisted generation: γ += 2 after a full accept, else −1")
def _heuristic(arg: str, scenario: Scenario) -> ControllerFactory:
    _no_argument("heuristic", arg)
    check_mode("heuristic", Mode.DISTRIBUTED, scenario)
    choices = scenario.control.window_choices
    return lambda group: HeuristicController(choices)


@register("backoff", "backoff", "DSD-Sim acceptance back-off: γ_min at rate ≤ 0.25, γ_max at ≥ 0.6, else 4")
def _backoff(arg: str, scenario: Scenario) -> ControllerFactory:
    _no_argument("backoff", arg)
    check_mode("backoff", Mode.DISTRIBUTED, scenario)
    choices = scenario.control.window_choices
    return lambda group: AcceptanceBackoffController(choices)


@register("specpp", "specpp[:H]", "SpecDec++ stop rule: largest γ with P(a rejection) = 1 − α̂^γ ≤ H (0.7)")
def _specpp(arg: str, scenario: Scenario) -> ControllerFactory:
    spec = f"specpp:{arg}" if arg else "specpp"
    threshold = SpecPPController.THRESHOLD
    if arg:
        try:
            threshold = float(arg)
        except ValueError:
            threshold = math.nan
        if not 0.0 < threshold < 1.0:  # also refuses nan
            raise UserError(
                f"policy {spec!r}: the stop threshold H must be a number strictly between 0 and 1 "
                f"(e.g. specpp:0.7); got {arg!r}"
            )
    check_mode(spec, Mode.DISTRIBUTED, scenario)
    choices = scenario.control.window_choices
    return lambda group: SpecPPController(choices, threshold)
