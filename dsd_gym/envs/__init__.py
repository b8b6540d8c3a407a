"""Gymnasium environments over the simulator (DESIGN §5). Registered on ``import dsd_gym``."""

from __future__ import annotations

from typing import Any

__all__ = ["DSDEnv", "DSDFleetEnv", "ScenarioSampler"]


def __getattr__(name: str) -> Any:  # lazy: `import dsd_gym` must not import the env machinery
    if name in ("DSDEnv", "DSDFleetEnv"):
        from dsd_gym.envs import dsd_env

        return getattr(dsd_env, name)
    if name == "ScenarioSampler":
        from dsd_gym.envs.randomization import ScenarioSampler

        return ScenarioSampler
    raise AttributeError(name)
