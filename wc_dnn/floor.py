"""The fixed-decision floor: a check on the teacher and the student, variant by variant.

The oracle that labels the dataset is myopic: it prices one round from the state it sees. On some
variants a decision *held* for the whole run beats it (on ``regime-shift`` a wide fused window is
worth what the oracle projects once, but held it lets the other tenants' jobs pile into the ego's next
batch; on ``lan-edge`` a fleet of oracles mixes modes where every session drafting γ = 1 is better),
and on some the student cannot follow it (the oracle's γ* flips between 3 and 8 where the telemetry
cannot tell which). Imitation cannot do better than its teacher, so the pipeline checks both against
the fixed decisions, which are the floor any controller should clear (``best-fixed`` of ``dsd-gym
evaluate``):

1. ``collect`` with ``collect.floor_seeds: n > 0`` measures, on every scenario variant of the dataset,
   every fixed decision the variant allows held by the policy's sessions — the ego in ego mode, every
   foreground session in fleet mode, exactly as ``evaluate`` runs a policy — on n seeds of the
   variant's own (not the dataset's), and writes ``floor.json`` next to the shards.
2. ``collect --learner`` (a DAgger round) measures the learner the same way, on the same seeds.
3. ``train wc-dnn`` with ``train.floor: r`` relabels every row of each variant on which a learner
   measured below r × the variant's best fixed decision (ratio of mean throughputs over the paired
   seeds): the label becomes that decision, and the per-candidate values its held shortfall

       value_c = −(1 − H_c / H_best) · T_best                                             (tokens)

   (H: mean held throughput; T_best = 1 + acceptance rate · γ_best, the tokens a round of the best
   decision commits), so the regret term ranks the candidates as holding them does. A variant stays
   relabelled once any learner failed it (the next learner, trained on the new labels, would pass
   it and flip it back otherwise).

The teacher becomes the better of the oracle and the best fixed decision per variant, measured closed
loop, which is what the floor demands; the student still reads telemetry only.

4. ``train wc-dnn`` with ``train.select: held`` chooses the checkpoint by the floor itself, not by a
   loss: after every epoch the model is exported and held on every variant of the sweep, on the
   sweep's seeds (:class:`HeldSelection`), and the best epoch is the one with the highest

       score = exp(mean over variants of log min(H_model / H_best, 1))

   the geometric mean of the ratios to each variant's best fixed decision, capped at 1 (a gain on
   one variant does not pay for a shortfall on another). A loss on held-out labels does not see what
   decides a closed loop: the telemetry echoes the controller's own last decisions (``last_gamma``,
   ``last_mode``; a fused round measures no network, only each request's prefill does), so a model
   that fits its labels better can lock itself into a decision the data never shows it leaving. On
   the demo's ego data the held-out loss is lowest after one epoch and the closed-loop score swings
   between 0.957 and 0.987 from one epoch to the next.

>>> sorted(FLOOR_KEYS)
['config_hash', 'format', 'format_version', 'groups', 'learner', 'mode', 'seeds']
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dsd_gym.backend import Backend, run
from dsd_gym.config.schema import Scenario
from dsd_gym.controllers import fixed_decisions
from dsd_gym.errors import UserError
from dsd_gym.evaluation.execute import run_task
from dsd_gym.evaluation.plan import Task
from dsd_gym.evaluation.stats import mean_or_none
from dsd_gym.sim.controller import Decision
from wc_dnn.dataset import check_format, decision_records, decisions_from_records, read_json

__all__ = [
    "FLOOR", "FLOOR_KEYS", "HeldSelection", "Relabelled",
    "measure_floor", "read_floor", "relabel",
]  # fmt: skip

FLOOR = "floor.json"
FORMAT = "dsd-gym-wc-dnn-floor"
FORMAT_VERSION = 1
FLOOR_KEYS = ("format", "format_version", "mode", "config_hash", "learner", "seeds", "groups")
LEARNER = "learner"


def _held(scenario: Scenario, policy: str, seed: int, mode: str, learner: bool) -> tuple[float, float]:
    """One simulation of ``policy`` held on ``scenario``: (throughput tok/s, tokens per round)."""
    if learner:
        import torch  # lazy: only a learner needs torch

        torch.set_num_threads(1)  # the workers are the parallelism
    result = run_task(scenario, Task(variant=0, policy=policy, seed=seed, mode=mode))
    gamma, acceptance = result["mean_gamma"] or 0.0, result["acceptance_rate"] or 0.0
    return float(result["throughput_tok_s"]), 1.0 + acceptance * gamma


def measure_floor(
    groups: dict[str, tuple[Scenario, list[int]]], mode: str, learner: str | None, backend: Backend,
    progress: bool,
) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, str]]:  # fmt: skip
    """Per group: every fixed decision (or, with ``learner``, the learner alone) held on the group's
    seeds: {group: {policy: {"throughput_tok_s": [...], "tokens_per_round": [...], "decision": ...}}},
    and the failed simulations ("floor <group> <policy> seed <k>" -> error)."""
    jobs = []
    for group, (scenario, seeds) in groups.items():
        policies = [learner] if learner is not None else list(fixed_decisions(scenario))
        for policy in policies:
            for s, seed in enumerate(seeds):
                name = LEARNER if learner is not None else policy
                jobs.append(((group, name, s), (scenario, policy, seed, mode, learner is not None)))
    out: dict[str, dict[str, dict[str, Any]]] = {}
    slots: dict[tuple[str, str], list[tuple[float, float] | None]] = {}
    for (group, name, _s), _ in jobs:
        slots.setdefault((group, name), [None] * len(groups[group][1]))
    failed: dict[str, str] = {}
    bar = tqdm(total=len(jobs), desc="floor", unit="sim", file=sys.stderr, disable=not progress, leave=False)
    with bar:
        for outcome in run(_held, jobs, backend):
            group, name, s = outcome.key
            if outcome.ok:
                slots[(group, name)][s] = outcome.value
            else:
                failed[f"floor {group} {name} seed {s}"] = outcome.error
            bar.update()
    for (group, name), values in slots.items():
        if any(v is None for v in values):
            continue
        entry: dict[str, Any] = {
            "throughput_tok_s": [v[0] for v in values],  # type: ignore[index]
            "tokens_per_round": [v[1] for v in values],  # type: ignore[index]
        }
        if name != LEARNER:
            entry["decision"] = decision_records([fixed_decisions(groups[group][0])[name]])[0]
        out.setdefault(group, {})[name] = entry
    return out, failed


def read_floor(directory: Path) -> dict[str, Any] | None:
    """A dataset folder's ``floor.json``, or None without one; an unreadable one is a one-line error."""
    path = directory / FLOOR
    if not path.exists():
        return None
    where = f"dataset {directory}"
    return check_format(read_json(path, where), f"{where}: {FLOOR}", FORMAT, FORMAT_VERSION, FLOOR_KEYS)


