"""Pick one controller of several on validation seeds, by the floor it will be judged on.

Two pipelines that differ only in their data's seed land several per cent apart on the same
scenarios, and a closed loop can lock itself into a poor decision on one scenario that the others
do not show (README, "What the closed loop shows"). A controller is judged against the best fixed
decision of each scenario, so the candidates are held exactly as ``evaluate`` holds a policy, with
``best-fixed`` on the same seeds, and the one with the highest

    score = exp(mean over scenarios of log min(H / H_best_fixed, 1))

wins: the geometric mean of the ratios to best-fixed, capped at 1, so a gain on one scenario does
not pay for a shortfall on another (``stats.capped_geomean``; the same score as ``train.select:
held``). Ties go to the first candidate. The seeds start at 1000 by default, disjoint from those an
evaluation uses (0..N-1), so the pick is not graded on the seeds it was made on.

>>> [(c.name, c.score <= 1.0) for c in pick(["fixed:2", "fixed:5"], ["ideal"], seeds=2,
...     overrides=["duration_s=20", "warmup_s=5"], backend=Backend("processes", 1)).candidates]
[('fixed:2', True), ('fixed:5', True)]
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dsd_gym.backend import Backend
from dsd_gym.errors import UserError
from dsd_gym.evaluation import make_plan, run_plan
from dsd_gym.evaluation.aggregate import Evaluation, title
from dsd_gym.evaluation.plan import BEST_FIXED
from dsd_gym.evaluation.report import write_atomic, write_text
from dsd_gym.evaluation.stats import capped_geomean

__all__ = ["SEED_BASE", "Candidate", "Pick", "pick", "pick_table", "write_winner"]

SEED_BASE = 1000  # validation seeds: disjoint from evaluate's 0..N-1
TORCHSCRIPT = "torchscript:"


@dataclasses.dataclass(frozen=True)
class Candidate:
    name: str  # as given: a controller file, or a policy spec
    policy: str  # the policy spec it ran as
    ratios: dict[str, float]  # scenario variant -> ratio of mean throughputs to its best fixed decision
    score: float

    @property
    def worst(self) -> tuple[str, float]:
        return min(self.ratios.items(), key=lambda item: item[1])


@dataclasses.dataclass(frozen=True)
class Pick:
    candidates: list[Candidate]
    winner: int
    evaluation: Evaluation

    def record(self) -> dict[str, Any]:
        plan = self.evaluation.plan
        return {
            "winner": self.candidates[self.winner].name,
            "mode": plan.mode,
            "seeds": list(plan.seeds),
            "candidates": [
                {"name": c.name, "policy": c.policy, "score": c.score, "ratio_to_best_fixed": c.ratios}
                for c in self.candidates
            ],
            "best_fixed": {
                title(row): row["best_fixed"] for row in self.evaluation.rows if row["policy"] == BEST_FIXED
            },
        }


def _policy(candidate: str) -> str:
    """A path to a file runs as ``torchscript:PATH``; anything else is a policy spec as given."""
    return f"{TORCHSCRIPT}{candidate}" if Path(candidate).is_file() else candidate


def pick(
    candidates: Sequence[str],
    scenarios: Sequence[str] = ("all",),
    *,
    seeds: int = 4,
    seed_base: int = SEED_BASE,
    mode: str = "fleet",
    overrides: Sequence[str] = (),
    backend: Backend | None = None,
    progress: bool = False,
) -> Pick:
    """Hold every candidate (an exported controller file, or a policy spec) and every fixed decision
    on ``scenarios`` × ``seeds`` from ``seed_base``, in ``mode``, and score each (module doc)."""
    if len(candidates) < 1:
        raise UserError("pick: no candidate; give at least one controller file")
    policies = [_policy(c) for c in candidates]
    if len(set(policies)) != len(policies):
        raise UserError(f"pick: a candidate is given twice: {', '.join(candidates)}")
    if BEST_FIXED in policies:
        raise UserError(f"pick: {BEST_FIXED} is the reference, not a candidate")
    plan = make_plan(
        scenarios, [*policies, BEST_FIXED], seeds, seed_base, mode, None, overrides, oracle=False
    )
    evaluation = run_plan(plan, backend, progress)
    if evaluation.failures:
        f = evaluation.failures[0]
        raise UserError(
            f"pick: {len(evaluation.failures)} simulations failed, first {title(f)}, {f['policy']}, "
            f"seed {f['seed']}: {f['error']}"
        )
    scored = []
    for name, policy in zip(candidates, policies, strict=True):
        ratios = {
            title(row): row["ratio_to_best_fixed"] for row in evaluation.rows if row["policy"] == policy
        }
        missing = [where for where, r in ratios.items() if r is None or r <= 0]
        if missing:
            raise UserError(f"pick: {name} has no ratio to best-fixed on {missing[0]}")
        scored.append(Candidate(name, policy, ratios, capped_geomean(list(ratios.values()))))
    winner = max(range(len(scored)), key=lambda i: (scored[i].score, -i))
    return Pick(scored, winner, evaluation)


def pick_table(result: Pick) -> str:
    """One line per candidate: score, worst scenario, the ratio on each; the winner marked."""
    scenarios = list(result.candidates[0].ratios)
    header = ["", "candidate", "score", "worst", *scenarios]
    lines = []
    for i, c in enumerate(result.candidates):
        worst, ratio = c.worst
        lines.append(
            ["*" if i == result.winner else "", c.name, f"{c.score:.3f}", f"{worst} {ratio:.3f}",
             *(f"{c.ratios[s]:.3f}" for s in scenarios)]
        )  # fmt: skip
    widths = [max(len(x) for x in col) for col in zip(header, *lines, strict=True)]
    return "\n".join(
        "  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)).rstrip() for line in [header, *lines]
    )


def write_winner(result: Pick, out: str | Path, record: str | Path | None = None) -> Path:
    """Copy the winning controller file to ``out`` atomically; with ``record``, the pick as JSON."""
    winner = result.candidates[result.winner]
    if not winner.policy.startswith(TORCHSCRIPT):
        raise UserError(f"pick --out: the winner {winner.name!r} is a policy spec, not a controller file")
    source = winner.policy.removeprefix(TORCHSCRIPT)
    write_atomic(out, lambda temp: shutil.copyfile(source, temp))
    if record is not None:
        write_text(record, json.dumps(result.record(), indent=2) + "\n")
    return Path(out)
