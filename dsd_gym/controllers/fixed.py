"""Fixed decisions: ``fixed:G``, ``fused:G`` and ``autoregressive`` — the baselines of every table."""

from __future__ import annotations

from typing import Any

from dsd_gym.sim.controller import Decision


class FixedController:
    """The same decision every round, whatever the telemetry says."""

    __slots__ = ("decision",)
    observes = False  # the decision never depends on telemetry

    def __init__(self, decision: Decision) -> None:
        self.decision = decision

    def decide(self, session: Any) -> Decision:
        return self.decision
