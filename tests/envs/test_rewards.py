"""Each reward form matches its documented formula (``dsd_gym/envs/rewards.py``), step by step.

On ``ideal`` (one session, constant latencies, no network) every step is exactly one round of the
agent's session, so the step's ``info`` describes the round the reward is about. And the return
under ``throughput`` is the number of tokens the driven session committed within the horizon.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import dsd_gym  # noqa: F401  (registers the ids)
from dsd_gym.config import load_scenario
from dsd_gym.runner import build
from dsd_gym.sim import Decision, Mode

HORIZON_S = 5.0


def _episode(reward: str, seed: int = 0, **kwargs: Any) -> tuple[gym.Env, list[tuple[float, dict[str, Any]]]]:
    """A random-action episode on ``ideal``: (reward, info) per step, the reset's info first."""
    env = gym.make("dsd_gym/DSD-ideal-v0", horizon_s=HORIZON_S, reward=reward, **kwargs)
    _, info = env.reset(seed=seed)
    steps = [(0.0, info)]
    rng = np.random.default_rng(seed)
    truncated = False
    while not truncated:
        _, reward_, _, truncated, info = env.step(int(rng.integers(env.action_space.n)))
        rounds = info["rounds"] - steps[-1][1]["rounds"]
        if truncated and rounds == 0:  # the horizon cut the step's round off: no round in the info
            assert info["tokens"] == 0 and info["mode"] == -1
        else:
            assert rounds == 1, "ideal: one round of the session per step"
        steps.append((reward_, info))
    modes = {info["mode"] for _, info in steps[1:]}
    assert modes >= {Mode.DISTRIBUTED, Mode.FUSED, Mode.AUTOREGRESSIVE}, "every mode should be exercised"
    return env, steps


def test_throughput_is_the_tokens_of_the_step() -> None:
    _, steps = _episode("throughput")
    for reward, info in steps[1:]:
        assert reward == info["tokens"] and isinstance(reward, float)
        assert info["tokens"] >= info["committed"] == min(info["accepted"] + 1, info["committed"])


@pytest.mark.parametrize("reward_kwargs, rate", [(None, 30.0), ({"rate_tok_s": 80}, 80.0)])
def test_time_penalty_is_tokens_minus_rate_times_elapsed(reward_kwargs: dict | None, rate: float) -> None:
    env, steps = _episode("time_penalty", reward_kwargs=reward_kwargs)
    assert env.unwrapped._reward_params["rate_tok_s"] == rate
    signs = set()
    for (_, before), (reward, info) in zip(steps, steps[1:], strict=False):
        elapsed = info["sim_time_s"] - before["sim_time_s"]
        assert elapsed > 0
        assert reward == pytest.approx(info["tokens"] - rate * elapsed, rel=1e-12, abs=1e-9)
        signs.add(reward > 0)
    assert signs == {True, False} or rate == 30.0


def test_rate_charges_the_elapsed_time_at_the_episode_rate_so_far() -> None:
    _, steps = _episode("rate")
    tokens = 0.0
    signs = set()
    for (_, before), (reward, info) in zip(steps, steps[1:], strict=False):
        elapsed = info["sim_time_s"] - before["sim_time_s"]
        rate = tokens / before["sim_time_s"] if before["sim_time_s"] > 0 else 0.0
        assert reward == pytest.approx(info["tokens"] - rate * elapsed, rel=1e-12, abs=1e-9)
        tokens += info["tokens"]
        signs.add(reward > 0)
    assert signs == {True, False}, "rounds better and worse than the running rate should both occur"


def test_slo_goodput_counts_only_tokens_of_rounds_within_the_tpot_slo() -> None:
    # A 10 ms TPOT SLO: a ~20-28 ms round meets it only when it commits 3 or more tokens.
    env, steps = _episode("slo_goodput", overrides=["slo.tpot_ms=10"])
    limit_s = env.unwrapped._reward_params["tpot_s"]
    assert limit_s == pytest.approx(0.010)
    met = set()
    for reward, info in steps[1:]:
        within = info["round_ms"] / 1e3 <= limit_s * info["committed"]
        assert reward == (info["committed"] if within else 0.0)
        met.add(within)
    assert met == {True, False}, "both branches of the SLO indicator should occur"


@pytest.mark.parametrize("beta", [0.25, 1.0])
def test_cloud_cost_is_tokens_minus_beta_times_cloud_positions(beta: float) -> None:
    env, steps = _episode("cloud_cost", reward_kwargs=None if beta == 0.25 else {"beta": beta})
    assert env.unwrapped._reward_params["beta"] == beta
    for reward, info in steps[1:]:
        gamma, mode = info["gamma"], info["mode"]
        positions = {
            Mode.DISTRIBUTED: gamma + 1,  # the target verifies γ drafts + 1
            Mode.FUSED: 2 * gamma + 1,  # ... and also drafts them itself
            Mode.AUTOREGRESSIVE: 1,
            -1: 0,  # the truncating step whose round the horizon cut off
        }[mode]
        assert reward == pytest.approx(info["tokens"] - beta * positions, rel=1e-12, abs=1e-12)


