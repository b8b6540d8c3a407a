"""Learning curves: held-out evaluation throughput against env steps, one line per run (PNG)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dsd_gym.controllers.rl_run import read_run
from dsd_gym.errors import UserError
from dsd_gym.evaluation.report import write_atomic

__all__ = ["plot_curves"]


def plot_curves(runs: list[str | Path], out: str | Path) -> Path:
    """Plot every run's ``evaluations.json`` (mean over held-out variants, band = their range) to
    ``out``; the legend names the algorithm and the env. Returns the path."""
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for run in runs:
        info, folder = read_run(run)
        path = folder / "evaluations.json"
        if not path.exists():
            raise UserError(f"RL run {folder}: no evaluations.json yet; train it first")
        rows = json.loads(path.read_text())
        steps = np.array([row["timesteps"] for row in rows])
        values = [row["throughput_tok_s"] for row in rows]
        mean = np.array([row["mean"] for row in rows])
        (line,) = ax.plot(steps, mean, marker="o", ms=3, label=f"{info.algo} · {info.env_id.split('/')[-1]}")
        ax.fill_between(steps, [min(v) for v in values], [max(v) for v in values], alpha=0.15,
                        color=line.get_color())  # fmt: skip
    ax.set_xlabel("env steps")
    ax.set_ylabel("held-out throughput (tokens / s)")
    ax.set_title("Learning curves — deterministic policy on held-out scenario variants")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lambda temp: fig.savefig(temp, format="png", dpi=120))
    return out
