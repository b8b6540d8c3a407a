"""Pickling (the env replays its episode on unpickle) and running under vector envs.

An env pickles as a value: its kwargs, its ``np_random`` state and the episode (simulation seed,
randomised values, actions so far). Unpickling rebuilds the simulation and replays the actions, so
the copy must continue exactly like the original: same observations, rewards, flags and info, also
across the next reset. Then the env must run under Gymnasium's sync/async vector envs and under
Stable-Baselines3's DummyVecEnv and SubprocVecEnv.
"""

from __future__ import annotations

import copy
import pickle
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import dsd_gym  # noqa: F401  (registers the ids)

HORIZON_S = 5.0


def _continue(env: gym.Env, actions: np.ndarray) -> list[Any]:
    """Step through ``actions``, resetting (without a seed) whenever the episode ends."""
    out: list[Any] = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((obs.tobytes(), reward, terminated, truncated, info))
        if truncated:
            obs, info = env.reset()
            out.append((obs.tobytes(), info))
    return out


@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        ("dsd_gym/DSD-v0", {}),
        ("dsd_gym/DSD-cellular-v0", {"history": 3}),
        ("dsd_gym/DSDFleet-metro-5g-v0", {"reward": "cloud_cost"}),
    ],
)
@pytest.mark.parametrize("when", ["before_reset", "between_episodes", "mid_episode", "after_truncation"])
def test_pickled_copy_continues_like_the_original(env_id: str, kwargs: dict[str, Any], when: str) -> None:
    env = gym.make(env_id, horizon_s=HORIZON_S, **kwargs)
    rng = np.random.default_rng(5)
    if when != "before_reset":
        env.reset(seed=11)
        steps = {"between_episodes": 0, "mid_episode": 37, "after_truncation": 10**6}[when]
        for _ in range(steps):
            if env.step(int(rng.integers(env.action_space.n)))[3]:
                if when == "after_truncation":
                    break
                env.reset()  # a short episode: pickle in the middle of the next one
        assert (env.unwrapped.deciding is None) == (when == "after_truncation")
        assert bool(env.unwrapped._actions) == (when != "between_episodes")
    for clone in (pickle.loads(pickle.dumps(env)), copy.deepcopy(env)):
        assert clone.unwrapped._episode == env.unwrapped._episode
        assert clone.unwrapped._actions == env.unwrapped._actions
    clone = pickle.loads(pickle.dumps(env))
    if when == "before_reset":  # never seeded: the clone stays unseeded too; seed both alike
        assert clone.unwrapped._np_random is None and env.unwrapped._np_random is None
        env.reset(seed=3)
        clone.reset(seed=3)
    else:
        assert clone.unwrapped.np_random_seed == env.unwrapped.np_random_seed == 11
    if when == "after_truncation":
        start_env, start_clone = env.reset(), clone.reset()
        assert np.array_equal(start_env[0], start_clone[0]) and start_env[1] == start_clone[1]
        assert clone.unwrapped._episode == env.unwrapped._episode
    actions = rng.integers(env.action_space.n, size=300)
    assert _continue(clone, actions) == _continue(env, actions)


def test_pickled_env_keeps_its_spec_and_kwargs() -> None:
    env = gym.make("dsd_gym/DSD-ideal-v0", horizon_s=HORIZON_S, history=2, window_choices=[2, 4])
    env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.spec == env.spec
    assert clone.unwrapped.spec == env.unwrapped.spec
    assert clone.unwrapped.history == 2 and clone.observation_space == env.observation_space
    assert clone.unwrapped.decisions == env.unwrapped.decisions


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_gymnasium_vector_envs_step_and_reset(mode: str) -> None:
    envs = gym.make_vec("dsd_gym/DSD-v0", num_envs=2, vectorization_mode=mode, horizon_s=HORIZON_S)
    try:
        obs, infos = envs.reset(seed=[0, 1])
        assert obs.shape == (2, *envs.single_observation_space.shape)
        envs.action_space.seed(0)
        truncations = 0
        for _ in range(200):
            obs, rewards, terminated, truncated, infos = envs.step(envs.action_space.sample())
            assert envs.observation_space.contains(obs)
            assert np.all(np.isfinite(rewards)) and not terminated.any()
            truncations += int(truncated.sum())
        assert truncations >= 2, "both sub-envs should reach the horizon and autoreset"
        obs, infos = envs.reset(seed=[0, 1])
        assert envs.observation_space.contains(obs)
    finally:
        envs.close()


def test_sync_and_async_vector_envs_agree() -> None:
    results = []
    for mode in ("sync", "async"):
        envs = gym.make_vec("dsd_gym/DSD-v0", num_envs=2, vectorization_mode=mode, horizon_s=HORIZON_S)
        try:
            obs, _ = envs.reset(seed=[3, 4])
            trace = [obs]
            for action in np.random.default_rng(0).integers(envs.single_action_space.n, size=(120, 2)):
                obs, rewards, _, truncated, _ = envs.step(action)
                trace += [obs, rewards, truncated]
            results.append(trace)
        finally:
            envs.close()
    assert all(np.array_equal(a, b) for a, b in zip(*results, strict=True))


@pytest.mark.parametrize(
    "vec_cls, kwargs",
    [(DummyVecEnv, {}), (SubprocVecEnv, {"start_method": "fork"}), (SubprocVecEnv, {})],
    ids=["dummy", "subproc-fork", "subproc-default"],
)
def test_sb3_vec_envs_run(vec_cls: type, kwargs: dict[str, Any]) -> None:
    ids = ["dsd_gym/DSD-v0", "dsd_gym/DSDFleet-lan-edge-v0"]
    # A forkserver/spawn child starts without dsd_gym imported, and Gymnasium does not import a
    # namespace's package by itself: the "module:id" form makes gym.make import dsd_gym first.
    # partial(gym.make, ...) pickles by reference, unlike a closure over this test module.
    venv = vec_cls([partial(gym.make, f"dsd_gym:{env_id}", horizon_s=HORIZON_S) for env_id in ids], **kwargs)
    try:
        venv.seed(0)
        obs = venv.reset()
        rng = np.random.default_rng(0)
        dones = 0
        for _ in range(300):
            obs, rewards, done, infos = venv.step(rng.integers(venv.action_space.n, size=len(ids)))
            assert obs.shape == (len(ids), *venv.observation_space.shape)
            assert np.all(np.isfinite(obs)) and np.all(np.isfinite(rewards))
            for d, info in zip(done, infos, strict=True):
                if d:  # SB3 reports the time-limit truncation and keeps the final observation
                    assert info["TimeLimit.truncated"] is True and "terminal_observation" in info
            dones += int(done.sum())
        assert dones >= 1
    finally:
        venv.close()
