"""The RL algorithms ``dsd-gym train rl --algo`` accepts: Stable-Baselines3 and sb3-contrib classes.

The table lives in dsd_gym because both sides of an RL run need it: ``agents`` trains with it and
``sb3:PATH`` (:mod:`dsd_gym.controllers.sb3`) loads a run's model with it, and dsd_gym never imports
``agents`` (DESIGN §2). Imports are lazy (``load``): naming an algorithm costs nothing until a run
needs its class.

``recurrent``: the policy keeps an LSTM state between decisions (``predict(obs, state,
episode_start)``); the telemetry reaches the edge a round trip late, so memory may help.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from dsd_gym.errors import UserError

__all__ = ["ALGOS", "Algo", "algo"]


@dataclass(frozen=True)
class Algo:
    name: str
    module: str
    cls: str
    recurrent: bool = False
    on_policy: bool = True
    summary: str = ""

    def load(self) -> Any:
        """The algorithm class."""
        return getattr(importlib.import_module(self.module), self.cls)


ALGOS: dict[str, Algo] = {
    a.name: a
    for a in (
        Algo("ppo", "stable_baselines3", "PPO", summary="proximal policy optimisation"),
        Algo("a2c", "stable_baselines3", "A2C", summary="advantage actor-critic"),
        Algo("dqn", "stable_baselines3", "DQN", on_policy=False, summary="deep Q-network"),
        Algo(
            "recurrent-ppo", "sb3_contrib", "RecurrentPPO", recurrent=True,
            summary="PPO with an LSTM policy (sb3-contrib)",
        ),
        Algo("qrdqn", "sb3_contrib", "QRDQN", on_policy=False, summary="quantile-regression DQN (contrib)"),
    )
}  # fmt: skip


def algo(name: str) -> Algo:
    """The algorithm called ``name``; one line naming the allowed ones otherwise."""
    try:
        return ALGOS[name]
    except KeyError:
        raise UserError(f"unknown algorithm {name!r}; allowed: {', '.join(ALGOS)}") from None
