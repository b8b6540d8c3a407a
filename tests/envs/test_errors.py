"""Bad kwargs fail at construction with one line: a ValueError naming the kwarg and what is allowed."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import dsd_gym  # noqa: F401  (registers the ids)
from dsd_gym.envs.dsd_env import DSDEnv, DSDFleetEnv
from dsd_gym.errors import UserError

DELAY = "devices.0.link.delay.one_way_ms"
TP, CC = {"reward": "time_penalty"}, {"reward": "cloud_cost"}
POISSON = "workload={kind: poisson, rate_per_s: 1, task: chat}"

# (kwargs, words the message must contain: the kwarg's name and a hint of what is allowed)
CASES: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({"scenario": "no-such-scenario"}, ("scenario", "no-such-scenario", "allowed", "metro-5g")),
    ({"scenario": 5}, ("scenario", "allowed")),
    ({"window_choices": []}, ("window_choices", "allowed", "integers >= 1")),
    ({"window_choices": [2, 2.5]}, ("window_choices", "2.5", "allowed")),
    ({"window_choices": ["4"]}, ("window_choices", "allowed")),
    ({"window_choices": [0, 4]}, ("window_choices", "allowed")),
    ({"window_choices": [True]}, ("window_choices", "allowed")),
    ({"window_choices": [4, 4]}, ("window_choices", "distinct")),
    ({"reward": "speed"}, ("reward", "speed", "allowed", "throughput", "cloud_cost")),
    ({**TP, "reward_kwargs": {"beta": 1.0}}, ("reward_kwargs", "beta", "allowed", "rate_tok_s")),
    ({**CC, "reward_kwargs": {"beta": -1}}, ("reward_kwargs.beta", "-1", "allowed")),
    ({**TP, "reward_kwargs": {"rate_tok_s": "fast"}}, ("reward_kwargs.rate_tok_s", "allowed")),
    ({**TP, "reward_kwargs": {"rate_tok_s": float("nan")}}, ("reward_kwargs.rate_tok_s", "nan")),
    ({**CC, "reward_kwargs": {"beta": float("inf")}}, ("reward_kwargs.beta", "inf")),
    ({"reward_kwargs": {"rate_tok_s": 3.0}}, ("reward_kwargs", "rate_tok_s", "throughput", "allowed")),
    ({**CC, "reward_kwargs": [0.5]}, ("reward_kwargs", "allowed")),
    ({"history": -1}, ("history", "-1", "allowed", ">= 0")),
    ({"history": 1.5}, ("history", "1.5", "allowed")),
    ({"history": "2"}, ("history", "allowed")),
    ({"history": True}, ("history", "allowed")),
    ({"horizon_s": 0}, ("horizon_s", "allowed", "> 0")),
    ({"horizon_s": -3.0}, ("horizon_s", "-3.0", "allowed")),
    ({"horizon_s": float("nan")}, ("horizon_s", "nan", "allowed")),
    ({"horizon_s": "60"}, ("horizon_s", "allowed")),
    ({"others": "bogus:3"}, ("others", "bogus:3", "allowed", "fixed:G")),
    ({"others": "fixed:x"}, ("others", "fixed:x", "allowed")),
    ({"others": "fixed:99"}, ("others", "99", "window choices")),
    ({"modes": ["distributed", "warp"]}, ("modes", "warp", "allowed", "autoregressive")),
    ({"modes": []}, ("modes", "allowed")),
    ({"modes": ["fused"], "others": "fixed:4"}, ("others", "distributed", "not enabled")),
    ({"randomize": {DELAY: {"uniform": [30, 3]}}}, (f"randomize.{DELAY}", "low <= high")),
    ({"randomize": {DELAY: {"uniform": [-5, 3]}}}, (f"randomize.{DELAY}", "-5", "greater than or equal")),
    ({"randomize": {DELAY: {"uniform": [1, 3], "choice": [2]}}}, (f"randomize.{DELAY}", "exactly one of")),
    ({"randomize": {DELAY: {"gaussian": [1, 3]}}}, (f"randomize.{DELAY}", "gaussian")),
    ({"randomize": {"devices.0.link.delay.nope_ms": {"uniform": [1, 3]}}},
     ("randomize.devices.0.link.delay.nope_ms", "unknown key", "allowed keys", "one_way_ms")),
    ({"randomize": {"no.such.key": {"uniform": [1, 3]}}}, ("randomize.no.such.key", "unknown key")),
    ({"randomize": {"devices.5.count": {"integers": [1, 3]}}}, ("randomize.devices.5.count", "indices")),
    ({"randomize": "yes"}, ("randomize", "allowed", "mapping")),
    ({"overrides": [POISSON]}, ("workload.kind", "poisson", "closed_loop")),
    ({"overrides": ["no_such_key=1"]}, ("no_such_key", "unknown key", "allowed keys")),
    ({"render_mode": "human"}, ("render_mode", "human", "allowed", "ansi")),
]  # fmt: skip


def _one_line(exc: BaseException, words: tuple[str, ...]) -> None:
    assert isinstance(exc, ValueError) and isinstance(exc, UserError)
    message = str(exc)
    assert message and "\n" not in message, repr(message)
    missing = [w for w in words if w not in message]
    assert not missing, f"{message!r} lacks {missing}"


@pytest.mark.parametrize("cls", [DSDEnv, DSDFleetEnv])
@pytest.mark.parametrize("kwargs, words", CASES, ids=[repr(c[0])[:70] for c in CASES])
def test_bad_kwarg_fails_at_construction_with_one_line(
    cls: type, kwargs: dict[str, Any], words: tuple[str, ...]
) -> None:
    if cls is DSDFleetEnv and "others" in kwargs:
        # The fleet variant drives every foreground session: any `others` is refused as not applicable.
        words = ("others", repr(kwargs["others"]), "does not apply", "allowed: None")
    with pytest.raises(ValueError) as info:
        cls(**kwargs)
    _one_line(info.value, words)


def test_bad_kwarg_through_gym_make() -> None:
    with pytest.raises(ValueError) as info:
        gym.make("dsd_gym/DSD-v0", window_choices=[])
    _one_line(info.value, ("window_choices", "allowed"))
    with warnings.catch_warnings():
        # Gymnasium warns about a render mode outside metadata["render_modes"] before the env refuses it.
        warnings.filterwarnings("ignore", message=".*not in the possible render_modes", category=UserWarning)
        with pytest.raises(ValueError) as info:
            gym.make("dsd_gym/DSD-v0", render_mode="rgb_array")
    _one_line(info.value, ("render_mode", "rgb_array", "allowed"))


def test_bad_reset_options_fail_with_one_line() -> None:
    env = gym.make("dsd_gym/DSD-v0", horizon_s=5.0)
    env.reset(seed=0)
    with pytest.raises(ValueError) as info:
        env.reset(seed=0, options={"value": {}})
    _one_line(info.value, ("options", "'value'", "allowed", "values"))
    with pytest.raises(ValueError) as info:
        env.reset(seed=0, options={"values": {"no.such.key": 1}})
    _one_line(info.value, ("no", "unknown key"))
    env.reset(seed=0, options={"values": {}})  # the env is still usable after a refused reset
    env.step(0)


def test_a_horizon_that_ends_before_the_first_decision_fails_at_reset_with_one_line() -> None:
    env = gym.make("dsd_gym/DSD-v0", horizon_s=0.001)
    with pytest.raises(ValueError) as info:
        env.reset(seed=0)
    _one_line(info.value, ("horizon_s", "0.001", "first decision", "allowed"))


def test_reset_redraws_a_simulation_whose_first_decision_falls_after_the_horizon() -> None:
    # lan-edge's first requests arrive after a random think time: with a 2 s horizon some draws have
    # no decision in the horizon, and reset must still return a deciding session, reproducibly.
    env, again = (gym.make("dsd_gym/DSD-lan-edge-v0", horizon_s=2.0) for _ in range(2))
    redrawn = 0
    for seed in range(12):
        obs, _ = env.reset(seed=seed)
        assert env.unwrapped.deciding is not None
        first_sim_seed = int(np.random.default_rng(seed).integers(2**31 - 1))
        redrawn += env.unwrapped._episode[0] != first_sim_seed
        np.testing.assert_array_equal(obs, again.reset(seed=seed)[0])
        env.step(0)
    assert redrawn > 0, "the test should exercise a redraw"


def test_step_before_reset_is_refused() -> None:
    env = DSDEnv(scenario="ideal", horizon_s=1.0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    while not env.step(0)[3]:
        pass
    with pytest.raises(RuntimeError, match="reset"):  # and after the episode has ended
        env.step(0)


def test_good_kwargs_are_accepted() -> None:
    env = DSDEnv(
        scenario="ideal", reward="cloud_cost", reward_kwargs={"beta": 0}, window_choices=(6, 2),
        modes=("autoregressive", "distributed"), history=2, horizon_s=1, others="autoregressive",
        randomize={"acceptance.alpha": {"uniform": [0.5, 0.9]}}, overrides=["slo.tpot_ms=40"],
        render_mode="ansi",
    )  # fmt: skip
    assert env.unwrapped._reward_params == {"beta": 0.0, "tpot_s": 0.04}
    env.reset(seed=0)
    assert 0.5 <= env._episode[1]["acceptance.alpha"] <= 0.9
