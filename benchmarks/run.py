"""`make bench`: every benchmark, one JSON document (printed and written atomically to --out).

- simulator: verification rounds per wall-clock second on metro-5g and hetero-fleet (one core)
  and the peak memory of one simulated hour of hetero-fleet (see dsd_gym/bench.py);
- env: Gymnasium env steps per second under random actions next to the raw simulator driving the
  ego session the same way (metro-5g with stochastic background load; with 32 simulated sessions);
- theory: the relative error of tokens per round and speedup against Leviathan et al. (2023)
  on the `ideal` scenario over the grid α × γ × c of the theory test.
"""

# ruff: noqa: E402  (the thread settings below must precede numpy's first import)
from __future__ import annotations

import os

# One core means one thread: numpy's OpenBLAS otherwise starts a worker per CPU whose spinning
# competes with the simulation on a 2-core machine (set before numpy is first imported).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from dsd_gym.bench import run_benchmarks, run_env_benchmarks
from dsd_gym.config import load_scenario
from dsd_gym.evaluation.report import write_text
from dsd_gym.runner import simulate
from dsd_gym.sim import expected_tokens_per_round

TARGET_MS = 20.0


def theory_errors(duration_s: float = 2000.0) -> dict:
    rows = []
    for c in (0.05, 0.2):
        for alpha in (0.5, 0.7, 0.9):
            base = [
                f"acceptance={{kind: iid, alpha: {alpha}}}",
                f"devices.0.latency.forward_ms={c * TARGET_MS}",
                f"duration_s={duration_s}",
            ]
            ar = simulate(load_scenario("ideal", base), "autoregressive")
            for gamma in (1, 2, 4, 8):
                sd = simulate(load_scenario("ideal", base), f"fixed:{gamma}")
                tokens = expected_tokens_per_round(alpha, gamma)
                speedup = sd["session_tok_s"] / ar["session_tok_s"]
                rows.append({
                    "alpha": alpha, "gamma": gamma, "c": c,
                    "tokens_per_round": round(sd["tokens_per_round"], 4), "theory_tokens": round(tokens, 4),
                    "tokens_rel_error": round(sd["tokens_per_round"] / tokens - 1, 5),
                    "speedup": round(speedup, 4), "theory_speedup": round(tokens / (gamma * c + 1), 4),
                    "speedup_rel_error": round(speedup / (tokens / (gamma * c + 1)) - 1, 5),
                })  # fmt: skip
    worst = max(max(abs(r["tokens_rel_error"]), abs(r["speedup_rel_error"])) for r in rows)
    return {"rows": rows, "max_abs_rel_error": worst, "tolerance": 0.01, "met": worst <= 0.01}


def emit(result: dict[str, Any], out: Path | None) -> None:
    """Print a benchmark's JSON document and, with ``out``, write it there atomically."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, text + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    args = parser.parse_args()
    started = time.time()
    result = {"simulator": run_benchmarks(quick=args.quick)}
    result["env"] = run_env_benchmarks(quick=args.quick)
    print("theory grid on `ideal` ...", file=sys.stderr)
    result["theory"] = theory_errors(200.0 if args.quick else 2000.0)
    result["wall_s"] = round(time.time() - started, 1)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
