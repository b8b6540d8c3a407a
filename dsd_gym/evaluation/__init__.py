"""Evaluation: policies × scenario variants × seeds on common random numbers (DESIGN §8).

Every (variant, policy, seed) is one simulation. Policies evaluated together run on the same seeds,
and the simulator's random streams are keyed by what they drive (``dsd_gym.sim.streams``), so they
see the same acceptance paths, network delays, arrivals and faults: the differences between rows are
the policies', not the dice's.

Modes: ``fleet`` — every foreground session runs the policy, and the figures are those of the
foreground sessions (the system's, when no device group has a policy of its own); ``ego`` — the first
foreground session runs the policy among others running the scenario's ``control.policy``, and the
figures are the ego session's own: the tokens it committed with an edge-visible time in
[warmup_s, duration_s] / (duration_s − warmup_s), and the TPOT of its requests that arrived in that
window and completed. Definitions of the rows: ``dsd_gym.evaluation.aggregate``.

>>> evaluation = evaluate(["ideal"], ["fixed:2", "best-fixed"], seeds=2,
...                       overrides=["duration_s=20", "warmup_s=5"], oracle=False, jobs=1)
>>> [(row["policy"], row["best_fixed"], row["seeds"]) for row in evaluation.rows]
[('fixed:2', None, [0, 1]), ('best-fixed', 'fixed:5', [0, 1])]
"""

from __future__ import annotations

from collections.abc import Sequence

from dsd_gym.backend import Backend
from dsd_gym.evaluation.aggregate import Evaluation, aggregate
from dsd_gym.evaluation.execute import run_tasks
from dsd_gym.evaluation.plan import BEST_FIXED, Plan, Sweep, make_plan, parse_sweep

__all__ = ["BEST_FIXED", "Evaluation", "Plan", "Sweep", "evaluate", "make_plan", "parse_sweep", "run_plan"]


def run_plan(plan: Plan, backend: Backend | None = None, progress: bool = False) -> Evaluation:
    """Run every simulation of ``plan`` on ``backend`` (default: a process per CPU) and aggregate."""
    results, failures = run_tasks([v.scenario for v in plan.variants], plan.tasks, backend, progress)
    return aggregate(plan, results, failures)


def evaluate(
    scenarios: Sequence[str],
    policies: Sequence[str],
    seeds: int = 5,
    *,
    seed_base: int = 0,
    mode: str = "fleet",
    sweep: str | Sweep | None = None,
    overrides: Sequence[str] = (),
    oracle: bool = True,
    trace: bool = False,
    jobs: int | None = None,
    backend: str = "processes",
    address: str | None = None,
    progress: bool = False,
) -> Evaluation:
    """Check the inputs (``UserError`` before anything runs), run, aggregate. See :func:`make_plan`;
    ``jobs``, ``backend``, ``address``: where the simulations run (:class:`dsd_gym.backend.Backend`)."""
    runner = Backend(backend, jobs, address)
    plan = make_plan(scenarios, policies, seeds, seed_base, mode, sweep, overrides, oracle, trace)
    return run_plan(plan, runner, progress)
