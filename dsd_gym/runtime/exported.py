"""Exported controllers: one TorchScript file with its metadata inside (DESIGN §7), and its loader.

**The file.** A ``.pt`` written by ``torch.jit.save`` that loads with plain ``torch.jit.load`` — no
dsd-gym, no wc_dnn — in Python or C++ (libtorch). Normalisation, network and AWC state logic are all
inside. Its metadata is the extra file ``metadata.json`` (read it with
``torch.jit.load(path, _extra_files={"metadata.json": ""})``)::

    format, format_version   "dsd-gym-controller", 1
    kind                     what wrote the file and how to read it: "wc-dnn" (wc_dnn.export) or
                             "sb3" (agents.export: an RL agent of dsd-gym train rl)
    features                 [{name, unit, low, high, scale, description}, ...] in input order:
                             dsd_gym.telemetry.FEATURES when the file was made
    input                    one line: what the runtime must feed
    window_choices           ascending windows the controller can return
    modes                    enabled modes, names: distributed, fused, autoregressive
    mode_codes               {"distributed": 0, "fused": 1, "autoregressive": 2}
    state_size               S, the width of a session's state
    awc, model, normalization   the parameters of each stage (informational: all are baked in);
                             an "sb3" file has algo, env_id, history, normalization, decisions, policy
    provenance               code_version, torch_version, created_by, inputs (how it was made)

**The scripted module's contract.** F = number of features, S = ``state_size``:

- ``decide(features: Tensor[B, F] float32, state: Tensor[B, S] float32)
  -> (gamma: Tensor[B] int64, mode: Tensor[B] int64, new_state: Tensor[B, S])`` — pure and batched:
  one decision for each of B sessions; the caller keeps each session's state row and passes the
  returned row in at that session's next decision. ``features`` are the telemetry vector in raw units
  (``dsd_gym.telemetry``: clipped to each feature's [low, high], in the metadata's order); ``gamma``
  is 0 exactly when ``mode`` is autoregressive (2).
- ``initial_state(batch: int) -> Tensor[B, S]`` — the state of sessions that have not decided yet.
- ``forward(features: Tensor[F]) -> (int gamma, int mode)`` — one session, state kept inside the
  module (for single-session runtimes); ``reset()`` returns it to the initial state (call it at a new
  session). ``forward`` gives the same decisions as ``decide`` on batch 1 with the state threaded.

Call the controller once per decision (before every round): its smoothing and dwell count decisions.

>>> import torch, json  # doctest: +SKIP
>>> extra = {"metadata.json": ""}  # doctest: +SKIP
>>> controller = torch.jit.load("controller.pt", _extra_files=extra)  # doctest: +SKIP
>>> names = [f["name"] for f in json.loads(extra["metadata.json"])["features"]]  # doctest: +SKIP
>>> gamma, mode = controller(torch.zeros(len(names)))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from dsd_gym.errors import UserError, first_line
from dsd_gym.telemetry import FEATURES

__all__ = [
    "CONTRACT_METHODS",
    "FORMAT",
    "FORMAT_VERSION",
    "KINDS",
    "METADATA_FILE",
    "MODE_CODES",
    "ExportedController",
    "feature_metadata",
    "load_controller",
]

METADATA_FILE = "metadata.json"
CONTRACT_METHODS = ("decide", "initial_state", "reset")  # the scripted module's methods beside forward
FORMAT = "dsd-gym-controller"
FORMAT_VERSION = 1
KINDS = ("wc-dnn", "sb3")  # the kinds this loader understands
MODE_CODES = {"distributed": 0, "fused": 1, "autoregressive": 2}  # dsd_gym.sim.controller.Mode
METHODS = ("decide", "initial_state", "reset", "forward")


def feature_metadata() -> list[dict[str, Any]]:
    """The telemetry features as metadata records, in input order."""
    return [
        {"name": f.name, "unit": f.unit, "low": f.low, "high": f.high, "scale": f.scale,
         "description": f.description}
        for f in FEATURES
    ]  # fmt: skip


@dataclass(frozen=True)
class ExportedController:
    """A loaded controller file: the scripted module and its checked metadata."""

    path: str
    module: Any  # torch.jit.ScriptModule; typed loosely so importing this module needs no torch
    metadata: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.metadata["kind"]

    @property
    def window_choices(self) -> list[int]:
        return list(self.metadata["window_choices"])

    @property
    def modes(self) -> list[str]:
        return list(self.metadata["modes"])

    @property
    def state_size(self) -> int:
        return int(self.metadata["state_size"])


def load_controller(path: str | os.PathLike[str], kinds: tuple[str, ...] = KINDS) -> ExportedController:
    """Load and check an exported controller file; every problem is a one-line ``UserError``.

    Checked: the file exists and is TorchScript with ``metadata.json`` inside; the metadata is JSON of
    this format and version, of a kind in ``kinds``; its features are this dsd-gym's telemetry
    features (names and units, in order); window choices are distinct positive integers, ascending;
    modes are known names; the module has ``decide``, ``initial_state``, ``reset`` and ``forward``.
    """
    where = f"controller file {os.fspath(path)}"
    if not os.path.exists(path):
        raise UserError(f"{where}: no such file")
    if os.path.isdir(path):
        raise UserError(f"{where}: is a directory; give the exported .pt file")
    import torch  # lazy: only loading a learned controller needs torch

    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(os.fspath(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError, ValueError or zipfile errors for a bad file
        raise UserError(f"{where}: not a readable TorchScript file ({first_line(exc)})") from None
    raw = extra[METADATA_FILE]
    if not raw:
        raise UserError(f"{where}: no {METADATA_FILE} inside; write controller files with dsd-gym export")
    try:
        metadata = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{where}: {METADATA_FILE} is not valid JSON ({exc})") from None
    if not isinstance(metadata, dict):
        raise UserError(f"{where}: {METADATA_FILE} must hold a JSON object")
    _check_metadata(where, metadata, kinds)
    missing = [m for m in METHODS if not hasattr(module, m)]
    if missing:
        raise UserError(
            f"{where}: the module lacks {', '.join(missing)}; allowed: a file dsd-gym export wrote"
        )
    return ExportedController(os.fspath(path), module, metadata)


def _check_metadata(where: str, metadata: dict[str, Any], kinds: tuple[str, ...]) -> None:
    if metadata.get("format") != FORMAT or metadata.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{where}: metadata format {metadata.get('format')!r} version {metadata.get('format_version')!r}"
            f" is not {FORMAT!r} version {FORMAT_VERSION}"
        )
    if metadata.get("kind") not in kinds:
        raise UserError(
            f"{where}: kind {metadata.get('kind')!r} is not one this loads; allowed: {list(kinds)}"
        )
    features = metadata.get("features")
    if not isinstance(features, list) or not all(isinstance(f, dict) for f in features):
        raise UserError(f"{where}: metadata 'features' must be a list of objects")
    have = [(f.get("name"), f.get("unit")) for f in features]
    want = [(f.name, f.unit) for f in FEATURES]
    if have != want:
        if len(have) != len(want):
            detail = f"{len(have)} features, this dsd-gym's telemetry has {len(want)}"
        else:
            i = next(i for i, (h, w) in enumerate(zip(have, want, strict=True)) if h != w)
            (name, unit), (ours, our_unit) = have[i], want[i]
            detail = f"feature {i} is {name!r} ({unit}), this dsd-gym's is {ours!r} ({our_unit})"
        raise UserError(f"{where}: made for other telemetry features: {detail}")
    choices = metadata.get("window_choices")
    if (
        not isinstance(choices, list)
        or not choices
        or not all(isinstance(g, int) and not isinstance(g, bool) and g >= 1 for g in choices)
        or choices != sorted(set(choices))
    ):
        raise UserError(f"{where}: metadata 'window_choices' must be ascending distinct positive integers")
    modes = metadata.get("modes")
    if not isinstance(modes, list) or not modes or not all(m in MODE_CODES for m in modes):
        raise UserError(f"{where}: metadata 'modes' must be a non-empty list among {list(MODE_CODES)}")
    if not isinstance(metadata.get("state_size"), int) or metadata["state_size"] < 1:
        raise UserError(f"{where}: metadata 'state_size' must be a positive integer")
