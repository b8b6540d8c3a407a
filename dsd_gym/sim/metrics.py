"""Metrics exactly as DESIGN §3 defines them; the definitions are part of the API.

Everything is counted after the warm-up ``warmup_s`` and up to the end of the run ``duration_s``
(the measurement window, length ``W``):

- ``throughput_tok_s``: output tokens committed by every session (edge-visible time in the window) / W.
- ``session_tok_s``: the decode speed a user sees: tokens committed by decode rounds / the summed
  duration of those rounds.
- ``ttft_ms``, ``tpot_ms``, ``e2e_ms``: p50/p95/p99 over requests that arrived in the window and
  completed before its end. TPOT = (last token − first token) / (output tokens − 1).
- ``goodput_rps``: those requests that met both SLOs (TTFT and TPOT) / W.
- ``acceptance_rate``: accepted / drafted draft tokens (distributed and fused rounds).
- ``tokens_per_round``: committed / rounds (decode rounds of every mode; the prefill's token excluded).
- ``target_utilization``: busy time of the targets in the window / (W × targets).
- ``mean_batch_size``: mean sequences per iteration, over iterations started in the window.
- ``round_breakdown_ms``: mean draft, uplink, queue, verify, downlink time of distributed rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from dsd_gym.sim.controller import Mode

if TYPE_CHECKING:
    from dsd_gym.sim.cloud import Target
    from dsd_gym.sim.records import Request

BREAKDOWN = ("draft", "uplink", "queue", "verify", "downlink")
# Bound once, as the int a round's mode is: an Enum attribute read is slow, and so is comparing an int
# with an IntEnum; this is read every round.
DISTRIBUTED = int(Mode.DISTRIBUTED)


class Metrics:
    enabled = True  # reported to; the hot paths skip their calls to a NoMetrics (whose is False)

    def __init__(self, warmup_s: float, end_s: float, slo_ttft_s: float, slo_tpot_s: float) -> None:
        self.warmup_s = warmup_s
        self.end_s = end_s
        self.slo_ttft_s = slo_ttft_s
        self.slo_tpot_s = slo_tpot_s
        self.tokens = 0
        self.foreground_tokens = 0
        self.rounds = [0, 0, 0]
        self.round_tokens = 0
        self.round_time_s = 0.0
        self.accepted = 0
        self.drafted = 0
        self.breakdown_s = [0.0] * 5
        self.ttft_s: list[float] = []
        self.tpot_s: list[float] = []
        self.e2e_s: list[float] = []
        self.completed = 0
        self.good = 0
        self.reprefills = 0
        self.busy_s = 0.0
        self.iterations = 0
        self.batch_sum = 0
        self.iteration_tokens = 0
        self.background_jobs = 0
        self.background_tokens = 0
        self.failures = 0

    # -- events --------------------------------------------------------------------------------

    def on_tokens(self, session: Any, t: float, n: int) -> None:
        if self.warmup_s <= t <= self.end_s:
            self.tokens += n
            if not session.background:
                self.foreground_tokens += n

    def on_round(
        self, session: Any, token_s: float, mode: int, gamma: int, accepted: int, committed: int,
        start_s: float, end_s: float, draft_s: float, uplink_s: float, queue_s: float, verify_s: float,
        downlink_s: float,
    ) -> None:  # fmt: skip
        """A round ended (its figures named as in ``RoundRecord``, passed as values: a session builds
        no record unless something else reads it). Its committed tokens count as ``on_tokens`` would
        at ``token_s``, when they reached the edge (one call instead of two per round)."""
        if self.warmup_s <= token_s <= self.end_s:
            self.tokens += committed
            if not session.background:
                self.foreground_tokens += committed
        if end_s < self.warmup_s:
            return
        self.rounds[mode] += 1
        self.round_tokens += committed
        self.round_time_s += end_s - start_s
        self.accepted += accepted
        self.drafted += gamma
        if mode == DISTRIBUTED:
            b = self.breakdown_s
            b[0] += draft_s
            b[1] += uplink_s
            b[2] += queue_s
            b[3] += verify_s
            b[4] += downlink_s

    def on_request_done(self, req: Request, session: Any) -> None:
        self.reprefills += req.reprefills
        if req.done_s < self.warmup_s:
            return
        self.completed += 1
        if req.arrival_s < self.warmup_s:
            return
        ttft, tpot = req.ttft_s, req.tpot_s
        self.ttft_s.append(ttft)
        self.tpot_s.append(tpot)
        self.e2e_s.append(req.done_s - req.arrival_s)
        if ttft <= self.slo_ttft_s and tpot <= self.slo_tpot_s:
            self.good += 1

    def on_iteration(
        self, target: Target, start: float, duration: float, size: int, tokens: int, background: int
    ) -> None:
        end, warmup = start + duration, self.warmup_s  # conditionals: cheaper than min() and max() calls
        overlap = (self.end_s if self.end_s < end else end) - (warmup if warmup > start else start)
        if overlap > 0.0:
            self.busy_s += overlap
        if start >= self.warmup_s:
            self.iterations += 1
            self.batch_sum += size
            self.iteration_tokens += tokens
            self.background_jobs += background

    def on_failure(self, target: Target, t: float, busy_until: float | None = None) -> None:
        """A target failed at ``t``; its running iteration, planned to end at ``busy_until``, died."""
        self.failures += 1
        if busy_until is not None:  # on_iteration counted [start, busy_until]: take back [t, busy_until]
            overlap = min(busy_until, self.end_s) - max(t, self.warmup_s)
            if overlap > 0:
                self.busy_s -= overlap

    # -- summary -------------------------------------------------------------------------------

    def summary(self, n_targets: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        window = self.end_s - self.warmup_s
        rounds = sum(self.rounds)
        distributed = self.rounds[Mode.DISTRIBUTED]
        out: dict[str, Any] = {
            "throughput_tok_s": self.tokens / window,
            "foreground_tok_s": self.foreground_tokens / window,
            "session_tok_s": self.round_tokens / self.round_time_s if self.round_time_s else 0.0,
            "ttft_ms": _percentiles(self.ttft_s),
            "tpot_ms": _percentiles(self.tpot_s),
            "e2e_ms": _percentiles(self.e2e_s),
            "goodput_rps": self.good / window,
            "acceptance_rate": self.accepted / self.drafted if self.drafted else 0.0,
            "tokens_per_round": self.round_tokens / rounds if rounds else 0.0,
            "target_utilization": self.busy_s / (window * n_targets),
            "mean_batch_size": self.batch_sum / self.iterations if self.iterations else 0.0,
            "rounds": rounds,
            "rounds_by_mode": {m.name.lower(): self.rounds[m] for m in Mode},
            "completed_requests": self.completed,
            "sim_time_s": self.end_s,
            "measured_s": window,
            "round_breakdown_ms": {
                name: (1e3 * total / distributed if distributed else 0.0)
                for name, total in zip(BREAKDOWN, self.breakdown_s, strict=True)
            },
            "rejected_draft_tokens": self.drafted - self.accepted,
            "background_jobs": self.background_jobs,
            "target_failures": self.failures,
            "reprefills": self.reprefills,
        }
        if extra:
            out.update(extra)
        return out


class NoMetrics:
    """Where a simulation's report is never read (the Gymnasium env: its rewards and ``info`` come
    from the sessions and their rounds): every event is dropped, which saves ~8 % of an env step with
    32 simulated sessions. Nothing else changes — metrics never feed back into the simulation.
    ``enabled`` is False: the per-round and per-iteration reports are not even called (a call to a
    no-op method is ~1.5 % of an env step with background load)."""

    enabled = False

    def on_tokens(self, session: Any, t: float, n: int) -> None:
        pass

    def on_round(self, session: Any, *figures: Any) -> None:
        pass

    def on_request_done(self, req: Request, session: Any) -> None:
        pass

    def on_iteration(self, target: Target, *figures: Any) -> None:
        pass

    def on_failure(self, target: Target, t: float, busy_until: float | None = None) -> None:
        pass


class Tee:
    """Session events go to the system's metrics and, for the sessions ``select`` picks, to ``chosen``.

    Stands where the sessions report (``Simulation.metrics``) once :meth:`Simulation.meter` is called;
    the targets keep reporting iterations and failures to the system's metrics directly.
    """

    def __init__(self, system: Metrics, chosen: Metrics, select: Callable[[Any], bool]) -> None:
        self.system = system
        self.chosen = chosen
        self.select = select
        self.enabled = system.enabled

    def on_tokens(self, session: Any, t: float, n: int) -> None:
        self.system.on_tokens(session, t, n)
        if self.select(session):
            self.chosen.on_tokens(session, t, n)

    def on_round(self, session: Any, *figures: Any) -> None:
        self.system.on_round(session, *figures)
        if self.select(session):
            self.chosen.on_round(session, *figures)

    def on_request_done(self, req: Request, session: Any) -> None:
        self.system.on_request_done(req, session)
        if self.select(session):
            self.chosen.on_request_done(req, session)

    def summary(self, n_targets: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.system.summary(n_targets, extra)


def _percentiles(values_s: list[float]) -> dict[str, float | None]:
    if not values_s:
        return {"p50": None, "p95": None, "p99": None, "mean": None}
    ms = np.asarray(values_s) * 1e3
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(ms.mean())}
