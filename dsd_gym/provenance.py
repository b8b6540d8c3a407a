"""Provenance of what dsd-gym makes: exported controllers, datasets, checkpoints, RL runs.

``code_version()``: ``git describe --always --dirty --tags`` of the checkout this package runs from,
or the installed package version when there is no git checkout (a wheel install).
"""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["code_version"]

_ROOT = Path(__file__).resolve().parents[1]


def code_version() -> str:
    try:
        described = subprocess.run(
            ["git", "-C", str(_ROOT), "describe", "--always", "--dirty", "--tags"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        described = ""
    if described:
        return f"git:{described}"
    try:
        return f"dsd-gym {metadata.version('dsd-gym')}"
    except metadata.PackageNotFoundError:
        return "unknown"
