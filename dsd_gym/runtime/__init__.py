"""What a real DSD runtime needs: load an exported controller, feed it telemetry, get γ and the mode.

See :mod:`dsd_gym.runtime.exported` for the file format and the contract of the scripted module.
This package imports only :mod:`dsd_gym.telemetry`, :mod:`dsd_gym.errors` and (lazily) torch, so the
controllers may use it and it never needs the package that wrote the file (``wc_dnn``, ``agents``).
The writers' shared parts live beside the loader, not in this namespace: :mod:`.write` (metadata
header, provenance, atomic save) and :mod:`.latency` (µs per decision; imports torch).
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
