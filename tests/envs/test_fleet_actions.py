"""The fleet variant (every foreground session decides) and the action table."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import dsd_gym  # noqa: F401  (registers the ids)
from dsd_gym.envs import dsd_env
from dsd_gym.sim import Decision, Mode, Simulation

FLEET = "dsd_gym/DSDFleet-metro-5g-v0"


def _episode(env: gym.Env, seed: int) -> tuple[float, list[dict]]:
    _, info = env.reset(seed=seed)
    infos = [info]
    rng = np.random.default_rng(seed)
    total, truncated = 0.0, False
    while not truncated:
        _, reward, _, truncated, info = env.step(int(rng.integers(env.action_space.n)))
        total += reward
        infos.append(info)
    return total, infos


def test_every_foreground_session_decides() -> None:
    env = gym.make(FLEET, horizon_s=10.0)
    _, infos = _episode(env, seed=0)
    foreground = {s.sid for s in env.unwrapped._sim.sessions if not s.background}
    assert len(foreground) == 8  # metro-5g: eight laptops
    assert {s.sid for s in env.unwrapped._driven} == foreground
    deciding = [info["session"] for info in infos[:-1]]  # the truncating step names no new decision
    assert set(deciding) == foreground
    assert len(set(deciding[:50])) >= 4, "decisions of different sessions interleave"


def test_ego_variant_always_serves_the_same_session() -> None:
    env = gym.make("dsd_gym/DSD-metro-5g-v0", horizon_s=10.0)
    _, infos = _episode(env, seed=0)
    assert {info["session"] for info in infos} == {env.unwrapped._driven[0].sid}
    assert len(env.unwrapped._driven) == 1


@pytest.mark.parametrize("seed", [0, 1])
def test_fleet_return_is_the_tokens_of_every_foreground_session(seed: int) -> None:
    env = gym.make(FLEET, horizon_s=10.0)
    total, infos = _episode(env, seed)
    foreground = [s for s in env.unwrapped._sim.sessions if not s.background]
    assert total == sum(info["tokens"] for info in infos)
    assert total == sum(s.tokens for s in foreground)


def test_fleet_return_matches_the_simulators_own_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """In distributed mode a token is visible at the edge when its round ends, which is when the env
    counts it, so the return equals the simulator's foreground-token metric over [0, horizon]. (The
    env's simulations keep no metrics; this one is built with them, which changes nothing else.)"""

    def metered(*args: object, **kwargs: object) -> Simulation:
        return Simulation(*args, **{**kwargs, "metrics": True})  # type: ignore[arg-type]

    monkeypatch.setattr(dsd_env, "Simulation", metered)
    env = gym.make(FLEET, horizon_s=10.0, modes=["distributed"], randomize=False)
    total, _ = _episode(env, seed=3)
    assert total == env.unwrapped._sim.metrics.foreground_tokens > 0


def test_env_simulations_keep_no_metrics() -> None:
    env = gym.make(FLEET, horizon_s=5.0)
    _episode(env, seed=0)
    with pytest.raises(RuntimeError, match="metrics=False"):
        env.unwrapped._sim.summary()


def test_background_sessions_are_never_driven() -> None:
    env = gym.make("dsd_gym/DSDFleet-busy-cloud-v0", horizon_s=5.0)
    _, infos = _episode(env, seed=0)
    background = {s.sid for s in env.unwrapped._sim.sessions if s.background}
    assert background and not background & {info["session"] for info in infos}


D, F, A = Mode.DISTRIBUTED, Mode.FUSED, Mode.AUTOREGRESSIVE


def test_default_action_table_is_distributed_then_fused_then_autoregressive() -> None:
    env = gym.make("dsd_gym/DSD-v0", horizon_s=5.0)
    windows = list(range(1, 9))
    expected = [Decision(g, D) for g in windows] + [Decision(g, F) for g in windows] + [Decision(0, A)]
    assert env.unwrapped.decisions == expected
    assert env.action_space == gym.spaces.Discrete(17)
    assert [env.unwrapped.action_to_decision(i) for i in range(17)] == expected


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"modes": ["distributed"]}, [Decision(g, D) for g in range(1, 9)]),
        ({"modes": ["distributed"], "window_choices": [6, 2, 4]},  # sorted, as the scenario keeps them
         [Decision(2, D), Decision(4, D), Decision(6, D)]),
        ({"modes": ["autoregressive", "fused"], "window_choices": [3], "others": "fused:3"},
         [Decision(3, F), Decision(0, A)]),
        ({"modes": ["autoregressive", "distributed"], "window_choices": [1, 5], "others": "fixed:5"},
         [Decision(1, D), Decision(5, D), Decision(0, A)]),
    ],
)  # fmt: skip
def test_kwargs_restrict_the_action_table(kwargs: dict, expected: list[Decision]) -> None:
    for variant in ("DSD", "DSDFleet"):
        if variant == "DSDFleet":  # the fleet drives every foreground session: no `others`
            kwargs = {k: v for k, v in kwargs.items() if k != "others"}
        env = gym.make(f"dsd_gym/{variant}-v0", horizon_s=5.0, **kwargs)
        assert env.unwrapped.decisions == expected
        assert env.action_space.n == len(expected)


def test_each_action_runs_its_decision() -> None:
    """On ``ideal`` every step is one round of the agent's session: its info shows the decision."""
    env = gym.make("dsd_gym/DSD-ideal-v0", horizon_s=20.0)
    env.reset(seed=0)
    for action, decision in enumerate(env.unwrapped.decisions):
        for _ in range(3):
            _, _, _, truncated, info = env.step(action)
            assert not truncated
            assert (info["gamma"], info["mode"]) == (decision.gamma, int(decision.mode))
            assert info["accepted"] <= decision.gamma
            if decision.mode == Mode.DISTRIBUTED:
                assert info["draft_ms"] > 0
            else:  # the round runs at the cloud: nothing drafted at the edge, nothing sent
                assert info["draft_ms"] == info["uplink_ms"] == 0.0


def test_round_credit_names_the_decision_that_started_each_round() -> None:
    """Under ``round_rate`` each completed round is credited to its session's latest decision, once,
    and the step's reward is the sum of its rounds' terms."""
    env = gym.make(FLEET, horizon_s=10.0, reward="round_rate")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    latest: dict[int, int] = {}  # session -> its latest decision's step
    session_of: dict[int, int] = {}
    credited: list[int] = []
    truncated = False
    while not truncated:
        _, reward, _, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        step, session, rounds = env.unwrapped.credit
        assert step == len(session_of)
        session_of[step] = session
        latest[session] = step
        for decided, _term in rounds:
            assert latest[session_of[decided]] == decided, "a round ends before its session decides again"
        credited += [decided for decided, _ in rounds]
        assert reward == pytest.approx(sum(term for _, term in rounds), abs=1e-9)
    assert len(credited) == len(set(credited)) > len(session_of) // 2
    assert len({session_of[d] for d in credited}) == 8, "every session's rounds are credited"
