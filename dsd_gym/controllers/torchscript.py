"""``torchscript:PATH``: a controller exported as one TorchScript file (DESIGN §7), run in the simulator.

The file is loaded once per spec with :func:`dsd_gym.runtime.load_controller` (plain
``torch.jit.load`` plus its ``metadata.json``; nothing of the package that wrote it) and checked
against the scenario when the spec is parsed: every window the file can return must be among the
scenario's window choices and every mode it may choose enabled. Each session keeps its own state row
and calls the module's pure, batched ``decide`` on batch 1 once per decision, with the session's
telemetry vector (``session.telemetry.vector()``: raw units, clipped, the order of
``dsd_gym.telemetry``) — exactly what a real runtime feeds the file.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

from dsd_gym.controllers.registry import register
from dsd_gym.errors import UserError
from dsd_gym.runtime import ExportedController, load_controller
from dsd_gym.sim.controller import ControllerFactory, Decision, Mode

if TYPE_CHECKING:
    from dsd_gym.config.schema import Scenario

__all__ = ["TorchScriptController"]


class TorchScriptController:
    """One session's use of an exported module: its state row, threaded through ``decide``."""

    __slots__ = ("module", "state", "as_tensor")
    observes = True

    def __init__(self, module: Any) -> None:
        import torch  # lazy: only a learned controller needs torch

        self.module = module
        self.state = module.initial_state(1)
        self.as_tensor = torch.from_numpy

    def decide(self, session: Any) -> Decision:
        features = self.as_tensor(session.telemetry.vector()).unsqueeze(0)
        gamma, mode, self.state = self.module.decide(features, self.state)
        return Decision(int(gamma[0]), Mode(int(mode[0])))


@functools.lru_cache(maxsize=16)
def _load(path: str, mtime_ns: int, size: int) -> ExportedController:
    """One load per file version: a spec parsed twice (checked, then run) reads the file once."""
    return load_controller(path)


def load_cached(path: str) -> ExportedController:
    try:
        stat = os.stat(path)
    except OSError:
        return load_controller(path)  # raises the loader's one-line error for a missing file
    return _load(os.path.abspath(path), stat.st_mtime_ns, stat.st_size)


@register("torchscript", "torchscript:PATH", "a controller exported as TorchScript (WC-DNN, dsd_gym.runtime)")
def _torchscript(arg: str, scenario: Scenario) -> ControllerFactory:
    spec = f"torchscript:{arg}"
    if not arg:
        raise UserError("policy 'torchscript': give the exported file, torchscript:PATH")
    try:
        controller = load_cached(arg)
    except UserError as exc:
        raise UserError(f"policy {spec!r}: {exc}") from None
    choices, modes = scenario.control.window_choices, scenario.control.modes
    if not set(controller.window_choices) <= set(choices):
        raise UserError(
            f"policy {spec!r}: the file's window choices {controller.window_choices} are not all among "
            f"the scenario's control.window_choices {choices}"
        )
    if not set(controller.modes) <= set(modes):
        raise UserError(
            f"policy {spec!r}: the file may choose modes {controller.modes}; the scenario's "
            f"control.modes allow {modes}"
        )
    module = controller.module
    return lambda group: TorchScriptController(module)
