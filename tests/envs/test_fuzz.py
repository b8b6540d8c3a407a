"""Fuzz: random actions on every shipped scenario keep observations inside the declared bounds.

Several seeds, a few hundred steps each (crossing episode ends), with ``history`` 0 and 3, in both
the ego and the fleet variant. Nothing may be NaN or infinite: not the observation, not the reward,
not any numeric ``info`` value.
"""

from __future__ import annotations

import math
from numbers import Number
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import dsd_gym  # noqa: F401  (registers the ids)
from dsd_gym.envs.dsd_env import INFO_KEYS
from dsd_gym.envs.registration import scenario_names
from dsd_gym.telemetry import FEATURES

SEEDS = (0, 1, 2)
STEPS = 300
REWARDS = ("throughput", "time_penalty", "slo_goodput", "cloud_cost")


def _check_info(info: dict[str, Any], where: str) -> None:
    assert tuple(info) == INFO_KEYS, where
    for key, value in info.items():
        assert isinstance(value, Number) and not isinstance(value, bool), f"{where}: info[{key!r}]={value!r}"
        assert math.isfinite(value), f"{where}: info[{key!r}]={value!r}"


def _check_obs(env: gym.Env, obs: np.ndarray, where: str) -> None:
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape, where
    assert np.all(np.isfinite(obs)), where
    assert env.observation_space.contains(obs), f"{where}: {obs} outside the declared bounds"


@pytest.mark.parametrize("variant", ["DSD", "DSDFleet"])
@pytest.mark.parametrize("scenario", scenario_names())
def test_random_actions_stay_in_bounds_and_finite(scenario: str, variant: str) -> None:
    visited = 0
    for history in (0, 3):
        for seed in SEEDS:
            reward = REWARDS[(seed + history) % len(REWARDS)]  # every reward form gets fuzzed too
            env = gym.make(f"dsd_gym/{variant}-{scenario}-v0", horizon_s=10.0, history=history, reward=reward)
            assert env.observation_space.shape == ((history + 1) * len(FEATURES),)
            obs, info = env.reset(seed=seed)
            _check_obs(env, obs, f"reset seed {seed}")
            _check_info(info, f"reset seed {seed}")
            rng = np.random.default_rng(seed)
            for t in range(STEPS):
                where = f"history={history} seed={seed} step={t} reward={reward}"
                obs, r, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
                _check_obs(env, obs, where)
                _check_info(info, where)
                assert isinstance(r, float) and math.isfinite(r), where
                assert terminated is False and isinstance(truncated, bool), where
                if truncated:
                    assert info["sim_time_s"] >= env.unwrapped.horizon_s, where
                    obs, info = env.reset()
                    _check_obs(env, obs, where + " (reset)")
                else:
                    assert info["sim_time_s"] <= env.unwrapped.horizon_s, where
                visited += int(obs.any())
    assert visited > 0, "the observations were never anything but zeros"


def test_history_rows_are_the_last_changed_vectors_newest_first() -> None:
    """With history=3 the observation is the vectors of the last four decisions that found the vector
    changed (a round, a request's prefill, or both since the previous decision), zeros before."""
    n = len(FEATURES)
    plain = gym.make("dsd_gym/DSD-cellular-v0", horizon_s=20.0)
    stacked = gym.make("dsd_gym/DSD-cellular-v0", horizon_s=20.0, history=3)
    obs0, _ = plain.reset(seed=4)
    obs3, _ = stacked.reset(seed=4)
    assert obs0.any(), "the first decision sees the prefill's link and draft measurements"
    assert np.array_equal(obs3[:n], obs0) and not obs3[n:].any()
    rows = [obs0]  # the plain observation at every decision where it changed
    rng = np.random.default_rng(4)
    for _ in range(400):
        action = int(rng.integers(plain.action_space.n))
        obs0, _, _, truncated, info = plain.step(action)
        obs3, _, _, truncated3, info3 = stacked.step(action)
        assert info == info3 and truncated == truncated3
        if truncated:
            break
        if not np.array_equal(obs0, rows[-1]):
            rows.append(obs0)
        expected = [*reversed(rows[-4:])] + [np.zeros(n, np.float32)] * (4 - len(rows[-4:]))
        assert np.array_equal(obs3, np.concatenate(expected))
    assert len(rows) > 100
