"""The simulated edge-cloud DSD system (DESIGN §3). Imports numpy and simpy only."""

from dsd_gym.sim.acceptance import AcceptancePath, acceptance_path, expected_tokens_per_round
from dsd_gym.sim.controller import Controller, ControllerFactory, Decision, Mode
from dsd_gym.sim.records import Request, RoundRecord
from dsd_gym.sim.session import Session
from dsd_gym.sim.system import Simulation

__all__ = [
    "AcceptancePath",
    "Controller",
    "Decision",
    "ControllerFactory",
    "Mode",
    "Request",
    "RoundRecord",
    "Session",
    "Simulation",
    "acceptance_path",
    "expected_tokens_per_round",
]
