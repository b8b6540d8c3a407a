"""Run a scenario under a policy: the one place that wires controllers and telemetry into the sim.

>>> from dsd_gym.config import load_scenario
>>> summary = simulate(load_scenario("ideal", ["duration_s=60"]), "fixed:2")
>>> summary["policy"], round(summary["tokens_per_round"], 1)
('fixed:2', 2.2)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dsd_gym.config import configs_dir, load_profiles
from dsd_gym.config.schema import DeviceGroup, Scenario
from dsd_gym.controllers import parse_policy
from dsd_gym.sim import RoundRecord, Session, Simulation
from dsd_gym.sim.controller import ControllerFactory
from dsd_gym.telemetry import TelemetryTracker


def controllers_for(scenario: Scenario, policy: str | None) -> Callable[[DeviceGroup], Any]:
    """Foreground sessions run ``policy`` (default: the scenario's); background groups their own."""
    foreground = parse_policy(policy or scenario.control.policy, scenario)
    background: dict[str, ControllerFactory] = {
        g.name: parse_policy(g.policy, scenario) for g in scenario.devices if g.policy is not None
    }

    def build(group: DeviceGroup) -> Any:
        factory = background.get(group.name, foreground) if group.policy is not None else foreground
        return factory(group)

    return build


def telemetry_factory(scenario: Scenario) -> TelemetryTracker:
    return TelemetryTracker(scenario.telemetry.smoothing)


def build(
    scenario: Scenario,
    policy: str | None = None,
    seed: int | None = None,
    round_hook: Callable[[RoundRecord, Session], None] | None = None,
) -> Simulation:
    """A ready-to-run simulation of ``scenario`` with telemetry on every session."""
    profiles = load_profiles(configs_dir())["acceptance"]
    return Simulation(
        scenario,
        controllers_for(scenario, policy),
        seed=seed,
        telemetry=telemetry_factory,
        round_hook=round_hook,
        acceptance_profiles={name: p.process for name, p in profiles.items()},
    )


def simulate(scenario: Scenario, policy: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """Run to the scenario's duration and return the metrics summary (see ``dsd_gym.sim.metrics``)."""
    summary = build(scenario, policy, seed).run()
    summary["policy"] = policy or scenario.control.policy
    return summary
