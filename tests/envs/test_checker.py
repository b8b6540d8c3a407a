"""Every registered id passes Gymnasium's and Stable-Baselines3's env checkers.

Warnings are recorded and any warning that is not on ``ALLOWED`` fails the test, so a new warning
from a checker (a dtype, a bound, a seeding problem) cannot slip by as noise.
"""

from __future__ import annotations

import re
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import dsd_gym  # noqa: F401  (registers the ids)
from dsd_gym.envs.dsd_env import DSDEnv, DSDFleetEnv
from dsd_gym.envs.registration import env_ids, scenario_names

HORIZON_S = 5.0

# Each entry: (warning category, regex on the message). Keep this list short; justify every entry.
ALLOWED: list[tuple[type[Warning], str]] = [
    # Gymnasium's check_env says so whenever it is handed a wrapped env. We check the env exactly as
    # `gym.make` returns it (OrderEnforcing + PassiveEnvChecker around the env) on purpose, because
    # that is what users train on; the unwrapped env is checked separately with no allowance at all.
    (UserWarning, r"is different from the unwrapped version"),
]


def _unexpected(caught: list[warnings.WarningMessage], allowed: list[tuple[type[Warning], str]]) -> list[str]:
    return [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if not any(issubclass(w.category, cat) and re.search(rx, str(w.message)) for cat, rx in allowed)
    ]


def test_env_ids_cover_every_scenario_in_both_variants() -> None:
    ids = env_ids()
    assert len(ids) == len(set(ids)) == 2 * (len(scenario_names()) + 1)
    for name in scenario_names():
        assert f"dsd_gym/DSD-{name}-v0" in ids and f"dsd_gym/DSDFleet-{name}-v0" in ids
    for env_id in ids:
        assert env_id in gym.registry


@pytest.mark.parametrize("env_id", env_ids())
def test_checkers_pass(env_id: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make(env_id, horizon_s=HORIZON_S)
        expected = DSDFleetEnv if "DSDFleet" in env_id else DSDEnv
        assert type(env.unwrapped) is expected
        gym_check_env(env.unwrapped)  # no allowance: the bare env must be warning-free
        unwrapped_warnings = list(caught)
        gym_check_env(env)  # as users get it: renders with every declared mode via env.spec
        sb3_check_env(env, warn=True)
        env.close()
    assert not _unexpected(unwrapped_warnings, []), unwrapped_warnings
    assert not _unexpected(caught, ALLOWED)


def test_render_ansi_is_one_line_per_step() -> None:
    env = gym.make("dsd_gym/DSD-ideal-v0", horizon_s=HORIZON_S, render_mode="ansi")
    env.reset(seed=0)
    env.step(0)
    text = env.render()
    assert isinstance(text, str) and "\n" not in text and "session 0" in text
    quiet = gym.make("dsd_gym/DSD-ideal-v0", horizon_s=HORIZON_S)
    quiet.reset(seed=0)
    assert quiet.render() is None


@pytest.mark.parametrize("cls", [DSDEnv, DSDFleetEnv])
def test_docstring_is_the_manual(cls: type) -> None:
    """The class docstring has Gymnasium's reference sections, in order."""
    doc = cls.__doc__
    sections = [
        "## Description", "## Action Space", "## Observation Space", "## Rewards", "## Starting State",
        "## Episode End", "## Arguments", "## Version History",
    ]  # fmt: skip
    positions = [doc.index(s) for s in sections]
    assert positions == sorted(positions)
