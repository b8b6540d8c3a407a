"""Fixed decisions: ``fixed:G``, ``fused:G`` and ``autoregressive`` — the baselines of every table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dsd_gym.controllers.registry import register, usages
from dsd_gym.errors import UserError
from dsd_gym.sim.controller import ControllerFactory, Decision, Mode

if TYPE_CHECKING:
    from dsd_gym.config.schema import Scenario


class FixedController:
    """The same decision every round, whatever the telemetry says."""

    __slots__ = ("decision",)
    observes = False  # the decision never depends on telemetry

    def __init__(self, decision: Decision) -> None:
        self.decision = decision

    def decide(self, session: Any) -> Decision:
        return self.decision


def fixed_policies(scenario: Scenario) -> list[str]:
    """Every fixed decision the scenario allows, as policy specs: ``fixed:G`` and ``fused:G`` over its
    window choices, and ``autoregressive`` — what ``best-fixed`` sweeps."""
    return list(fixed_decisions(scenario))


def fixed_decisions(scenario: Scenario) -> dict[str, Decision]:
    """:func:`fixed_policies` (in that order), each with the decision it takes every round."""
    modes, windows = scenario.control.modes, scenario.control.window_choices
    specs = {f"fixed:{g}": Decision(g, Mode.DISTRIBUTED) for g in windows} if "distributed" in modes else {}
    specs.update({f"fused:{g}": Decision(g, Mode.FUSED) for g in windows} if "fused" in modes else {})
    if "autoregressive" in modes:
        specs["autoregressive"] = Decision(0, Mode.AUTOREGRESSIVE)
    return specs


def check_mode(spec: str, mode: Mode, scenario: Scenario) -> None:
    if mode.name.lower() not in scenario.control.modes:
        allowed = scenario.control.modes
        raise UserError(
            f"policy {spec!r}: mode {mode.name.lower()} is not enabled; the scenario allows {allowed}"
        )


def window_argument(spec: str, arg: str, scenario: Scenario) -> int:
    """The ``G`` of ``name:G``: an integer among the scenario's window choices."""
    choices = scenario.control.window_choices
    if not arg.isdigit():
        raise UserError(f"policy {spec!r}: the window must be a positive integer; allowed: {usages()}")
    gamma = int(arg)
    if gamma not in choices:
        raise UserError(
            f"policy {spec!r}: window {gamma} is not among the scenario's window choices {choices}"
        )
    return gamma


def _fixed(mode: Mode, name: str):
    def build(arg: str, scenario: Scenario) -> ControllerFactory:
        spec = f"{name}:{arg}"
        decision = Decision(window_argument(spec, arg, scenario), mode)
        check_mode(spec, mode, scenario)
        return lambda group: FixedController(decision)

    return build


register("fixed", "fixed:G", "distributed speculative decoding, window G every round")(
    _fixed(Mode.DISTRIBUTED, "fixed")
)
register("fused", "fused:G", "the cloud drafts G tokens and verifies them itself")(
    _fixed(Mode.FUSED, "fused")
)


@register("autoregressive", "autoregressive", "no speculation: one target token per iteration")
def _autoregressive(arg: str, scenario: Scenario) -> ControllerFactory:
    if arg:
        raise UserError(
            f"policy 'autoregressive:{arg}': autoregressive takes no argument; allowed: {usages()}"
        )
    check_mode("autoregressive", Mode.AUTOREGRESSIVE, scenario)
    decision = Decision(0, Mode.AUTOREGRESSIVE)
    return lambda group: FixedController(decision)
