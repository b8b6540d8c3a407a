"""The env works with Ray RLlib unchanged: registered by id (``import dsd_gym``) or by a creator
function, a short PPO run on the new API stack trains on it. Skipped without Ray."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import pytest
import torch

import dsd_gym  # noqa: F401  (registers the ids)

pytestmark = pytest.mark.slow

ENV = "dsd_gym/DSD-ideal-v0"
ENV_CONFIG = {"horizon_s": 4.0, "window_choices": [1, 4], "modes": ["distributed", "autoregressive"]}


def _ppo(env: Any) -> Any:
    from ray.rllib.algorithms.ppo import PPOConfig

    return (
        PPOConfig()
        .environment(env, env_config=ENV_CONFIG)
        .env_runners(num_env_runners=0, rollout_fragment_length=64)  # sample in the driver: 2 cores
        .learners(num_learners=0)
        .training(train_batch_size_per_learner=128, minibatch_size=64, num_epochs=2, lr=1e-3)
        .rl_module(model_config={"fcnet_hiddens": [16]})
        .debugging(seed=0)
    )


def test_rllib_ppo_trains_on_the_registered_id_and_on_a_creator(local_ray: Any) -> None:
    from ray.tune.registry import register_env

    algo = _ppo(ENV).build_algo()
    try:
        module = algo.get_module()
        assert module.action_space == gym.make(ENV, **ENV_CONFIG).action_space  # Discrete(3)
        before = {k: v.detach().clone() for k, v in module.state_dict().items()}
        steps = []
        for _ in range(2):
            result = algo.train()
            steps.append(result["env_runners"]["num_env_steps_sampled_lifetime"])
        assert steps[0] >= 128 and steps[1] >= steps[0] + 128
        after = algo.get_module().state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before)  # the learner updated the policy
        assert result["env_runners"]["num_episodes_lifetime"] >= 1  # 4 s horizon: episodes end
    finally:
        algo.stop()
    register_env("dsd-creator", lambda config: gym.make(ENV, **config))
    algo = _ppo("dsd-creator").build_algo()
    try:
        result = algo.train()
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] >= 128
    finally:
        algo.stop()
