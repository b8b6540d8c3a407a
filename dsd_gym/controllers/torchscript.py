"""``torchscript:PATH``: a controller exported as one TorchScript file (DESIGN §7), run in the simulator.

The file is loaded once per spec with :func:`dsd_gym.runtime.load_controller` (plain
``torch.jit.load`` plus its ``metadata.json``; nothing of the package that wrote it) and checked
against the scenario when the spec is parsed: every window the file can return must be among the
scenario's window choices and every mode it may choose enabled. Each session keeps its own state row
and calls the module's pure, batched ``decide`` on batch 1 once per decision, with the session's
telemetry vector (``session.telemetry.vector()``: raw units, clipped, the order of
``dsd_gym.telemetry``) — exactly what a real runtime feeds the file — on one torch thread
(:func:`one_thread`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dsd_gym.controllers.registry import file_cache, load_spec_file, register
from dsd_gym.errors import UserError
from dsd_gym.runtime import load_controller
from dsd_gym.sim.controller import ControllerFactory, Decision, Mode

if TYPE_CHECKING:
    from dsd_gym.config.schema import Scenario

__all__ = ["TorchScriptController", "one_thread"]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the body on one torch thread and restore the caller's count after it.

    Batch-1 inference of a small network is faster on one thread than on torch's default (one per
    core), and the simulator's processes share the cores; the caller's setting is left as it was.
    """
    import torch  # lazy: only a learned controller needs torch

    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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
        with one_thread():
            gamma, mode, self.state = self.module.decide(features, self.state)
        return Decision(int(gamma[0]), Mode(int(mode[0])))


load_cached = file_cache(load_controller)


@register("torchscript", "torchscript:PATH", "a controller exported as TorchScript (WC-DNN, dsd_gym.runtime)")
def _torchscript(arg: str, scenario: Scenario) -> ControllerFactory:
    spec = f"torchscript:{arg}"
    controller = load_spec_file("torchscript", arg, "give the exported file, torchscript:PATH", load_cached)
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
