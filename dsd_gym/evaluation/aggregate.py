"""From per-seed results to one row per (scenario variant, requested policy).

- ``throughput_tok_s``: mean over seeds and the half-width of its 95 % Student-t interval
  (``dsd_gym.evaluation.stats``); ``throughput_tok_s_per_seed``: each seed's, in the order of
  ``seeds`` (for variance and paired analyses of one's own); ``tpot_ms_p50``/``p99``,
  ``ttft_ms_p50``, ``goodput_rps``, ``acceptance_rate``, ``mean_gamma``: means over seeds of the
  per-seed figures (a seed without a completed request has no TPOT and is left out of that mean).
- ``ratio_to_fixed4``, ``ratio_to_best_fixed``, ``ratio_to_oracle``: the ratio of mean throughputs,
  policy over reference, on the seeds both have (all of them unless a simulation failed). A ratio of
  means, not a mean of ratios: it is what the table's own columns give, and it is exactly 1 for the
  reference itself. None when the reference was not simulated (the variant does not allow
  ``fixed:4``; ``best-fixed`` was not requested; the ``oracle`` policy is not registered, or was left
  out). Each has a ``_ci95``: the half-width of the paired delta-method interval of
  ``dsd_gym.evaluation.stats.ratio_ci`` — the policy and its reference ran on the same seeds, so the
  interval holds the policies' difference, not the seeds' (a single session's throughput in ego mode
  varies by 10–15 % between seeds; the ratio of two policies on them far less).
- ``best-fixed``: the fixed decision (``fixed:G``, ``fused:G`` or ``autoregressive``, whichever the
  variant allows) with the highest mean throughput on the seeds where every one of them ran, ties to
  the first in that order; its row is that policy's row on those seeds, and ``best_fixed`` names it.
  In hindsight and on the same seeds, so it is at least every fixed decision by construction — an
  optimistic baseline, which is the point of it: the maximum of ~17 noisy means is biased upwards
  (the winner's curse), by more the noisier the seeds, so a policy as good as the best window reads
  below 1 × best-fixed on few seeds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from dsd_gym.controllers import fixed_policies
from dsd_gym.evaluation.execute import Result
from dsd_gym.evaluation.plan import BEST_FIXED, ORACLE, REFERENCE, Plan, Variant
from dsd_gym.evaluation.stats import mean_ci, mean_or_none, ratio_ci

MEANS = ("tpot_ms_p50", "tpot_ms_p99", "ttft_ms_p50", "goodput_rps", "acceptance_rate", "mean_gamma")


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What ``dsd-gym evaluate`` reports: rows, failed simulations, and γ over time (when recorded)."""

    plan: Plan
    rows: list[dict[str, Any]]
    failures: list[dict[str, Any]]
    traces: dict[str, list[tuple[float, int, int]]]  # row label -> (time, γ, mode), first variant and seed


def label(row: dict[str, Any]) -> str:
    """A row's policy as shown: ``best-fixed`` names the window that won."""
    return f"{row['policy']} ({row['best_fixed']})" if row["best_fixed"] else row["policy"]


def title(row: dict[str, Any]) -> str:
    """The scenario variant a row (or a failure record) is of, as :attr:`Variant.title` shows it."""
    return f"{row['scenario']} {row['variant']}" if row["variant"] else row["scenario"]


def _mean(runs: dict[int, Result], seeds: Sequence[int], key: str = "throughput_tok_s") -> float:
    return math.fsum(runs[s][key] for s in seeds) / len(seeds)


def _ratio(
    by_spec: dict[str, dict[int, Result]], spec: str | None, seeds: Sequence[int], reference: str | None
) -> tuple[float | None, float | None]:
    """(ratio of mean throughputs ``spec`` / ``reference`` on their common seeds, its 95 % half-width)."""
    if spec is None or reference is None or reference not in by_spec:
        return None, None
    common = [s for s in seeds if s in by_spec[reference]]
    if not common:
        return None, None
    return ratio_ci(
        [by_spec[spec][s]["throughput_tok_s"] for s in common],
        [by_spec[reference][s]["throughput_tok_s"] for s in common],
    )


def _best_fixed(variant: Variant, by_spec: dict[str, dict[int, Result]]) -> tuple[str | None, list[int]]:
    fixed = fixed_policies(variant.scenario)
    common = sorted(set.intersection(*(set(by_spec[f]) for f in fixed)))
    if not common:
        return None, []
    return max(fixed, key=lambda f: _mean(by_spec[f], common)), common


def _row(
    plan: Plan, variant: Variant, policy: str, by_spec: dict[str, dict[int, Result]],
    best_fixed: tuple[str | None, list[int]],
) -> dict[str, Any]:  # fmt: skip
    """``policy``'s row; ``best_fixed``: the variant's :func:`_best_fixed` ((None, []) when not asked for)."""
    winner = None
    best, best_seeds = best_fixed
    if policy == BEST_FIXED:
        spec = winner = best
        seeds = best_seeds
    else:
        spec, seeds = policy, sorted(by_spec[policy])
    runs = [by_spec[spec][s] for s in seeds] if spec else []
    mean, ci95 = mean_ci([r["throughput_tok_s"] for r in runs])
    row: dict[str, Any] = {
        "scenario": variant.name,
        "variant": variant.label,
        "sweep_value": variant.sweep_value,
        "policy": policy,
        "best_fixed": winner,
        "mode": plan.mode,
        "seeds": list(seeds),
        "throughput_tok_s": {"mean": mean, "ci95": ci95},
        "throughput_tok_s_per_seed": [r["throughput_tok_s"] for r in runs],  # in the order of seeds
    }
    row.update({key: mean_or_none([r[key] for r in runs]) for key in MEANS})
    row["tpot_ms_p50_ci95"] = mean_ci([r["tpot_ms_p50"] for r in runs if r["tpot_ms_p50"] is not None])[1]
    for key, reference in (("fixed4", REFERENCE), ("best_fixed", best), ("oracle", ORACLE)):
        row[f"ratio_to_{key}"], row[f"ratio_to_{key}_ci95"] = _ratio(by_spec, spec, seeds, reference)
    return row


def aggregate(plan: Plan, results: dict[int, Result], failures: dict[int, str]) -> Evaluation:
    """Rows in the plan's order: variants, then the requested policies."""
    by_variant: list[dict[str, dict[int, Result]]] = [
        {spec: {} for spec in specs} for specs in plan.simulated
    ]
    for i, result in results.items():
        task = plan.tasks[i]
        by_variant[task.variant][task.policy][task.seed] = result
    rows = []
    for v, variant in enumerate(plan.variants):
        best = _best_fixed(variant, by_variant[v]) if BEST_FIXED in plan.policies else (None, [])
        rows += [_row(plan, variant, policy, by_variant[v], best) for policy in plan.policies]
    traces = {}
    first = by_variant[0]
    for row in rows[: len(plan.policies)]:
        spec = row["best_fixed"] or row["policy"]
        run = first.get(spec, {}).get(plan.seeds[0])
        if run is not None and run["gamma_trace"] is not None:
            traces[label(row)] = run["gamma_trace"]
    failed = [
        {
            "scenario": plan.variants[plan.tasks[i].variant].name,
            "variant": plan.variants[plan.tasks[i].variant].label,
            "policy": plan.tasks[i].policy,
            "seed": plan.tasks[i].seed,
            "error": message,
        }
        for i, message in sorted(failures.items())
    ]
    return Evaluation(plan, rows, failed, traces)
