"""Per-decision latency of an exported controller: what a runtime pays per call, batch 1, one thread."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch import Tensor, nn

from dsd_gym.telemetry import FEATURES

__all__ = ["decision_latency_us"]


def decision_latency_us(
    module: Any, features: Tensor | None = None, calls: int = 20_000, chunk: int = 100
) -> dict:
    """Median µs per single-session decision (``module(features)``), batch 1, one thread.

    Times ``calls`` decisions in chunks of ``chunk`` (a chunk's time / chunk; the timer's own cost
    is then negligible) after a warm-up, and reports the median and the 10th/90th percentiles over
    chunks. Also times a ``decide`` on batch 1 and a bare call of an empty scripted method, which
    separates TorchScript's per-call overhead from the work. ``module`` is the loaded (or scripted)
    controller; ``features`` defaults to a zero vector. The thread count is restored afterwards.
    """
    features = torch.zeros(len(FEATURES)) if features is None else features
    batch, state = features.unsqueeze(0), module.initial_state(1)
    empty = torch.jit.script(_Empty())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timings = {
            "forward_us": _chunked(lambda: module(features), calls, chunk),
            "decide_batch1_us": _chunked(lambda: module.decide(batch, state), calls, chunk),
            "empty_script_call_us": _chunked(lambda: empty(features), calls, chunk),
        }
        module.reset()
    finally:
        torch.set_num_threads(threads)
    return {"calls": calls, "threads": 1, **timings}


class _Empty(nn.Module):
    def forward(self, features: Tensor) -> Tensor:
        return features


def _chunked(call: Any, calls: int, chunk: int) -> dict[str, float]:
    for _ in range(min(calls, 1000)):
        call()
    per_call = []
    for _ in range(max(1, calls // chunk)):
        start = time.perf_counter_ns()
        for _ in range(chunk):
            call()
        per_call.append((time.perf_counter_ns() - start) / chunk / 1e3)
    deciles = statistics.quantiles(per_call, n=10) if len(per_call) > 1 else per_call * 9
    return {"median": round(statistics.median(per_call), 2), "p10": round(deciles[0], 2),
            "p90": round(deciles[-1], 2)}  # fmt: skip
