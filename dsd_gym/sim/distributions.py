"""Sampling the length and time distributions of the scenario schema."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dsd_gym.config.schema import Distribution


def sample(dist: Distribution, rng: np.random.Generator) -> float:
    """One draw. Log-normal draws are clipped to [min, max]."""
    kind = dist.dist
    if kind == "constant":
        return float(dist.value)
    if kind == "exponential":
        return float(rng.exponential(dist.mean))
    if kind == "uniform":
        return float(rng.uniform(dist.low, dist.high))
    value = dist.median * math.exp(dist.sigma * float(rng.standard_normal()))
    return min(max(value, dist.min), dist.max)


def sample_tokens(dist: Distribution, rng: np.random.Generator) -> int:
    """A token count: a draw rounded to the nearest integer, at least 1."""
    return max(1, int(round(sample(dist, rng))))


def mean(dist: Distribution) -> float:
    """The mean before clipping (for reporting offered load)."""
    kind = dist.dist
    if kind == "constant":
        return float(dist.value)
    if kind == "exponential":
        return float(dist.mean)
    if kind == "uniform":
        return (dist.low + dist.high) / 2
    return dist.median * math.exp(dist.sigma**2 / 2)


def sample_many(dist: Distribution, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws at once (same law as :func:`sample`, not the same stream layout)."""
    kind = dist.dist
    if kind == "constant":
        return np.full(n, float(dist.value))
    if kind == "exponential":
        return rng.exponential(dist.mean, n)
    if kind == "uniform":
        return rng.uniform(dist.low, dist.high, n)
    return np.clip(dist.median * np.exp(dist.sigma * rng.standard_normal(n)), dist.min, dist.max)
