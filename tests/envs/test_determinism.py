"""Same seed and same actions give the same episode, exactly; a recorded trajectory replays.

Two envs stepped side by side must agree on every observation (bit for bit), reward, flag and info
value over a long rollout that crosses episode boundaries (reset without a seed continues from the
env's ``np_random``). A random trajectory, recorded as (seed, actions) the way CompilerGym records an
episode state, replays identically on a fresh env and on the same env after ``reset(seed=...)``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import dsd_gym  # noqa: F401  (registers the ids)

Step = tuple[np.ndarray, float, bool, bool, dict[str, Any]]


def _assert_same(a: Step, b: Step, where: str) -> None:
    assert np.array_equal(a[0], b[0]), where
    assert a[0].dtype == b[0].dtype == np.float32, where
    assert a[1:] == b[1:], where  # reward, terminated, truncated and info, exactly


@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        ("dsd_gym/DSD-v0", {"horizon_s": 20.0}),  # randomised (metro-5g has a randomize section)
        ("dsd_gym/DSD-cellular-v0", {"horizon_s": 20.0, "history": 3}),
        ("dsd_gym/DSDFleet-v0", {"horizon_s": 5.0, "reward": "time_penalty"}),
    ],
)
def test_two_envs_same_seed_same_actions_agree_exactly(env_id: str, kwargs: dict[str, Any]) -> None:
    steps = 2000
    one, two = gym.make(env_id, **kwargs), gym.make(env_id, **kwargs)
    actions = np.random.default_rng(7).integers(one.action_space.n, size=steps)
    obs1, info1 = one.reset(seed=123)
    obs2, info2 = two.reset(seed=123)
    assert np.array_equal(obs1, obs2) and info1 == info2
    episodes = 0
    for t, action in enumerate(actions):
        a, b = one.step(action), two.step(action)
        _assert_same(a, b, f"step {t}")
        assert a[2] is False  # the env never terminates, it only truncates at the horizon
        if a[3]:
            episodes += 1
            assert one.unwrapped._episode == two.unwrapped._episode
            obs1, info1 = one.reset()
            obs2, info2 = two.reset()
            assert np.array_equal(obs1, obs2) and info1 == info2, f"reset after step {t}"
    assert episodes >= 2, "the rollout should cross at least two episode boundaries"


def _record(env: gym.Env, seed: int, n: int, rng: np.random.Generator) -> tuple[list[int], list[Step]]:
    """A random trajectory of up to ``n`` steps (stopping at truncation) and what it produced."""
    obs, info = env.reset(seed=seed)
    trajectory: list[Step] = [(obs, 0.0, False, False, info)]
    actions: list[int] = []
    for _ in range(n):
        action = int(rng.integers(env.action_space.n))
        actions.append(action)
        trajectory.append(env.step(action))
        if trajectory[-1][3]:
            break
    return actions, trajectory


def _replay(env: gym.Env, seed: int, actions: list[int]) -> list[Step]:
    obs, info = env.reset(seed=seed)
    return [(obs, 0.0, False, False, info)] + [env.step(a) for a in actions]


@pytest.mark.parametrize(
    "env_id", ["dsd_gym/DSD-v0", "dsd_gym/DSD-flaky-v0", "dsd_gym/DSDFleet-hetero-fleet-v0"]
)
def test_recorded_trajectory_replays(env_id: str) -> None:
    seed = 2024
    env = gym.make(env_id, horizon_s=10.0)
    actions, recorded = _record(env, seed, 20_000, np.random.default_rng(0))
    assert recorded[-1][3], "the recorded episode should reach the horizon"
    assert env.unwrapped._actions == actions  # the env keeps its episode as a value too
    env.reset()  # move the used env on to another episode before replaying on it
    for _ in range(5):
        env.step(0)
    for target in (env, gym.make(env_id, horizon_s=10.0)):
        replayed = _replay(target, seed, actions)
        assert len(replayed) == len(recorded)
        for t, (a, b) in enumerate(zip(recorded, replayed, strict=True)):
            _assert_same(a, b, f"step {t}")


def test_different_seeds_give_different_episodes() -> None:
    env = gym.make("dsd_gym/DSD-v0", horizon_s=10.0)
    episodes = set()
    for seed in range(4):
        env.reset(seed=seed)
        sim_seed, values = env.unwrapped._episode
        episodes.add((sim_seed, tuple(sorted(values.items()))))
    assert len(episodes) == 4