def floor_document(
    mode: str, config_hash: str, learner: dict[str, str] | None, seeds: dict[str, list[int]],
    groups: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "mode": mode, "config_hash": config_hash,
        "learner": learner, "seeds": seeds, "groups": groups,
    }  # fmt: skip


@dataclass(frozen=True)
class Relabelled:
    """One variant's verdict: the learner's ratio to its best fixed decision (worst over the learners
    measured), that decision, and whether its rows were relabelled."""

    group: str
    best: str
    ratio: float
    relabelled: bool

    def record(self) -> dict[str, Any]:
        return {"group": self.group, "best": self.best, "ratio": self.ratio, "relabelled": self.relabelled}


def _best_fixed(fixed: dict[str, dict[str, Any]]) -> tuple[dict[str, float], str]:
    """A variant's sweep: the mean held throughput of each fixed decision, and the best one's name
    (ties: the first by name)."""
    means = {spec: mean_or_none(r["throughput_tok_s"]) for spec, r in fixed.items()}
    return means, max(sorted(means), key=lambda spec: means[spec])


class HeldSelection:
    """Score controllers by the floor: each held on every variant of a fixed sweep (``floor.json``
    without a learner), on the sweep's seeds and in its evaluation mode, exactly as ``collect
    --learner`` measures a learner; ``scenarios``: each variant's scenario (``collect.make_plan``)."""

    def __init__(self, sweep: dict[str, Any], scenarios: dict[str, Scenario], backend: Backend) -> None:
        self.mode, self.backend = sweep["mode"], backend
        self.best: dict[str, float] = {}
        for group, fixed in sorted(sweep["groups"].items()):
            means, best = _best_fixed(fixed) if fixed else ({}, "")
            if means and means[best] > 0:  # a variant where nothing commits a token says nothing
                self.best[group] = means[best]
        self.groups = {g: (scenarios[g], list(sweep["seeds"][g])) for g in self.best}

    def measure(self, controller: str | Path) -> dict[str, float]:
        """The ratio of ``controller`` (an exported file) held to the best fixed decision, per variant;
        a failed simulation is a one-line error."""
        policy = f"torchscript:{controller}"
        measured, failed = measure_floor(self.groups, self.mode, policy, self.backend, False)
        if failed:
            where, error = next(iter(sorted(failed.items())))
            raise UserError(f"train.select held: {where}: {error}")
        return {g: mean_or_none(measured[g][LEARNER]["throughput_tok_s"]) / self.best[g] for g in self.groups}


def relabel(
    floors: list[dict[str, Any]], candidates: list[Decision], groups: list[str], group: np.ndarray,
    label: np.ndarray, values: np.ndarray, ratio: float,
) -> tuple[np.ndarray, np.ndarray, list[Relabelled]]:  # fmt: skip
    """New (label, values) arrays with the variants below the floor relabelled (see the module doc),
    and the verdict of every variant that has both a fixed sweep and a learner measured. ``floors``:
    the ``floor.json`` of each dataset part; ``groups``/``group``: the dataset's variant names and
    each row's index into them."""
    sweeps = [f for f in floors if f["learner"] is None]
    learners = [f for f in floors if f["learner"] is not None]
    if not sweeps:
        return label, values, []
    sweep = sweeps[0]["groups"]
    index = {(d.gamma, int(d.mode)): j for j, d in enumerate(candidates)}
    label, values = label.copy(), values.copy()
    verdicts = []
    for name, fixed in sorted(sweep.items()):
        measured = [f["groups"][name][LEARNER] for f in learners if LEARNER in f["groups"].get(name, {})]
        if not measured or not fixed:
            continue
        means, best = _best_fixed(fixed)
        if means[best] <= 0:
            continue
        worst = min(mean_or_none(r["throughput_tok_s"]) for r in measured) / means[best]
        below = worst < ratio
        verdicts.append(Relabelled(name, best, worst, below))
        if not below or name not in groups:
            continue
        tokens = mean_or_none(fixed[best]["tokens_per_round"])
        shortfall = {spec: -(1.0 - mean / means[best]) * tokens for spec, mean in means.items()}
        held = np.full(len(candidates), min(shortfall.values()))  # a candidate not swept: the worst
        for spec, value in shortfall.items():
            decision = decisions_from_records([fixed[spec]["decision"]])[0]
            held[index[(decision.gamma, int(decision.mode))]] = value
        rows = group == groups.index(name)
        label[rows] = int(np.argmax(held))
        values[rows] = held.astype(values.dtype)
    return label, values, verdicts
