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
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dsd_gym.errors import UserError
from dsd_gym.runtime.latency import decision_latency_us
from dsd_gym.runtime.write import metadata_header, provenance, save_controller
from dsd_gym.sim.controller import Mode
from wc_dnn.awc import AWC, MODE_NAMES, STATE_SIZE, AWCConfig
from wc_dnn.checkpoint import load_checkpoint
from wc_dnn.config import parse_config
from wc_dnn.dataset import decisions_from_records
from wc_dnn.model import FeatureNorm, WindowNet, WindowNetConfig, average_networks

__all__ = [
    "KIND",
    "WCDNNController",
    "controller_from_checkpoint",
    "controller_metadata",
    "decision_latency_us",
    "export_checkpoint",
    "export_checkpoints",
    "export_controller",
]

KIND = "wc-dnn"


class WCDNNController(nn.Module):
    """Normalisation → WC-DNN → AWC, batched (``decide``) and single-session (``forward``).

    Works on copies of ``norm`` and ``net`` (gradients off, eval mode), so exporting never changes the
    training objects and the scripted module records no autograd graph. Two constants are folded into
    the copy's layers, each saving a tensor operation per decision: the normalisation into the first
    layer, W' = W / std (column-wise), b' = b − W' · mean, so W' · x + b' = W · ((x − mean) / std) + b;
    and γ_default into the read-out's bias, b_Δ' = b_Δ + γ_default. ``norm`` itself is kept for the
    metadata. For ``forward`` (one session, the runtime's hot path) the residual blocks' outer biases
    are carried into the next layers' biases (in a copy of the blocks) and the Δ and mode read-outs
    are stacked into one matrix, so a decision is one matrix-vector product per layer and one
    ``tolist``.
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
            # forward's network carries h̃_k = h_k − c_k, c_k = b_1,outer + … + b_k,outer, so a block
            # is h̃_k = h̃_{k−1} + W_k,outer · SiLU(W_k,inner · h̃_{k−1} + b_k,inner + W_k,inner · c_{k−1})
            # and a read-out is W · h̃ + (b + W · c): one operation per block fewer.
            self.blocks = copy.deepcopy(self.net.blocks)
            carried = torch.zeros_like(stem.bias)
            for block in self.blocks:
                block.inner.bias.add_(block.inner.weight @ carried)
                carried += block.outer.bias
                block.outer.bias.zero_()  # unused by forward
            heads = [self.net.delta] + ([self.net.modes] if self.net.has_mode_head else [])
            self.head_weight = torch.cat([head.weight for head in heads])  # [1 (+ 3 modes), hidden]
            self.head_bias = torch.cat([head.bias for head in heads]) + self.head_weight @ carried
            # The last block's output feeds only the read-out, which is linear: W · (h̃ + W_outer · s)
            # = W · h̃ + (W · W_outer) · s, a [heads, hidden] product instead of a [hidden, hidden] one
            # (4 µs of a mean of four's ~20 on this machine).
            self.last = nn.ModuleList()  # the last block's inner layer; empty without blocks
            self.head_outer = torch.zeros(0)  # W · W_outer of the last block
            if len(self.blocks):
                self.last.append(self.blocks[-1].inner)
                self.head_outer = self.head_weight @ self.blocks[-1].outer.weight
                self.blocks = self.blocks[:-1]
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

        The same network and ``AWC.step`` as ``decide`` on batch 1, in fewer tensor operations: each
        layer is one ``addmv`` on the [F] vector (no batch dimension, no transposed weight views), the
        residual blocks' outer biases are carried into the next layers' biases (see ``__init__``), both
        read-outs are one product, and there are no zero logits without a mode head. The two paths may
        round γ̂ differently in its last bits, far below AWC's 2⁻¹² grid (rule 2 of :mod:`wc_dnn.awc`):
        their decisions agree (tests/wc_dnn/test_export.py checks it on recorded telemetry).
        """
        stem = self.net.stem
        h = nn.functional.silu(torch.addmv(stem.bias, stem.weight, features), inplace=True)
        for block in self.blocks:  # h̃, with the outer biases carried into the next layers (__init__)
            h = torch.addmv(
                h,
                block.outer.weight,
                nn.functional.silu(torch.addmv(block.inner.bias, block.inner.weight, h), inplace=True),
            )
        out_t = torch.addmv(self.head_bias, self.head_weight, h)
        for inner in self.last:  # the last block, folded into the read-out (__init__)
            s = nn.functional.silu(torch.addmv(inner.bias, inner.weight, h), inplace=True)
            out_t = torch.addmv(out_t, self.head_outer, s)
        out: list[float] = out_t.tolist()
        logit_row = out[1:] if self.net.has_mode_head else [0.0] * self.net.n_modes
        gamma, mode, self.session = self.awc.step(out[0], logit_row, self.session)
        return gamma, mode


