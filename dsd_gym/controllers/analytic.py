"""``analytic``: the online goodput controller — expected committed tokens per expected round time.

Before every round it estimates, from the session's telemetry only, the per-token acceptance
probability α (see :class:`~dsd_gym.controllers.heuristics.TokenAcceptance`), the edge's draft time
per token, the network time of a round and the server's (queue + verify) time, and drafts the
window choice γ that maximises

    E[A + 1] / E[round time] = ((1 − α^(γ+1)) / (1 − α)) / (γ·t_draft + t_network + t_server)

(Leviathan et al. 2023, eq. 1, over the round-time model of DESIGN §3). With zero network and
queueing and constant latencies this is Leviathan's speedup (1 − α^(γ+1)) / ((1 − α)(γc + 1)) up to
a constant factor, so the controller picks its argmax.

>>> from dsd_gym.config import load_scenario
>>> from dsd_gym.controllers import parse_policy
>>> from dsd_gym.telemetry import TelemetryTracker
>>> class Edge:  # a session as a controller sees it: its telemetry
...     telemetry = TelemetryTracker()
>>> parse_policy("analytic", load_scenario("ideal"))(None).decide(Edge())  # nothing measured yet
Decision(gamma=4, mode=<Mode.DISTRIBUTED: 0>)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dsd_gym.controllers.fixed import check_mode
from dsd_gym.controllers.heuristics import DEFAULT_WINDOW, TokenAcceptance, nearest_window
from dsd_gym.controllers.registry import register, usages
from dsd_gym.errors import UserError
from dsd_gym.sim.controller import ControllerFactory, Decision, Mode
from dsd_gym.telemetry import INDEX

if TYPE_CHECKING:
    from dsd_gym.config.schema import Scenario

__all__ = ["AnalyticController", "best_window"]

_DRAFT_MS = INDEX["draft_ms_per_token"]
_NETWORK_MS = INDEX["rtt_ms_ewma"]
_SERVER_MS = INDEX["server_ms_ewma"]
_TINY_MS = 1e-9  # keeps a round that costs nothing measurable finite (then the widest window wins)


def best_window(choices: list[int], alpha: float, draft_ms: float, fixed_ms: float) -> int:
    """argmax over ``choices`` (ascending) of E[A + 1] / (γ·draft_ms + fixed_ms); ties to the smaller γ.

    E[A + 1] is concave in γ and the round time affine, so their ratio is unimodal along the
    choices: the scan stops at the first window that does worse than the best so far.
    """
    fixed_ms += _TINY_MS
    certain = alpha >= 1.0  # then E[A + 1] = γ + 1
    best, best_rate = choices[0], -1.0
    for gamma in choices:
        tokens = gamma + 1.0 if certain else (1.0 - alpha ** (gamma + 1)) / (1.0 - alpha)
        rate = tokens / (gamma * draft_ms + fixed_ms)
        if rate > best_rate:
            best, best_rate = gamma, rate
        elif rate < best_rate:
            break
    return best


class AnalyticController:
    """Online goodput maximiser: each round, the γ with the most expected tokens per expected ms.

    Estimates, all read from ``session.telemetry``:

    - α: per-token acceptance probability, successes / trials of the rounds' accepted/drafted counts
      over about the last 50 draft positions (:class:`TokenAcceptance`; the ``acceptance_ewma``
      feature, accepted / drafted, under-reads α and would pick windows too short). 50 positions
      keep the argmax's throughput within 1 % of the best fixed window on ``ideal`` (sampling noise
      in α̂ costs throughput; the tracker's own ~10-round smoothing costs up to 2.6 %) and stay
      shorter than the regimes of the Markov acceptance profiles (80-150 tokens).
    - t_draft: ``draft_ms_per_token`` (the edge's measured draft time over the window).
    - t_network: ``rtt_ms_ewma`` (round − draft − server-reported time).
    - t_server: ``server_ms_ewma`` (server-reported queue + verify time), taken as the same for every
      window. A per-token slope is left out: the verify of γ + 1 tokens is memory-bound (DESIGN §3),
      and once the controller settles on a window its own rounds carry no information about the
      slope, so a regression on them would be noise.

    Before any distributed round has been measured it drafts the default window (4, snapped to the
    nearest choice). The choice is recomputed only when a new round has been seen. Distributed mode
    only: fused and autoregressive rounds cost a different model.
    """

    __slots__ = ("choices", "estimate", "decisions", "decision")
    observes = True

    def __init__(self, choices: list[int]) -> None:
        self.choices = list(choices)
        self.estimate = TokenAcceptance()
        self.decisions = {gamma: Decision(gamma, Mode.DISTRIBUTED) for gamma in choices}
        self.decision = self.decisions[nearest_window(self.choices, DEFAULT_WINDOW)]

    def decide(self, session: Any) -> Decision:
        t = session.telemetry
        if self.estimate.update(t):
            v = t.values
            gamma = best_window(
                self.choices, self.estimate.alpha, v[_DRAFT_MS], v[_NETWORK_MS] + v[_SERVER_MS]
            )
            self.decision = self.decisions[gamma]
        return self.decision


@register("analytic", "analytic", "online goodput: argmax_γ E[A+1] / (γ·t_draft + rtt + t_server), estimated")
def _analytic(arg: str, scenario: Scenario) -> ControllerFactory:
    if arg:
        raise UserError(f"policy 'analytic:{arg}': analytic takes no argument; allowed: {usages()}")
    check_mode("analytic", Mode.DISTRIBUTED, scenario)
    choices = scenario.control.window_choices
    return lambda group: AnalyticController(choices)
