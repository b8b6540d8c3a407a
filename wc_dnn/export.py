"""Export the WC-DNN with its normalisation and AWC as ONE TorchScript file (DESIGN §7).

:class:`WCDNNController` chains :class:`~wc_dnn.model.FeatureNorm`, :class:`~wc_dnn.model.WindowNet`
and :class:`~wc_dnn.awc.AWC`; :func:`export_controller` scripts it (``torch.jit.script``) and saves it
with ``metadata.json`` inside. The file's format and the scripted module's contract —
``decide(features [B, F], state [B, S]) -> (gamma [B], mode [B], new_state [B, S])``,
``initial_state(batch)``, ``forward(features [F]) -> (gamma, mode)`` with internal state, ``reset()``
— are documented in :mod:`dsd_gym.runtime.exported`, which also loads the file
(:func:`dsd_gym.runtime.load_controller`): the loader lives in dsd_gym so the ``torchscript:PATH``
policy can use it, and wc_dnn only writes.

>>> import tempfile, os
>>> from wc_dnn.awc import AWCConfig
>>> from wc_dnn.model import FeatureNorm, WindowNet, WindowNetConfig
>>> _ = torch.manual_seed(0)
>>> controller = WCDNNController(FeatureNorm(), WindowNet(WindowNetConfig()), AWCConfig())
>>> path = export_controller(controller, os.path.join(tempfile.mkdtemp(), "controller.pt"))
>>> from dsd_gym.runtime import load_controller
>>> loaded = load_controller(path)
>>> loaded.kind, loaded.window_choices
('wc-dnn', [1, 2, 3, 4, 5, 6, 7, 8])
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dsd_gym.runtime import FORMAT, FORMAT_VERSION, METADATA_FILE, feature_metadata
from dsd_gym.runtime.exported import MODE_CODES
from dsd_gym.telemetry import FEATURES
from wc_dnn.awc import AWC, STATE_SIZE, AWCConfig
from wc_dnn.model import FeatureNorm, WindowNet
from wc_dnn.provenance import code_version

__all__ = ["KIND", "WCDNNController", "controller_metadata", "decision_latency_us", "export_controller"]

KIND = "wc-dnn"
INPUT = "dsd_gym.telemetry vector: raw units, float32, clipped to each feature's [low, high], in this order"


class WCDNNController(nn.Module):
    """Normalisation → WC-DNN → AWC, batched (``decide``) and single-session (``forward``).

    Works on copies of ``norm`` and ``net`` (gradients off, eval mode), so exporting never changes the
    training objects and the scripted module records no autograd graph. Two constants are folded into
    the copy's layers, each saving a tensor operation per decision: the normalisation into the first
    layer, W' = W / std (column-wise), b' = b − W' · mean, so W' · x + b' = W · ((x − mean) / std) + b;
    and γ_default into the read-out's bias, b_Δ' = b_Δ + γ_default. ``norm`` itself is kept for the
    metadata.
    """

    def __init__(self, norm: FeatureNorm, net: WindowNet, awc: AWCConfig) -> None:
        super().__init__()
        self.norm = copy.deepcopy(norm).eval().requires_grad_(False)
        self.net = copy.deepcopy(net).eval().requires_grad_(False)
        with torch.no_grad():
            stem = self.net.stem
            stem.weight.div_(self.norm.std.to(stem.weight.dtype))
            stem.bias.sub_(stem.weight @ self.norm.mean.to(stem.weight.dtype))
            self.net.delta.bias.add_(self.net.default_gamma)
            self.net.default_gamma = 0.0  # adding 0.0 is exact: decide's γ̂ is the read-out's output
        self.awc = AWC(awc)
        self.awc_config = awc
        self.session = [0.0] * STATE_SIZE  # forward's state (one session)

    @torch.jit.export
    def decide(self, features: Tensor, state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """features [B, F] float32, state [B, S] float32 → (γ [B] int64, mode [B] int64, new state)."""
        gamma_hat, logits = self.net(features)
        return self.awc(gamma_hat, logits, state)

    @torch.jit.export
    def initial_state(self, batch: int) -> Tensor:
        return self.awc.initial_state(batch)

    @torch.jit.export
    def reset(self) -> None:
        """Forget the single-session state of ``forward`` (a new session starts)."""
        self.session = [0.0] * self.awc.state_size

    def forward(self, features: Tensor) -> tuple[int, int]:
        """One session's decision on features [F]; the state stays in the module.

        The same computation as ``decide`` on batch 1 (the network on [1, F], then ``AWC.step``), with
        fewer tensor operations: no stacking into batch tensors, and no zero logits without a mode head.
        """
        h = self.net.trunk(features.unsqueeze(0))
        gamma_hat = float(self.net.delta(h))
        if self.net.has_mode_head:
            logit_row: list[float] = self.net.modes(h)[0].tolist()
        else:
            logit_row = [0.0] * self.net.n_modes
        gamma, mode, self.session = self.awc.step(gamma_hat, logit_row, self.session)
        return gamma, mode


def controller_metadata(controller: WCDNNController, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``metadata.json`` of ``controller`` (format: :mod:`dsd_gym.runtime.exported`).

    ``inputs``: what the controller was made from (checkpoint, training config, dataset), JSON-able.
    """
    config = controller.net.config
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "features": feature_metadata(),
        "input": INPUT,
        "window_choices": list(controller.awc_config.window_choices),
        "modes": list(controller.awc_config.modes),
        "mode_codes": dict(MODE_CODES),
        "state_size": STATE_SIZE,
        "awc": controller.awc_config.as_dict(),
        "model": {
            "architecture": "residual SiLU MLP predicting Δ from default_gamma",
            "hidden": config.hidden,
            "depth": config.depth,
            "default_gamma": config.default_gamma,
            "mode_head": config.mode_head,
        },
        "normalization": {
            "rule": "z = (x - mean) / std",
            "mean": controller.norm.mean.tolist(),
            "std": controller.norm.std.tolist(),
        },
        "provenance": {
            "code_version": code_version(),
            "torch_version": torch.__version__,
            "created_by": "wc_dnn.export.export_controller",
            "inputs": inputs or {},
        },
    }