def controller_metadata(
    controller: WCDNNController, inputs: dict[str, Any] | None = None, members: int = 1
) -> dict[str, Any]:
    """The ``metadata.json`` of ``controller`` (format: :mod:`dsd_gym.runtime.exported`).

    ``inputs``: what the controller was made from (checkpoint, training config, dataset), JSON-able;
    ``members``: how many trained networks its network averages (:func:`wc_dnn.model.average_networks`).
    """
    config = controller.net.config
    awc = controller.awc_config
    return {
        **metadata_header(KIND, list(awc.window_choices), list(awc.modes), STATE_SIZE),
        "awc": awc.as_dict(),
        "model": {
            "architecture": "residual SiLU MLP predicting Δ from default_gamma",
            "hidden": config.hidden,
            "depth": config.depth,
            "default_gamma": config.default_gamma,
            "mode_head": config.mode_head,
            "ignored_features": list(config.ignore),
            "members": members,
        },
        "normalization": {
            "rule": "z = (x - mean) / std",
            "mean": controller.norm.mean.tolist(),
            "std": controller.norm.std.tolist(),
        },
        "provenance": provenance("wc_dnn.export.export_controller", inputs),
    }


def export_controller(
    controller: WCDNNController, out: str | os.PathLike[str], inputs: dict[str, Any] | None = None,
    members: int = 1,
) -> Path:  # fmt: skip
    """Script ``controller`` and write it with its metadata to ``out`` atomically; returns the path.

    The single-session state is reset first, so the file starts a fresh session.
    """
    controller.reset()
    metadata = controller_metadata(controller, inputs, members)
    return save_controller(torch.jit.script(controller), out, metadata)


def _parts(checkpoint: dict[str, Any], where: str) -> tuple[FeatureNorm, WindowNet, AWCConfig]:
    """What a training checkpoint (``wc_dnn.checkpoint.load_checkpoint``) describes: its normalisation
    and network, and AWC with the config's ``awc`` section over the dataset's window choices and modes."""
    config = parse_config(checkpoint["config"], f"{where}: config")
    try:
        decisions = decisions_from_records(checkpoint["candidates"])
        net = WindowNet(WindowNetConfig(**checkpoint["model_config"]))
        net.load_state_dict(checkpoint["model"])
        norm = FeatureNorm()
        norm.load_state_dict(checkpoint["norm"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:100]
        raise UserError(f"{where}: does not hold a WC-DNN of this version ({first})") from None
    windows = sorted({d.gamma for d in decisions if d.mode != Mode.AUTOREGRESSIVE})
    modes = [name for code, name in enumerate(MODE_NAMES) if any(int(d.mode) == code for d in decisions)]
    try:
        awc = AWCConfig(window_choices=windows, modes=modes, **config.awc.model_dump())
    except ValueError as exc:
        raise UserError(f"{where}: awc: {exc}") from None
    return norm, net, awc


def controller_from_checkpoint(checkpoint: dict[str, Any], where: str) -> WCDNNController:
    """The controller a training checkpoint describes (:func:`_parts`)."""
    return WCDNNController(*_parts(checkpoint, where))


def _inputs(checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> dict[str, Any]:
    history = checkpoint["history"]
    val = history[-1] if history else {}
    return {
        "checkpoint": os.path.abspath(path),
        "epoch": int(checkpoint["epoch"]),
        "config": checkpoint["config"],
        "dataset": checkpoint.get("dataset", {}),
        "validation": {k: v for k, v in val.items() if isinstance(v, (int, float))},
    }


def export_checkpoint(checkpoint_path: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Export a training checkpoint as one TorchScript file (``dsd-gym export``); returns its path."""
    return export_checkpoints([checkpoint_path], out)


def export_checkpoints(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> Path:
    """Export one training checkpoint, or the mean of several (an ensemble: pipelines on different
    data seeds fail on different scenarios, and their mean on none of theirs as badly; README "Train a
    WC-DNN"), as one TorchScript file of the same contract; returns its path. The members' networks
    become one (:func:`wc_dnn.model.average_networks`); they must decide among the same windows and
    modes with the same AWC settings."""
    parts, inputs = [], []
    for path in paths:
        where = f"checkpoint {os.fspath(path)}"
        checkpoint = load_checkpoint(path)
        parts.append(_parts(checkpoint, where))
        inputs.append(_inputs(checkpoint, path))
    awc = parts[0][2]
    for path, (_, _, other) in zip(paths[1:], parts[1:], strict=True):
        if other != awc:
            raise UserError(
                f"checkpoint {os.fspath(path)}: its AWC ({other.as_dict()}) differs from that of "
                f"{os.fspath(paths[0])} ({awc.as_dict()}); an ensemble's members decide alike"
            )
    if len(parts) == 1:
        norm, net, _ = parts[0]
        return export_controller(WCDNNController(norm, net, awc), out, inputs[0])
    try:
        norm, net = average_networks([(n, m) for n, m, _ in parts])
    except ValueError as exc:
        raise UserError(f"export: cannot average these checkpoints: {exc}") from None
    return export_controller(WCDNNController(norm, net, awc), out, {"ensemble": inputs}, members=len(parts))
