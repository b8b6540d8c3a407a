"""What a real DSD runtime needs: load an exported controller, feed it telemetry, get γ and the mode.

See :mod:`dsd_gym.runtime.exported` for the file format and the contract of the scripted module.
This package imports only :mod:`dsd_gym.telemetry`, :mod:`dsd_gym.errors` and (lazily) torch, so the
controllers may use it and it never needs the package that wrote the file (``wc_dnn``, ``agents``).
"""

from __future__ import annotations

from dsd_gym.runtime.exported import (
    FORMAT,
    FORMAT_VERSION,
    KINDS,
    METADATA_FILE,
    ExportedController,
    feature_metadata,
    load_controller,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "KINDS",
    "METADATA_FILE",
    "ExportedController",
    "feature_metadata",
    "load_controller",
]
