"""Reserved policy specs: ``torchscript:PATH`` and ``sb3:PATH`` (exported learned controllers).

They are registered now so every listing names them and a spec using them fails with one line that
says why; the WC-DNN work brings their builders.
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
            f"policy {spec!r}: exported controllers arrive with the WC-DNN issue; not available yet"
        )

    return build


register("torchscript", "torchscript:PATH", "reserved: a TorchScript-exported controller (not yet)")(
    _reserved("torchscript")
)
register("sb3", "sb3:PATH", "reserved: a Stable-Baselines3 policy file (not yet)")(_reserved("sb3"))
