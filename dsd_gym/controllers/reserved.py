"""Reserved policy spec: ``sb3:PATH`` (a Stable-Baselines3 policy file).

Registered now so every listing names it and a spec using it fails with one line that says why; the
RL work brings its builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsd_gym.controllers.registry import register
from dsd_gym.errors import UserError
from dsd_gym.sim.controller import ControllerFactory

if TYPE_CHECKING:
    from dsd_gym.config.schema import Scenario


def _reserved(name: str):
    def build(arg: str, scenario: Scenario) -> ControllerFactory:
        spec = f"{name}:{arg}" if arg else name
        raise UserError(
            f"policy {spec!r}: Stable-Baselines3 policies arrive with the RL issue; not available yet"
        )

    return build


register("sb3", "sb3:PATH", "reserved: a Stable-Baselines3 policy file (not yet)")(_reserved("sb3"))
