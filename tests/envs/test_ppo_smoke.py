"""A short PPO run on ``ideal`` learns something measurable.

On ``ideal`` (i.i.d. α = 0.7, draft/target cost ratio 0.05) the actions are restricted to γ = 1,
γ = 4 and autoregressive decoding: γ = 4 commits ~1.4× the tokens of a uniformly random choice
among them, and it is also the action with the most tokens per step, so the per-step reward points
straight at it. (With the default 17 actions random already does well — most windows are near the
optimum — and the gap is only ~10 %, too thin for a smoke test.) Seeded PPO on the CPU, a few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO

import dsd_gym  # noqa: F401  (registers the ids)

ID = "dsd_gym/DSD-ideal-v0"
KWARGS = {"horizon_s": 10.0, "window_choices": [1, 4], "modes": ["distributed", "autoregressive"]}
EVAL_SEEDS = (100, 101, 102)


def _mean_return(policy: Callable[[np.ndarray, gym.Env], int]) -> float:
    returns = []
    for seed in EVAL_SEEDS:
        env = gym.make(ID, **KWARGS)
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        total, truncated = 0.0, False
        while not truncated:
            obs, reward, _, truncated, _ = env.step(policy(obs, env))
            total += reward
        returns.append(total)
    return float(np.mean(returns))


def test_ppo_beats_random_on_ideal() -> None:
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        env = gym.make(ID, **KWARGS)
        assert [str(d) for d in env.unwrapped.decisions] == [
            "Decision(gamma=1, mode=<Mode.DISTRIBUTED: 0>)",
            "Decision(gamma=4, mode=<Mode.DISTRIBUTED: 0>)",
            "Decision(gamma=0, mode=<Mode.AUTOREGRESSIVE: 2>)",
        ]
        model = PPO("MlpPolicy", env, n_steps=256, batch_size=64, learning_rate=1e-3, seed=0, device="cpu")
        model.learn(total_timesteps=3072)
    finally:
        torch.set_num_threads(threads)
    trained = _mean_return(lambda obs, env: int(model.predict(obs, deterministic=True)[0]))
    random = _mean_return(lambda obs, env: int(env.action_space.sample()))
    best = _mean_return(lambda obs, env: 1)  # always γ = 4
    elapsed = time.perf_counter() - start
    print(f"PPO smoke: trained {trained:.1f}, random {random:.1f}, always γ=4 {best:.1f} ({elapsed:.1f} s)")
    assert trained >= 1.25 * random, (trained, random)
    assert trained >= 0.98 * best, (trained, best)
    assert elapsed < 60