def export_controller(
    controller: WCDNNController, out: str | os.PathLike[str], inputs: dict[str, Any] | None = None
) -> Path:
    """Script ``controller`` and write it with its metadata to ``out`` atomically; returns the path.

    The single-session state is reset first, so the file starts a fresh session.
    """
    out = Path(out)
    controller.reset()
    scripted = torch.jit.script(controller)
    metadata = json.dumps(controller_metadata(controller, inputs), indent=1, sort_keys=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.jit.save(scripted, tmp, _extra_files={METADATA_FILE: metadata})
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def decision_latency_us(
    module: Any, features: Tensor | None = None, calls: int = 20_000, chunk: int = 100
) -> dict:
    """Median µs per single-session decision (``module(features)``), batch 1, one thread.

    Times ``calls`` decisions in chunks of ``chunk`` (a chunk's time / chunk; the timer's own cost
    is then negligible) after a warm-up, and reports the median and the 10th/90th percentiles over
    chunks. Also times a ``decide`` on batch 1 and a bare call of an empty scripted method, which
    separates TorchScript's per-call overhead from the work. ``module`` is the loaded (or scripted)
    controller; ``features`` defaults to a zero vector. The thread count is restored afterwards.
    """
    features = torch.zeros(len(FEATURES)) if features is None else features
    batch, state = features.unsqueeze(0), module.initial_state(1)
    empty = torch.jit.script(_Empty())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timings = {
            "forward_us": _chunked(lambda: module(features), calls, chunk),
            "decide_batch1_us": _chunked(lambda: module.decide(batch, state), calls, chunk),
            "empty_script_call_us": _chunked(lambda: empty(features), calls, chunk),
        }
        module.reset()
    finally:
        torch.set_num_threads(threads)
    return {"calls": calls, "threads": 1, **timings}


class _Empty(nn.Module):
    def forward(self, features: Tensor) -> Tensor:
        return features


def _chunked(call: Any, calls: int, chunk: int) -> dict[str, float]:
    for _ in range(min(calls, 1000)):
        call()
    per_call = []
    for _ in range(max(1, calls // chunk)):
        start = time.perf_counter_ns()
        for _ in range(chunk):
            call()
        per_call.append((time.perf_counter_ns() - start) / chunk / 1e3)
    deciles = statistics.quantiles(per_call, n=10) if len(per_call) > 1 else per_call * 9
    return {"median": round(statistics.median(per_call), 2), "p10": round(deciles[0], 2),
            "p90": round(deciles[-1], 2)}  # fmt: skip