def test_throughput_return_is_the_tokens_committed_within_the_horizon() -> None:
    env, steps = _episode("throughput", seed=3)
    total = sum(reward for reward, _ in steps)
    assert total == sum(info["tokens"] for _, info in steps)
    session = env.unwrapped._driven[0]
    assert total == session.tokens, "the return must count every token the session committed"
    assert steps[-1][1]["sim_time_s"] <= HORIZON_S


@pytest.mark.parametrize("action, policy", [(3, "fixed:4"), (0, "fixed:1")])
def test_return_matches_the_simulator_run_alone(action: int, policy: str) -> None:
    """Driving the session with a constant action is the simulator under that fixed policy."""
    env = gym.make("dsd_gym/DSD-ideal-v0", horizon_s=HORIZON_S)
    env.reset(seed=1)
    assert env.unwrapped.decisions[action] == Decision(int(policy.split(":")[1]), Mode.DISTRIBUTED)
    total, truncated = 0.0, False
    while not truncated:
        _, reward, _, truncated, _ = env.step(action)
        total += reward
    sim_seed = env.unwrapped._episode[0]
    scenario = load_scenario("ideal", [f"duration_s={HORIZON_S}", "warmup_s=0"])
    summary = build(scenario, policy, seed=sim_seed).run()
    assert total == round(summary["throughput_tok_s"] * HORIZON_S)


@pytest.mark.parametrize("env_id", ["dsd_gym/DSD-lan-edge-v0", "dsd_gym/DSD-flaky-v0"])
def test_return_counts_every_request_of_the_session(env_id: str) -> None:
    """With think times, several requests (and their prefill tokens) fall inside the horizon."""
    env = gym.make(env_id, horizon_s=60.0)
    env.reset(seed=2)
    rng = np.random.default_rng(2)
    total, truncated = 0.0, False
    while not truncated:
        _, reward, _, truncated, info = env.step(int(rng.integers(env.action_space.n)))
        total += reward
    assert info["requests_completed"] >= 1, "the horizon should hold more than one request"
    assert total == env.unwrapped._driven[0].tokens


def test_round_rate_charges_each_round_its_time_at_the_busy_rate_so_far() -> None:
    env, steps = _episode("round_rate")
    tokens, busy_s = 0.0, 0.0
    signs = set()
    for reward, info in steps[1:]:
        round_s = info["round_ms"] / 1e3
        rate = tokens / busy_s if busy_s > 0 else 0.0
        assert reward == pytest.approx(info["committed"] - rate * round_s, rel=1e-9, abs=1e-9)
        tokens += info["committed"]
        busy_s += round_s
        signs.add(reward > 0)
    assert signs == {True, False}, "rounds better and worse than the busy rate should both occur"
    # The last step's credit: ideal has one session, so each round is credited to the step itself.
    step, session, rounds = env.unwrapped.credit
    assert (step, session) == (len(steps) - 2, env.unwrapped._driven[0].sid)
    assert rounds == () or (len(rounds) == 1 and rounds[0] == (step, pytest.approx(steps[-1][0])))


@pytest.mark.parametrize("weight", [1.3, 0.5])
def test_round_self_charges_the_rounds_added_iteration_time_too(weight: float) -> None:
    """On ``ideal`` the session's job is alone on the target: the time it adds to its iteration (Δ) is
    the whole iteration, the round's verify time (fused: with the cloud draft's passes)."""
    kwargs = None if weight == 1.3 else {"self_weight": weight}
    env, steps = _episode("round_self", reward_kwargs=kwargs)
    assert env.unwrapped._reward_params["self_weight"] == weight
    tokens, busy_s = 0.0, 0.0
    for reward, info in steps[1:]:
        round_s, verify_s = info["round_ms"] / 1e3, info["verify_ms"] / 1e3
        rate = tokens / busy_s if busy_s > 0 else 0.0  # round_rate's ρ̄: the self-delay is not in it
        assert reward == pytest.approx(
            info["committed"] - rate * (round_s + weight * verify_s), rel=1e-9, abs=1e-9
        )
        tokens += info["committed"]
        busy_s += round_s
    assert rate > 0


def test_round_self_without_weight_is_round_rate() -> None:
    (_, plain), (_, unweighted) = (
        _episode("round_rate"),
        _episode("round_self", reward_kwargs={"self_weight": 0}),
    )
    assert [r for r, _ in plain] == [r for r, _ in unweighted]
