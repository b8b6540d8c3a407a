"""The decision point: before every round a session asks its controller for a :class:`Decision`.

A deployable controller reads only ``session.telemetry`` (the edge-observable features of
``dsd_gym.telemetry``); oracles may read the rest of the session (its acceptance path, link and
target) and are privileged by definition. A controller may also return an event (a SimPy event, or
the lighter :class:`~dsd_gym.sim.schedule.Call`): the session adds a callback to it, waits, and uses
its value — that is how the Gymnasium env hands decisions in from outside.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Protocol

import simpy

if TYPE_CHECKING:
    from dsd_gym.sim.schedule import Call
    from dsd_gym.sim.session import Session


class Mode(IntEnum):
    DISTRIBUTED = 0  # draft on the edge, verify in the cloud: one network round trip per round
    FUSED = 1  # the cloud drafts and verifies; tokens stream to the edge
    AUTOREGRESSIVE = 2  # no speculation: one target token per iteration

    @classmethod
    def parse(cls, name: str) -> Mode:
        return cls[name.upper()]


@dataclass(frozen=True, slots=True)
class Decision:
    gamma: int
    mode: Mode = Mode.DISTRIBUTED


class Controller(Protocol):
    """``observes``: whether the controller reads telemetry (the session skips tracking it if not)."""

    observes: bool

    def decide(self, session: Session) -> Decision | simpy.Event | Call: ...


ControllerFactory = Callable[[Any], Controller]
"""Builds the controller of a new session; receives the session's device group config."""
