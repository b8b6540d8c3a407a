"""Run a scenario under a policy: the one place that wires controllers and telemetry into the sim.

Two ways to run a policy: ``fleet`` (every foreground session runs it; what ``simulate`` does) and
``ego`` (the first foreground session runs it, the other foreground sessions the scenario's
``control.policy``). ``Simulation.meter`` measures a chosen subset of sessions — the ego, or the
foreground — by the system's own metric definitions.

>>> from dsd_gym.config import load_scenario
>>> summary = simulate(load_scenario("ideal", ["duration_s=60"]), "fixed:2")
>>> summary["policy"], round(summary["tokens_per_round"], 1)
('fixed:2', 2.2)
>>> sim = build(load_scenario("ideal", ["duration_s=60"]), "fixed:2", mode="ego")
>>> ego = ego_session(sim)
>>> meter = sim.meter(lambda session: session is ego)
>>> system = sim.run()
>>> round(meter.summary(len(sim.targets))["tokens_per_round"], 1)  # the ego's own rounds
2.2
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dsd_gym.config import configs_dir, load_profiles
from dsd_gym.config.schema import DeviceGroup, Scenario
from dsd_gym.controllers import parse_policy
from dsd_gym.errors import UserError
from dsd_gym.sim import RoundRecord, Session, Simulation
from dsd_gym.sim.controller import ControllerFactory
from dsd_gym.telemetry import TelemetryTracker

MODES = ("fleet", "ego")


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


def check_ego(scenario: Scenario, where: str, remedy: str) -> None:
    """Ego mode's needs, one line naming ``where`` and ``remedy`` if unmet: a closed-loop workload (the
    ego is a session that lives for the whole run) and a valid ``control.policy`` for the others."""
    if scenario.workload.kind != "closed_loop":
        raise UserError(
            f"{where}: ego mode needs a closed_loop workload (the ego is a session that lives for the "
            f"whole run); workload.kind is {scenario.workload.kind!r}; {remedy}"
        )
    try:
        parse_policy(scenario.control.policy, scenario)
    except UserError as exc:
        raise UserError(f"{where}: control.policy (the other sessions in ego mode): {exc}") from None


def ego_controllers(scenario: Scenario, policy: str | None) -> Callable[[DeviceGroup], Any]:
    """The first foreground session runs ``policy``; the other foreground sessions the scenario's
    ``control.policy``; background groups their own.

    The first foreground session is the first one built: on a closed-loop workload, the first session
    of the first device of the first group without a policy (``ego_session`` finds it).
    """
    ego = parse_policy(policy or scenario.control.policy, scenario)
    others = controllers_for(scenario, scenario.control.policy)
    claimed = False

    def build(group: DeviceGroup) -> Any:
        nonlocal claimed
        if group.policy is None and not claimed:
            claimed = True
            return ego(group)
        return others(group)

    return build


def telemetry_factory(scenario: Scenario) -> TelemetryTracker:
    return TelemetryTracker(scenario.telemetry.smoothing)


def build(
    scenario: Scenario,
    policy: str | None = None,
    seed: int | None = None,
    round_hook: Callable[[RoundRecord, Session], None] | None = None,
    mode: str = "fleet",
) -> Simulation:
    """A ready-to-run simulation of ``scenario`` with telemetry on every session.

    ``mode``: ``fleet`` (every foreground session runs ``policy``) or ``ego`` (only the first one
    does; see :func:`ego_controllers`). Ego mode needs a closed-loop workload: the ego is a session
    that lives for the whole run, and open-loop sessions serve one request each.
    """
    if mode not in MODES:
        raise UserError(f"mode {mode!r} is unknown; allowed: {', '.join(MODES)}")
    if mode == "ego":
        if scenario.workload.kind != "closed_loop":
            raise UserError(
                f"scenario {scenario.name!r}: ego mode needs a closed_loop workload (the ego is a session "
                f"that lives for the whole run); workload.kind is {scenario.workload.kind!r}; use fleet mode"
            )
        controllers = ego_controllers(scenario, policy)
    else:
        controllers = controllers_for(scenario, policy)
    return simulation(scenario, controllers, seed, round_hook)


def simulation(
    scenario: Scenario,
    controllers: Callable[[DeviceGroup], Any],
    seed: int | None = None,
    round_hook: Callable[[RoundRecord, Session], None] | None = None,
) -> Simulation:
    """A ready-to-run simulation whose sessions get their controllers from ``controllers(group)``
    (what :func:`build` makes from a policy spec; dataset collection brings its own), with
    telemetry on every session whose controller observes and the shipped acceptance profiles."""
    profiles = load_profiles(configs_dir())["acceptance"]
    return Simulation(
        scenario,
        controllers,
        seed=seed,
        telemetry=telemetry_factory,
        round_hook=round_hook,
        acceptance_profiles={name: p.process for name, p in profiles.items()},
    )


def ego_session(sim: Simulation) -> Session:
    """The ego of a simulation built with ``mode="ego"``: its first foreground session."""
    return next(s for s in sim.sessions if not s.background)


def simulate(scenario: Scenario, policy: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """Run to the scenario's duration and return the metrics summary (see ``dsd_gym.sim.metrics``)."""
    summary = build(scenario, policy, seed).run()
    summary["policy"] = policy or scenario.control.policy
    return summary
