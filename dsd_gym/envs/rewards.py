"""Per-step rewards. A step is one verification round of the deciding session (DESIGN §5).

Let ``n`` be the output tokens committed by the agent's session(s) during the step, ``Δt`` the
simulated seconds the step took, and the step's rounds ``r`` with window ``γ_r``, accepted ``A_r``,
committed ``n_r`` and duration ``T_r``:

- ``throughput`` (default): ``n``. Over the fixed simulated-time horizon the return is the tokens
  committed in it, i.e. throughput × horizon — the metric every table reports.
- ``time_penalty``: ``n − ρ·Δt`` with ``ρ = rate_tok_s`` (default 30 tok/s): a per-round form of the
  same objective (maximising tokens minus ρ × time is maximising the rate when ρ is the best rate).
- ``rate``: ``n − ρ̂·Δt`` with ``ρ̂`` the agent's own rate so far in the episode (tokens committed by
  its session(s) before the step / simulated seconds before it; 0 at the first step). The same
  objective with Dinkelbach's parameter tracking the policy instead of a fixed guess: where the policy
  beats its running rate the reward is positive, so each step's sign says whether the round was worth
  its time, across scenarios whose rates differ by orders of magnitude (no ``rate_tok_s`` to tune).
- ``round_rate``: ``Σ_r (n_r − ρ̄·(T_r + X_r))``, the myopic oracle's objective on realised rounds:
  ``X_r`` is the time the round's cloud job cost the jobs of the other driven sessions on the target
  (:mod:`dsd_gym.envs.externality`; 0 in the ego env; ``flight_weight``, default 1, weighs the
  teammates whose round is in flight but not yet at the target: a saturated target's every later
  iteration shifts by what the job adds, so they wait for it too) and ``ρ̄ = Σ n / Σ (T + X)`` over the driven
  sessions' rounds completed in the episode before the step (0 before the first). The same
  Dinkelbach form as ``rate``, but every term belongs to one round, so it can be credited to the
  decision that started the round (:func:`round_terms`; the env's ``credit``). That is what the fleet
  variant needs: there a step lasts until *any* session decides, so the step's ``n`` and ``Δt`` mix
  every session's rounds and ``rate`` credits a decision with rounds other decisions started
  (``agents.credit`` recomputes the advantages along each session's own rounds); and a session's
  own round, alone, rewards windows and fused passes that slow everyone else (``X``). Time between
  rounds (think time, the next request's prefill) is charged to no round.
- ``round_self``: ``Σ_r (n_r − ρ̄·(T_r + X_r + w·Δ_r))``, ``round_rate`` with each round also charged
  its self-delay: what its job costs the driven session's *own* later rounds. On a saturated target
  (``busy-cloud``) an iteration batches the jobs that arrived while the previous one ran, so an
  iteration made longer by ``Δ`` makes the next ones longer too, and the session's later rounds wait
  for them (a fused session's rounds follow the target's iterations back to back). ``Δ_r`` is the
  time the round's job added to its iteration (:func:`dsd_gym.envs.externality.batch_self_delay`:
  its tokens' share of the forward pass, and the fused-draft passes that ran for it and would not
  have without it): a wider fused window adds a draft pass per token, which the round's own time
  counts once and its later rounds pay again. ``w = self_weight`` (default 1.3) is what the later
  rounds pay per second of ``Δ``, measured on ``busy-cloud`` ego: over one-round deviations from
  fused:4 (to fused:3/5/6/8, distributed 4/6; 300 episodes of 120 s) the change in the next 8
  rounds' ``round_rate`` terms regressed on ``ρ̄`` × the change in ``Δ``. (A geometric cascade,
  each iteration longer by ``κ`` × the previous one's extra, gives ``κ/(1 − κ)``: 2.2 with
  ``κ = 0.69``, the slope of an iteration's length on the previous one's there; it overstates.)
  ``ρ̄`` is ``round_rate``'s (``S = w·Δ`` is not in it: the later rounds' times already hold it);
  ``flight_weight`` as in ``round_rate``. Since the term already prices the later rounds, it is
  meant for credit with no horizon (γ = 0 per round, ``agents.credit``).
- ``slo_goodput``: ``Σ_r n_r · 1[T_r / n_r ≤ slo.tpot_ms]``: only tokens delivered within the TPOT SLO.
- ``cloud_cost``: ``n − β·Σ_r v_r`` with ``β = beta`` (default 0.25) and ``v_r`` the positions the
  cloud computes for the round: ``γ_r + 1`` verified (plus ``γ_r`` draft passes in fused mode, 1 in
  autoregressive): what a tenant's window costs the others sharing the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dsd_gym.errors import UserError
from dsd_gym.sim.controller import Mode
from dsd_gym.sim.records import RoundRecord


@dataclass(slots=True)  # one per step: slots make it cheaper to build
class StepOutcome:
    tokens: int
    elapsed_s: float
    rounds: list[RoundRecord] = field(default_factory=list)
    rate_tok_s: float = 0.0  # the agent's tokens per simulated second in the episode before the step
    busy_rate_tok_s: float = 0.0  # round_rate's ρ̄: Σ n / Σ (T + X) over the rounds before the step
    extra_s: Sequence[float] = ()  # X of each of ``rounds`` (round_rate; empty: none)
    self_s: Sequence[float] = ()  # S = w·Δ of each of ``rounds`` (round_self; empty: none)


def _throughput(o: StepOutcome, p: dict[str, Any]) -> float:
    return float(o.tokens)


def _time_penalty(o: StepOutcome, p: dict[str, Any]) -> float:
    return o.tokens - p["rate_tok_s"] * o.elapsed_s


def _rate(o: StepOutcome, p: dict[str, Any]) -> float:
    return o.tokens - o.rate_tok_s * o.elapsed_s


def round_terms(o: StepOutcome) -> list[float]:
    """``round_rate``'s term ``n_r − ρ̄·(T_r + X_r)`` of each round of the step, in ``o.rounds`` order;
    with ``o.self_s`` (``round_self``) ``n_r − ρ̄·(T_r + X_r + S_r)``."""
    rate, none = o.busy_rate_tok_s, [0.0] * len(o.rounds)
    rounds = zip(o.rounds, o.extra_s or none, o.self_s or none, strict=True)
    return [r.committed - rate * (r.end_s - r.start_s + x + s) for r, x, s in rounds]


def _round_rate(o: StepOutcome, p: dict[str, Any]) -> float:
    return float(sum(round_terms(o)))


def _slo_goodput(o: StepOutcome, p: dict[str, Any]) -> float:
    limit = p["tpot_s"]
    return float(sum(r.committed for r in o.rounds if (r.end_s - r.start_s) <= limit * r.committed))


def _cloud_cost(o: StepOutcome, p: dict[str, Any]) -> float:
    positions = 0
    for r in o.rounds:
        if r.mode == Mode.AUTOREGRESSIVE:
            positions += 1
        else:
            positions += r.gamma + 1 + (r.gamma if r.mode == Mode.FUSED else 0)
    return o.tokens - p["beta"] * positions


REWARDS: dict[str, Callable[[StepOutcome, dict[str, Any]], float]] = {
    "throughput": _throughput,
    "time_penalty": _time_penalty,
    "rate": _rate,
    "round_rate": _round_rate,
    "round_self": _round_rate,  # the same sum: the env books S (round_terms)
    "slo_goodput": _slo_goodput,
    "cloud_cost": _cloud_cost,
}
DEFAULTS: dict[str, dict[str, float]] = {
    "time_penalty": {"rate_tok_s": 30.0},
    "round_rate": {"flight_weight": 1.0},
    "round_self": {"flight_weight": 1.0, "self_weight": 1.3},
    "cloud_cost": {"beta": 0.25},
}


CREDITED = frozenset(("round_rate", "round_self"))  # the rewards with per-round terms and the env's credit


def reward_function(
    name: str, params: dict[str, Any] | None, tpot_slo_s: float
) -> tuple[Callable[[StepOutcome, dict[str, Any]], float], dict[str, Any]]:
    """The reward ``name`` and its parameters (defaults overridden by ``params``), validated."""
    if name not in REWARDS:
        raise UserError(f"reward {name!r} is unknown; allowed: {', '.join(REWARDS)}")
    merged: dict[str, Any] = dict(DEFAULTS.get(name, {}))
    if params is not None and not isinstance(params, Mapping):
        raise UserError(
            f"reward_kwargs: value {params!r} is invalid; allowed: a mapping of parameter to number"
        )
    for key, value in (params or {}).items():
        if key not in merged:
            allowed = ", ".join(merged) or "none"
            raise UserError(
                f"reward_kwargs: {key!r} is not a parameter of reward {name!r}; allowed: {allowed}"
            )
        # NaN would slip past ``value < 0`` and turn every reward into NaN; infinity likewise.
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < math.inf:
            raise UserError(f"reward_kwargs.{key}: value {value!r} is invalid; allowed: a finite number >= 0")
        merged[key] = float(value)
    merged["tpot_s"] = tpot_slo_s
    return REWARDS[name], merged
