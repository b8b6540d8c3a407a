"""Fixtures shared by every test package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# The packages of this repository: none may be importable where an exported controller is checked.
OURS = ("dsd_gym", "wc_dnn", "agents")


def _run_torch_only(script: str, stdin: Any, cwd: Path) -> Any:
    import torch

    site = os.path.dirname(os.path.dirname(torch.__file__))
    prelude = textwrap.dedent(f"""
        import importlib.util, json, sys
        sys.path.append({site!r})
        assert all(importlib.util.find_spec(name) is None for name in {OURS!r}), "dsd-gym is importable"
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", prelude + textwrap.dedent(script)], input=json.dumps(stdin),
        capture_output=True, text=True, cwd=cwd, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def torch_only(tmp_path: Path) -> Callable[[str, Any], Any]:
    """``torch_only(script, stdin)``: run ``script`` in a fresh Python (``-I -S``) that can import torch
    but none of this repository's packages — what a real runtime has — with ``stdin`` as JSON on its
    standard input; returns what it prints, parsed as JSON. ``json`` and ``sys`` are imported."""
    return lambda script, stdin=None: _run_torch_only(script, stdin, tmp_path)


@pytest.fixture(scope="session")
def local_ray() -> Any:
    """One local Ray instance of 2 CPUs per test process (starting one takes ~10 s; under ``-n 2`` at
    most two). Skipped when Ray is not installed."""
    ray = pytest.importorskip("ray")
    from dsd_gym.backend import Backend, connect

    assert connect(Backend("ray", jobs=2)), "a Ray instance was already running in the test process"
    yield ray
    ray.shutdown()
