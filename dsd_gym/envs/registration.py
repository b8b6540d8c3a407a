"""Registered ids, generated from one list: the shipped scenarios × {ego, fleet}.

``dsd_gym/DSD-v0`` (the default scenario) and ``dsd_gym/DSD-<scenario>-v0`` for every file in
``configs/scenarios/``; the fleet variants are ``dsd_gym/DSDFleet-v0`` and
``dsd_gym/DSDFleet-<scenario>-v0``. They differ only in kwargs (CompilerGym's habit).
"""

from __future__ import annotations

import gymnasium as gym

from dsd_gym.config.loader import configs_dir

DEFAULT_SCENARIO = "metro-5g"
VARIANTS = (("DSD", "dsd_gym.envs.dsd_env:DSDEnv"), ("DSDFleet", "dsd_gym.envs.dsd_env:DSDFleetEnv"))


def scenario_names() -> list[str]:
    return sorted(p.stem for p in (configs_dir() / "scenarios").glob("*.yaml"))


def env_ids() -> list[str]:
    """Every id this package registers, in a fixed order."""
    return [f"dsd_gym/{prefix}-v0" for prefix, _ in VARIANTS] + [
        f"dsd_gym/{prefix}-{name}-v0" for prefix, _ in VARIANTS for name in scenario_names()
    ]


def register_envs() -> None:
    for prefix, entry_point in VARIANTS:
        specs = [(f"dsd_gym/{prefix}-v0", DEFAULT_SCENARIO)]
        specs += [(f"dsd_gym/{prefix}-{name}-v0", name) for name in scenario_names()]
        for env_id, scenario in specs:
            if env_id not in gym.registry:
                gym.register(env_id, entry_point=entry_point, kwargs={"scenario": scenario})
