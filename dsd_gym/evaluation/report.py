"""An evaluation as a terminal table, JSON and CSV; files written atomically.

Output holds no wall-clock time and no host detail: the same command gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dsd_gym.evaluation.aggregate import Evaluation, label

_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any], int]] = [
    ("tok/s", lambda r: r["throughput_tok_s"]["mean"], 1),
    ("±95%", lambda r: r["throughput_tok_s"]["ci95"], 1),
    ("TPOT p50 ms", lambda r: r["tpot_ms_p50"], 2),
    ("TPOT p99 ms", lambda r: r["tpot_ms_p99"], 2),
    ("goodput rps", lambda r: r["goodput_rps"], 3),
    ("accept", lambda r: r["acceptance_rate"], 3),
    ("mean γ", lambda r: r["mean_gamma"], 2),
    ("× fixed:4", lambda r: (r["ratio_to_fixed4"], r["ratio_to_fixed4_ci95"]), 3),
    ("× best-fixed", lambda r: (r["ratio_to_best_fixed"], r["ratio_to_best_fixed_ci95"]), 3),
    ("× oracle", lambda r: (r["ratio_to_oracle"], r["ratio_to_oracle_ci95"]), 3),
]


def _fmt(value: Any, digits: int) -> str:
    """A number; a (ratio, 95 % half-width) pair as ``1.085±0.012`` (no interval: the ratio alone)."""
    if isinstance(value, tuple):
        ratio, ci95 = value
        if ratio is None or ci95 is None:
            return _fmt(ratio, digits)
        return f"{ratio:.{digits}f}±{ci95:.{digits}f}"
    return "-" if value is None else f"{value:.{digits}f}"


def _seeds(seeds: tuple[int, ...] | list[int]) -> str:
    if not seeds:
        return "no seed"
    if list(seeds) == list(range(seeds[0], seeds[-1] + 1)):
        return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    return "seeds " + ",".join(map(str, seeds))


def table(evaluation: Evaluation) -> str:
    """One block per scenario variant, one line per requested policy; columns aligned across blocks."""
    plan = evaluation.plan
    header = ["policy", *(name for name, _, _ in _COLUMNS), "note"]
    lines = []
    for row in evaluation.rows:
        note = "" if row["seeds"] == list(plan.seeds) else f"only {_seeds(row['seeds'])}"
        lines.append([label(row), *(_fmt(get(row), digits) for _, get, digits in _COLUMNS), note])
    widths = [max(len(x) for x in col) for col in zip(header, *lines, strict=True)]
    if not any(line[-1] for line in lines):
        header, widths, lines = header[:-1], widths[:-1], [line[:-1] for line in lines]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            [cells[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))]
        )

    out = []
    per_variant = len(plan.policies)
    for v, variant in enumerate(plan.variants):
        scenario = variant.scenario
        if out:
            out.append("")
        out.append(
            f"{variant.title} — {plan.mode} mode, {_seeds(plan.seeds)}, {scenario.duration_s:g} s simulated "
            f"({scenario.duration_s - scenario.warmup_s:g} s measured)"
        )
        out.append(fmt(header))
        out.append("  ".join("-" * w for w in widths))
        out.extend(fmt(line) for line in lines[v * per_variant : (v + 1) * per_variant])
    if plan.notes:
        out.append("")
        out.extend(f"note: {note}" for note in plan.notes)
    return "\n".join(out)


def to_json(evaluation: Evaluation) -> str:
    plan = evaluation.plan
    document = {
        "mode": plan.mode,
        "seeds": list(plan.seeds),
        "policies": list(plan.policies),
        "sweep": None if plan.sweep is None else {"key": plan.sweep.key, "values": list(plan.sweep.values)},
        "confidence": (
            "95% Student t over seeds: mean ± t(0.975, n-1) s/sqrt(n); ratios (paired seeds, delta method): "
            "R ± t(0.975, n-1) sd(x - R y)/(sqrt(n) mean(y))"
        ),
        "notes": list(plan.notes),
        "rows": evaluation.rows,
        "failures": evaluation.failures,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _flatten(row: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update({f"{key}_{k}": v for k, v in value.items()})
        elif isinstance(value, list):
            flat[key] = " ".join(map(str, value))
        else:
            flat[key] = value
    return flat


def to_csv(evaluation: Evaluation) -> str:
    """The rows flattened: ``throughput_tok_s_mean``, ``throughput_tok_s_ci95``; seeds space-separated;
    an empty cell for None."""
    rows = [_flatten(r) for r in evaluation.rows]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temp_path)`` on a file beside ``path``, then rename it over ``path``: readers see
    the old file or the new one, never half of one."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(temp))
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    write_atomic(path, lambda temp: temp.write_text(text, encoding="utf-8"))
