"""Simulator speed and memory: what ``make bench`` and ``dsd-gym bench --json`` report.

Speed is simulated verification rounds (of every full session) per wall-clock second of
``Simulation.run``, on one core, telemetry on. Memory is the peak resident set of a separate process
that simulates one hour of ``hetero-fleet``, so the figure is not polluted by this process.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time
from typing import Any

SPEED_SCENARIOS = ("metro-5g", "hetero-fleet")
TARGET_ROUNDS_PER_S = 50_000
TARGET_PEAK_MB = 500


def rounds_per_second(scenario_name: str, duration_s: float, repeats: int = 3) -> dict[str, Any]:
    """Best of ``repeats`` runs (the least disturbed by the rest of the machine)."""
    from dsd_gym.config import load_scenario
    from dsd_gym.runner import build

    scenario = load_scenario(scenario_name, [f"duration_s={duration_s}", "warmup_s=0"])
    best = None
    for _ in range(repeats):
        sim = build(scenario, "fixed:4")
        start = time.perf_counter()
        summary = sim.run()
        wall = time.perf_counter() - start
        rate = summary["rounds"] / wall
        if best is None or rate > best["rounds_per_s"]:
            best = {
                "scenario": scenario_name,
                "simulated_s": duration_s,
                "rounds": summary["rounds"],
                "wall_s": round(wall, 3),
                "rounds_per_s": round(rate),
                "sim_seconds_per_wall_second": round(duration_s / wall, 1),
            }
    assert best is not None
    return best


def _peak_memory_child(duration_s: float) -> None:
    from dsd_gym.config import load_scenario
    from dsd_gym.runner import simulate

    summary = simulate(load_scenario("hetero-fleet", [f"duration_s={duration_s}"]), "fixed:4")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": round(peak_mb, 1), "rounds": summary["rounds"]}))


def peak_memory(duration_s: float) -> dict[str, Any]:
    code = f"from dsd_gym.bench import _peak_memory_child; _peak_memory_child({duration_s})"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(
        scenario="hetero-fleet", simulated_s=duration_s, wall_s=round(time.perf_counter() - start, 1)
    )
    return result


def run_benchmarks(quick: bool = False, progress: bool = True) -> dict[str, Any]:
    duration = 30.0 if quick else 600.0
    speed = []
    for name in SPEED_SCENARIOS:
        if progress:
            print(f"timing {name} ({duration:g} s simulated) ...", file=sys.stderr)
        speed.append(rounds_per_second(name, duration, repeats=1 if quick else 3))
    if progress:
        print("peak memory of one simulated hour of hetero-fleet ...", file=sys.stderr)
    memory = peak_memory(60.0 if quick else 3600.0)
    return {
        "benchmark": "simulator",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "speed": speed,
        "speed_target_rounds_per_s": TARGET_ROUNDS_PER_S,
        "speed_target_met": all(s["rounds_per_s"] >= TARGET_ROUNDS_PER_S for s in speed),
        "memory": memory,
        "memory_target_mb": TARGET_PEAK_MB,
        "memory_target_met": memory["peak_rss_mb"] < TARGET_PEAK_MB,
    }
