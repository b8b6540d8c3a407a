"""What a round's cloud job costs its teammates: the realised ``X`` of the ``round_rate`` reward.

The myopic oracle prices a decision's round time plus ``X_d``, the time its job costs the jobs of its
teammates (the sessions whose throughput is the objective) on a shared target, in expectation over a
projection of the batcher (:meth:`dsd_gym.controllers.oracles.RoundModel.evaluate`). Here the same
quantity is measured on each iteration that actually ran, for every job of a driven session in it:

    X_j = n·v_j + (n + 1)·s_j − o_j

with ``n = n_b + w·n_f``: ``n_b`` the teammates' jobs in the batch or left waiting in the queue when it
formed, as the oracle counts them, and ``n_f`` the other teammates with a round in flight (drafting,
on the link) weighed by ``w`` (``flight_weight``): on a saturated target every later iteration
starts later by what the job adds, so their jobs, when they arrive, wait for it too. ``v_j`` is what
the job's tokens add to the forward pass (the iteration's cost with and without them, same latency
model), ``s_j`` its share of the fused-draft passes (pass k split evenly among the fused jobs with
γ > k) and ``o_j`` the passes it waits for itself (already in its own round time). Stochastic
background jobs and the other tenants count as nobody's time, as in the oracle. In the ego env the
session has no teammates, so ``X`` is 0.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from dsd_gym.sim.cloud import JobKind, draft_passes, fused_drafts

__all__ = ["batch_externality", "batch_self_delay"]

_ROUNDS = (JobKind.VERIFY, JobKind.FUSED, JobKind.DECODE)


def batch_externality(
    target: Any,
    batch: list[tuple[Any, int]],
    size: int,
    n_tokens: int,
    context_sum: float,
    attention: float,
    team: Container[Any],
    in_flight: int = 0,
    flight_weight: float = 0.0,
) -> list[tuple[Any, float]]:
    """(session, X) of every round job of a ``team`` session in the iteration ``Target._form`` built;
    ``in_flight``: the team's sessions with a round in flight (the job's own included)."""
    mine = _round_jobs(batch, team)
    if not mine:
        return []
    teammates = sum(1 for job, _ in batch if job.owner in team)
    waiting = sum(1 for _, _, job in target.queue if job.owner in team)
    near = teammates - 1 + waiting
    others = near + flight_weight * max(0, in_flight - 1 - near)
    passes = draft_passes(target.draft_cost, fused_drafts(batch))
    full_s = target.cost.iteration_s(size, n_tokens, context_sum, attention)
    out = []
    for job, take in mine:
        if others == 0:
            out.append((job.owner, 0.0))
            continue
        without_s = _without_s(target, size, n_tokens, context_sum, attention, job, take)
        extra = others * (full_s - without_s)
        if job.kind == JobKind.FUSED:
            own = passes[: job.gamma]
            extra += (others + 1) * sum(s / live for s, live in own) - sum(s for s, _ in own)
        out.append((job.owner, max(0.0, extra)))
    return out


def _round_jobs(batch: list[tuple[Any, int]], team: Container[Any]) -> list[tuple[Any, int]]:
    """The (job, tokens taken) of ``batch`` that are rounds of a ``team`` session."""
    return [(job, take) for job, take in batch if job.owner in team and job.kind in _ROUNDS]


def _without_s(
    target: Any, size: int, n_tokens: int, context_sum: float, attention: float, job: Any, take: int
) -> float:
    """The iteration's forward pass without ``job`` (its ``take`` tokens and its sequence)."""
    if size <= 1:
        return 0.0
    return target.cost.iteration_s(
        size - 1, n_tokens - take, context_sum - job.context,
        attention - take * (job.context + (take + 1) / 2),
    )  # fmt: skip


def batch_self_delay(
    target: Any,
    batch: list[tuple[Any, int]],
    size: int,
    n_tokens: int,
    context_sum: float,
    attention: float,
    team: Container[Any],
) -> list[tuple[Any, float]]:
    """(session, Δ) of every round job of a ``team`` session in the iteration ``Target._form`` built:
    Δ is the time the job adds to the iteration, its tokens' share of the forward pass plus what the
    fused-draft passes take with it and not without it (the ``round_self`` reward, ``rewards``).

    On a saturated target an iteration batches what arrived during the previous one, so a longer
    iteration makes the next ones longer too; Δ is where that cascade starts."""
    mine = _round_jobs(batch, team)
    if not mine:
        return []
    full_s = target.cost.iteration_s(size, n_tokens, context_sum, attention)
    drafts = fused_drafts(batch)
    passes_s = sum(s for s, _ in draft_passes(target.draft_cost, drafts)) if drafts else 0.0
    out = []
    for job, take in mine:
        delta = full_s - _without_s(target, size, n_tokens, context_sum, attention, job, take)
        if job.kind == JobKind.FUSED:
            rest = list(drafts)
            rest.remove((job.gamma, job.context))
            delta += passes_s - sum(s for s, _ in draft_passes(target.draft_cost, rest))
        out.append((job.owner, max(0.0, delta)))
    return out
