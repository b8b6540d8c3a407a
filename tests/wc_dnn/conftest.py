"""Shared fixtures: a tiny WC-DNN config, its dataset (collected once per session) and a trained run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from dsd_gym.config.loader import read_scenario
from wc_dnn.collect import collect
from wc_dnn.config import WCDNNConfig, parse_config

TINY: dict[str, Any] = {
    "name": "tiny",
    "collect": {
        "seed": 3,
        "duration_s": 6,
        "seeds": 1,
        "record_sessions": 2,
        "scenarios": [
            {
                "scenario": "lan-edge",
                "variants": 2,
                "randomize": {"devices.0.link.delay.one_way_ms": {"uniform": [0.2, 10]}},
            },
            {"scenario": "metro-5g", "variants": 2},
        ],  # fmt: skip
        "behaviour": {"mix": {"random": 1, "sticky-random": 1, "heuristic": 1, "oracle": 1}, "epsilon": 0.1},
    },
    "train": {"epochs": 6, "batch_size": 256, "patience": 100, "model": {"hidden": 16, "depth": 1}},
}


def _metro_with_sessions(folder: Path, count: int, name: str) -> str:
    """A scenario file: metro-5g with ``count`` foreground sessions and no randomisation."""
    raw = read_scenario("metro-5g").data
    raw["devices"][0]["count"] = count
    raw["name"] = name
    raw.pop("randomize")
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _tiny_config(**changes: Any) -> WCDNNConfig:
    """TINY with ``section.key`` changes, e.g. ``tiny_config(**{"train.epochs": 2})``."""
    data = yaml.safe_load(yaml.safe_dump(TINY))
    for dotted, value in changes.items():
        *path, last = dotted.split(".")
        node = data
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return parse_config(data, "test config")


def _write_config(path: Path, config: WCDNNConfig) -> Path:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return path


@pytest.fixture(scope="session")
def tiny_config() -> Callable[..., WCDNNConfig]:
    """TINY with dotted changes: ``tiny_config(**{"train.epochs": 2})``."""
    return _tiny_config


@pytest.fixture(scope="session")
def metro_with_sessions() -> Callable[[Path, int, str], str]:
    """``metro_with_sessions(folder, count, name)``: metro-5g with ``count`` foreground sessions and no
    randomisation, written to ``folder/<name>.yaml``; returns its path."""
    return _metro_with_sessions


@pytest.fixture
def tiny_raw() -> dict[str, Any]:
    """A fresh copy of TINY's mapping (to break it)."""
    return yaml.safe_load(yaml.safe_dump(TINY))


@pytest.fixture(scope="session")
def write_config() -> Callable[[Path, WCDNNConfig], Path]:
    """Write a config as YAML (for the command line)."""
    return _write_config


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "data"
    collect(_tiny_config(), out, jobs=1)
    return out
