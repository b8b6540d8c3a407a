"""Window controllers and the policy specs that name them.

A policy spec is a string accepted everywhere a policy is named: ``fixed:G`` (distributed, window G),
``fused:G`` (the cloud drafts G tokens itself) and ``autoregressive`` (no speculation).

>>> from dsd_gym.config import load_scenario
>>> factory = parse_policy("fixed:4", load_scenario("ideal"))
>>> factory(None).decide(None)
Decision(gamma=4, mode=<Mode.DISTRIBUTED: 0>)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsd_gym.controllers.fixed import FixedController
from dsd_gym.errors import UserError
from dsd_gym.sim.controller import ControllerFactory, Decision, Mode

if TYPE_CHECKING:
    from dsd_gym.config.schema import Scenario

SPECS = "fixed:G, fused:G, autoregressive"


def parse_policy(spec: str, scenario: Scenario) -> ControllerFactory:
    """A factory of controllers for ``spec``, checked against what ``scenario`` allows."""
    name, _, arg = spec.strip().partition(":")
    choices = scenario.control.window_choices
    modes = scenario.control.modes
    if name in ("fixed", "fused"):
        mode = Mode.DISTRIBUTED if name == "fixed" else Mode.FUSED
        if not arg.strip().isdigit():
            raise UserError(f"policy {spec!r}: the window must be a positive integer; allowed: {SPECS}")
        gamma = int(arg)
        if gamma not in choices:
            raise UserError(
                f"policy {spec!r}: window {gamma} is not among the scenario's window choices {choices}"
            )
    elif name == "autoregressive" and not arg:
        mode, gamma = Mode.AUTOREGRESSIVE, 0
    else:
        raise UserError(f"unknown policy {spec!r}; allowed: {SPECS}")
    if mode.name.lower() not in modes:
        raise UserError(
            f"policy {spec!r}: mode {mode.name.lower()} is not enabled; the scenario allows {modes}"
        )
    decision = Decision(gamma, mode)
    return lambda group: FixedController(decision)


__all__ = ["SPECS", "FixedController", "parse_policy"]
