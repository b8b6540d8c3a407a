"""Acceptance processes indexed by output position."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dsd_gym.config.schema import IIDAcceptance, LatentAcceptance, MarkovAcceptance, Regime
from dsd_gym.sim.acceptance import acceptance_path, expected_tokens_per_round, run_lengths


def test_run_lengths_count_consecutive_acceptances() -> None:
    accepted = np.array([1, 1, 0, 1, 0, 0, 1, 1, 1], dtype=bool)
    assert run_lengths(accepted).tolist() == [2, 1, 0, 1, 0, 0, 3, 2, 1]


def test_accepted_count_is_the_window_capped_run() -> None:
    path = acceptance_path(IIDAcceptance(kind="iid", alpha=0.6), 1000, np.random.default_rng(1))
    for position in range(0, 990, 7):
        run = 0
        while path.accepted[position + run]:
            run += 1
        for gamma in (1, 3, 8):
            assert path.accepted_count(position, gamma) == min(gamma, run)


@pytest.mark.parametrize("alpha,gamma", [(0.5, 1), (0.7, 4), (0.9, 8)])
def test_iid_rounds_commit_leviathan_expectation(alpha: float, gamma: int) -> None:
    path = acceptance_path(IIDAcceptance(kind="iid", alpha=alpha), 400_000, np.random.default_rng(2))
    position, rounds = 0, 0
    while position < 390_000:
        position += path.accepted_count(position, gamma) + 1
        rounds += 1
    assert position / rounds == pytest.approx(expected_tokens_per_round(alpha, gamma), rel=0.01)


def test_same_stream_same_path_whatever_is_asked_later() -> None:
    process = LatentAcceptance(kind="latent", mean_alpha=0.7, logit_std=0.8, correlation_tokens=50)
    a = acceptance_path(process, 500, np.random.default_rng(np.random.SeedSequence(3, spawn_key=(1, 0, 0))))
    b = acceptance_path(process, 500, np.random.default_rng(np.random.SeedSequence(3, spawn_key=(1, 0, 0))))
    assert np.array_equal(a.alpha, b.alpha) and np.array_equal(a.accepted, b.accepted)


def test_markov_regimes_share_time_by_weight_and_stay() -> None:
    process = MarkovAcceptance(
        kind="markov",
        regimes=[
            Regime(name="prose", alpha=0.5, mean_tokens=200),
            Regime(name="code", alpha=0.9, mean_tokens=50),
        ],
    )
    path = acceptance_path(process, 500_000, np.random.default_rng(4))
    share_code = float(np.mean(path.alpha == 0.9))
    assert share_code == pytest.approx(50 / 250, abs=0.02)
    switches = int(np.count_nonzero(np.diff(path.alpha)))
    assert 500_000 / (switches + 1) == pytest.approx(125, rel=0.1)  # mean stay over both regimes


def test_latent_walk_is_stationary_with_its_correlation_length() -> None:
    process = LatentAcceptance(kind="latent", mean_alpha=0.7, logit_std=0.5, correlation_tokens=20)
    alpha = acceptance_path(process, 200_000, np.random.default_rng(5)).alpha
    logit = np.log(alpha / (1 - alpha))
    assert logit.mean() == pytest.approx(math.log(0.7 / 0.3), abs=0.05)
    assert logit.std() == pytest.approx(0.5, rel=0.05)
    x = logit - logit.mean()
    lag = float(np.dot(x[:-20], x[20:]) / np.dot(x, x))
    assert lag == pytest.approx(math.exp(-1), abs=0.05)
