"""Acceptance indexed by output position, on common random numbers (DESIGN §3).

Under lossless speculative decoding the committed text follows the target model, so whether the
draft's guess at output position ``i`` is accepted depends only on the committed prefix, not on how
the rounds were cut. Each request therefore gets, from its own stream, a difficulty path ``alpha[i]``
and a uniform ``u[i]`` per position; the guess at ``i`` is accepted iff ``u[i] < alpha[i]``. Every
controller faces exactly the same text.

A round that drafts γ tokens from position ``p`` accepts ``A = min(γ, run[p])`` of them, where
``run[p]`` is the number of consecutive accepted guesses starting at ``p``; it commits ``A + 1``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dsd_gym.config.schema import AcceptanceProcess


class AcceptancePath:
    """The acceptance outcomes of one request's output positions.

    ``alpha`` (the latent per-position acceptance probability) and ``accepted`` are numpy arrays for
    analysis and oracles; ``run`` is a plain list because the simulator reads it once per round.
    """

    __slots__ = ("alpha", "accepted", "run")

    def __init__(self, alpha: np.ndarray, u: np.ndarray) -> None:
        self.alpha = alpha
        self.accepted = u < alpha
        self.run = run_lengths(self.accepted).tolist()

    def __len__(self) -> int:
        return len(self.alpha)

    def accepted_count(self, position: int, gamma: int) -> int:
        """A: how many of γ draft tokens starting at ``position`` the target accepts."""
        run = self.run[position] if position < len(self.run) else 0
        return run if run < gamma else gamma


def run_lengths(accepted: np.ndarray) -> np.ndarray:
    """run[i] = number of consecutive True values starting at i (0 where accepted[i] is False)."""
    n = len(accepted)
    index = np.arange(n)
    next_reject = np.where(accepted, n, index)
    next_reject = np.minimum.accumulate(next_reject[::-1])[::-1]
    return next_reject - index


def alpha_path(process: AcceptanceProcess, n: int, rng: np.random.Generator) -> np.ndarray:
    """The latent acceptance probability of each of ``n`` output positions."""
    kind = process.kind
    if kind == "iid":
        return np.full(n, float(process.alpha))
    if kind == "markov":
        return _markov_path(process, n, rng)
    return _latent_path(process, n, rng)


def _markov_path(process, n: int, rng: np.random.Generator) -> np.ndarray:
    """Regimes with geometric stays (mean ``mean_tokens``); the next regime ∝ weight, never the same."""
    regimes = process.regimes
    weights = np.array([r.weight for r in regimes])
    stays = np.array([r.mean_tokens for r in regimes])
    # Start in the long-run share of positions: entry frequency times mean stay.
    share = weights * stays
    current = int(rng.choice(len(regimes), p=share / share.sum()))
    alpha = np.empty(n)
    filled = 0
    while filled < n:
        regime = regimes[current]
        stay = int(rng.geometric(1.0 / max(regime.mean_tokens, 1.0)))
        alpha[filled : filled + stay] = regime.alpha
        filled += stay
        others = weights.copy()
        others[current] = 0.0
        current = int(rng.choice(len(regimes), p=others / others.sum()))
    return alpha


def _latent_path(process, n: int, rng: np.random.Generator) -> np.ndarray:
    """A stationary AR(1) walk on logit(alpha) with e-folding length ``correlation_tokens``."""
    mu = math.log(process.mean_alpha / (1.0 - process.mean_alpha))
    phi = math.exp(-1.0 / process.correlation_tokens)
    std = process.logit_std
    shocks = (rng.standard_normal(n) * (std * math.sqrt(1.0 - phi * phi))).tolist()
    x = mu + std * float(rng.standard_normal())
    logits = [0.0] * n
    for i in range(n):
        logits[i] = x
        x = mu + phi * (x - mu) + shocks[i]
    return 1.0 / (1.0 + np.exp(-np.asarray(logits)))


def acceptance_path(process: AcceptanceProcess, n: int, rng: np.random.Generator) -> AcceptancePath:
    """Draw alpha first, then the uniforms, always in that order (the stream layout is the API)."""
    alpha = alpha_path(process, n, rng)
    u = rng.random(n)
    return AcceptancePath(alpha, u)


def expected_tokens_per_round(alpha: float, gamma: int) -> float:
    """Leviathan et al. (2023), eq. 1: E[A + 1] = (1 − α^(γ+1)) / (1 − α)."""
    if alpha >= 1.0:
        return float(gamma + 1)
    return (1.0 - alpha ** (gamma + 1)) / (1.0 - alpha)
