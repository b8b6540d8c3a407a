"""Run a plan's simulations on a backend (:mod:`dsd_gym.backend`), with a progress bar on stderr.

Each task is one deterministic simulation whose result depends only on (variant, policy, seed,
mode): results are collected by task, not by completion order, so they are the same whatever the
backend and the number of workers. A task that raises is a failure (kept with its message); the
others go on.

What one simulation reports is measured on the sessions that run the policy — in ``ego`` mode the
ego session alone, in ``fleet`` mode every foreground session — by the system's own metric
definitions (``Simulation.meter``): throughput is the tokens those sessions committed
with an edge-visible time in [warmup_s, duration_s], divided by that window.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from dsd_gym.backend import Backend, run
from dsd_gym.config.schema import Scenario
from dsd_gym.evaluation.plan import Task
from dsd_gym.runner import build, ego_session
from dsd_gym.sim import RoundRecord, Session

Result = dict[str, Any]


def run_task(scenario: Scenario, task: Task) -> Result:
    """One simulation's figures; with ``task.trace``, the (start time, γ, mode) of every round of the
    measured session (the ego, or in fleet mode the first foreground session)."""
    trace: list[tuple[float, int, int]] = []
    traced: list[int] = []

    def hook(record: RoundRecord, session: Session) -> None:
        if not traced and not session.background:  # open-loop fleets: the first session with a round
            traced.append(session.sid)
        if traced and record.session == traced[0]:
            trace.append((record.start_s, record.gamma, record.mode))

    sim = build(scenario, task.policy, task.seed, round_hook=hook if task.trace else None, mode=task.mode)
    if task.mode == "ego":
        ego = ego_session(sim)
        traced.append(ego.sid)
        meter = sim.meter(lambda session: session is ego)
    else:
        first = next((s for s in sim.sessions if not s.background), None)
        if first is not None:
            traced.append(first.sid)
        meter = sim.meter(lambda session: not session.background)
    system = sim.run()
    own = meter.summary(len(sim.targets))
    rounds = sum(meter.rounds)
    return {
        "throughput_tok_s": own["throughput_tok_s"],
        "tpot_ms_p50": own["tpot_ms"]["p50"],
        "tpot_ms_p99": own["tpot_ms"]["p99"],
        "ttft_ms_p50": own["ttft_ms"]["p50"],
        "goodput_rps": own["goodput_rps"],
        "acceptance_rate": own["acceptance_rate"],
        "mean_gamma": meter.drafted / rounds if rounds else None,
        "session_tok_s": own["session_tok_s"],
        "completed_requests": own["completed_requests"],
        "system_tok_s": system["throughput_tok_s"],
        "target_utilization": system["target_utilization"],
        "gamma_trace": trace if task.trace else None,
    }


def run_tasks(
    scenarios: Sequence[Scenario],
    tasks: Sequence[Task],
    backend: Backend | None = None,
    progress: bool = False,
) -> tuple[dict[int, Result], dict[int, str]]:
    """Results and failures by task index, on ``backend`` (default: one worker process per CPU)."""
    results: dict[int, Result] = {}
    failures: dict[int, str] = {}
    bar = tqdm(
        total=len(tasks), desc="evaluate", unit="sim", file=sys.stderr, disable=not progress, leave=False
    )
    with bar:
        work = [(i, (scenarios[t.variant], t)) for i, t in enumerate(tasks)]
        for outcome in run(run_task, work, backend):
            if outcome.ok:
                results[outcome.key] = outcome.value
            else:
                failures[outcome.key] = outcome.error
            bar.update()
    return results, failures
