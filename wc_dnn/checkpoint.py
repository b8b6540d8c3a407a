"""WC-DNN training checkpoints: tensors and plain containers only, saved atomically, loaded with
``torch.load(..., weights_only=True)`` (no pickled code runs on load).

A checkpoint is a dict (see :func:`wc_dnn.train.train` for what it holds); ``format`` and
``format_version`` say it is one. Every problem loading one is a one-line ``UserError``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from dsd_gym.errors import UserError
from wc_dnn.dataset import check_format

__all__ = ["FORMAT", "FORMAT_VERSION", "load_checkpoint", "save_checkpoint"]

FORMAT = "dsd-gym-wc-dnn-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("epoch", "model", "norm", "optimizer", "torch_rng", "shuffle_rng", "config", "model_config",
            "candidates", "history")  # fmt: skip


def save_checkpoint(path: str | os.PathLike[str], checkpoint: dict[str, Any]) -> Path:
    """Write ``checkpoint`` (with ``format`` added) to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **checkpoint}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check a checkpoint with ``weights_only=True``."""
    where = f"checkpoint {os.fspath(path)}"
    if not os.path.exists(path):
        raise UserError(f"{where}: no such file")
    if os.path.isdir(path):
        raise UserError(f"{where}: is a directory; give a .pt file dsd-gym train wrote (best.pt, last.pt)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, zip errors ... for a bad file
        first = (str(exc).strip().splitlines() or [""])[0][:100]
        raise UserError(f"{where}: not a readable checkpoint ({type(exc).__name__}: {first})") from None
    return check_format(checkpoint, where, FORMAT, FORMAT_VERSION, REQUIRED)
