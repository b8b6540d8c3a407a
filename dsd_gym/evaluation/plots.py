"""PNG plots of an evaluation, drawn with matplotlib's Agg canvas (no display, no pyplot state).

- ``throughput.png`` and ``tpot_p50.png``: the metric against the swept variable, one panel per
  scenario, one line per policy with its 95 % band; without a sweep, one point per scenario and
  policy with its interval as an error bar.
- ``gamma.png``: γ of every round of the measured session (the ego, or the first foreground
  session) against simulated time, on the first variant's first seed, one panel per policy (at
  most ``GAMMA_POLICIES``), coloured by mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dsd_gym.evaluation.aggregate import Evaluation, label
from dsd_gym.evaluation.report import write_atomic
from dsd_gym.sim.controller import Mode

GAMMA_POLICIES = 4
_MODE_COLOURS = {Mode.DISTRIBUTED: "tab:blue", Mode.FUSED: "tab:orange", Mode.AUTOREGRESSIVE: "tab:grey"}
METRICS = {
    "throughput": ("tokens / s", lambda r: (r["throughput_tok_s"]["mean"], r["throughput_tok_s"]["ci95"])),
    "tpot_p50": ("TPOT p50 (ms)", lambda r: (r["tpot_ms_p50"], r["tpot_ms_p50_ci95"])),
}


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    write_atomic(path, lambda temp: fig.savefig(temp, format="png", dpi=120))


def _metric_figure(evaluation: Evaluation, ylabel: str, get: Any) -> Figure:
    plan = evaluation.plan
    sweep = plan.sweep
    per_variant = len(plan.policies)
    blocks = [evaluation.rows[v * per_variant : (v + 1) * per_variant] for v in range(len(plan.variants))]
    if sweep is None:  # one panel: scenarios along x
        fig = Figure(figsize=(max(6.0, 1.6 * len(blocks)), 4.5), layout="constrained")
        ax = fig.subplots()
        width = 0.8 / max(per_variant, 1)
        for p in range(per_variant):
            points = [(x, *get(block[p])) for x, block in enumerate(blocks) if get(block[p])[0] is not None]
            xs = [x - 0.4 + width * (p + 0.5) for x, _, _ in points]
            ax.errorbar(
                xs, [m for _, m, _ in points], yerr=[ci or 0.0 for _, _, ci in points], fmt="o", capsize=3,
                label=label(blocks[0][p]),
            )  # fmt: skip
        ax.set_xticks(range(len(blocks)), [block[0]["scenario"] for block in blocks])
        ax.set_ylabel(ylabel)
        ax.set_title(f"{plan.mode} mode, {len(plan.seeds)} seeds, mean and 95% interval")
        ax.legend(fontsize="small")
        return fig
    names = list(dict.fromkeys(v.name for v in plan.variants))
    fig = Figure(figsize=(6.0 * len(names), 4.5), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        mine = [b for b, v in zip(blocks, plan.variants, strict=True) if v.name == name]
        xs = list(sweep.values) if sweep.numeric else list(range(len(sweep.texts)))
        for p in range(per_variant):
            points = [
                (x, *get(block[p])) for x, block in zip(xs, mine, strict=True) if get(block[p])[0] is not None
            ]
            if not points:
                continue
            px, means = [x for x, _, _ in points], [m for _, m, _ in points]
            cis = [ci or 0.0 for _, _, ci in points]
            (line,) = ax.plot(px, means, marker="o", label=label(mine[0][p]))
            lower = [m - c for m, c in zip(means, cis, strict=True)]
            upper = [m + c for m, c in zip(means, cis, strict=True)]
            ax.fill_between(px, lower, upper, color=line.get_color(), alpha=0.2, linewidth=0)
        if not sweep.numeric:
            ax.set_xticks(xs, list(sweep.texts))
        ax.set_xlabel(sweep.key)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{name} — {plan.mode} mode, {len(plan.seeds)} seeds, 95% band")
        ax.legend(fontsize="small")
    return fig


def _gamma_figure(evaluation: Evaluation) -> Figure:
    """One panel per policy (shared axes): a dot per round at its start time and γ, coloured by mode;
    gaps are the session's idle time between requests."""
    plan = evaluation.plan
    variant = plan.variants[0]
    traces = [(name, trace) for name, trace in evaluation.traces.items() if trace][:GAMMA_POLICIES]
    fig = Figure(figsize=(9.0, 1.2 + 1.6 * max(len(traces), 1)), layout="constrained")
    axes = fig.subplots(max(len(traces), 1), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    who = "ego session" if plan.mode == "ego" else "first foreground session"
    fig.suptitle(f"γ per round of the {who}: {variant.title}, seed {plan.seeds[0]}")
    for ax, (name, trace) in zip(axes, traces, strict=False):
        for mode in Mode:
            times = [t for t, _, m in trace if m == mode]
            gammas = [g for _, g, m in trace if m == mode]
            if times:
                ax.scatter(times, gammas, s=4, color=_MODE_COLOURS[mode], label=mode.name.lower())
        ax.axvline(variant.scenario.warmup_s, color="grey", linestyle=":", linewidth=1)
        ax.set_ylabel("γ")
        ax.set_title(name, fontsize="medium", loc="left")
        ax.legend(fontsize="x-small", loc="upper right", markerscale=3)
    axes[-1].set_xlabel("simulated time (s); dotted: end of warm-up")
    return fig


def write_plots(evaluation: Evaluation, directory: str | Path) -> list[Path]:
    """Write the PNGs into ``directory`` (created if missing); returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (ylabel, get) in METRICS.items():
        path = directory / f"{name}.png"
        _save(_metric_figure(evaluation, ylabel, get), path)
        written.append(path)
    path = directory / "gamma.png"
    _save(_gamma_figure(evaluation), path)
    written.append(path)
    return written
