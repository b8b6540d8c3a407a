"""Writing an exported controller file (the format is :mod:`dsd_gym.runtime.exported`): the parts
every exporter shares — the metadata header, the provenance record and the atomic save with
``metadata.json`` inside. The exporters (``wc_dnn.export``, ``agents.export``) add their own sections.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from dsd_gym.provenance import code_version
from dsd_gym.runtime.exported import (
    CONTRACT_METHODS,
    FORMAT,
    FORMAT_VERSION,
    METADATA_FILE,
    MODE_CODES,
    feature_metadata,
)

__all__ = ["INPUT", "metadata_header", "provenance", "save_controller"]

INPUT = "dsd_gym.telemetry vector: raw units, float32, clipped to each feature's [low, high], in this order"


def metadata_header(
    kind: str, window_choices: list[int], modes: list[str], state_size: int
) -> dict[str, Any]:
    """The keys every controller file's ``metadata.json`` has, before the kind's own sections."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "features": feature_metadata(),
        "input": INPUT,
        "window_choices": list(window_choices),
        "modes": list(modes),
        "mode_codes": dict(MODE_CODES),
        "state_size": int(state_size),
    }


def provenance(created_by: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """How a file was made: this checkout's code version, torch's version, the function that wrote
    it and what it was made from (``inputs``, JSON-able)."""
    import torch

    return {
        "code_version": code_version(),
        "torch_version": torch.__version__,
        "created_by": created_by,
        "inputs": inputs or {},
    }


def save_controller(scripted: Any, out: str | os.PathLike[str], metadata: dict[str, Any]) -> Path:
    """``torch.jit.save`` the scripted module, frozen, with ``metadata.json`` inside, atomically: a
    reader sees the previous file or the new one, never half of one. Returns the path.

    Freezing (``torch.jit.freeze``) turns the weights into constants and inlines the submodules, which
    removes the attribute lookups and method calls a decision otherwise pays in the TorchScript
    interpreter; it keeps the contract's methods (:mod:`dsd_gym.runtime.exported`) and the
    single-session state ``session`` that ``forward`` and ``reset`` write. Everything else
    (submodules, helper methods) is gone from the file: its metadata describes them."""
    import torch

    out = Path(out)
    text = json.dumps(metadata, indent=1, sort_keys=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frozen = torch.jit.freeze(scripted.eval(), preserved_attrs=[*CONTRACT_METHODS, "session"])
        torch.jit.save(frozen, tmp, _extra_files={METADATA_FILE: text})
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
