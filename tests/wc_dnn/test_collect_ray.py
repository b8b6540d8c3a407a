"""Collection on Ray: a run killed midway resumes without duplicated or lost shards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from wc_dnn.collect import collect

from .test_collect import assert_same, shards

pytestmark = pytest.mark.slow


def test_a_collection_killed_midway_on_ray_resumes_to_the_uninterrupted_dataset(
    local_ray: Any, tiny_config, write_config, tmp_path: Path
) -> None:
    config = tiny_config(**{"collect.seeds": 3})  # 12 shards
    reference = tmp_path / "reference"
    collect(config, reference, jobs=2)
    out = tmp_path / "killed"
    address = local_ray.get_runtime_context().gcs_address
    path = write_config(tmp_path / "c.yaml", config)
    command = [
        sys.executable, "-m", "dsd_gym.cli", "collect", "--config", str(path), "--out", str(out),
        "--backend", "ray", "--address", address,
    ]  # fmt: skip
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list(out.glob("*.npz")) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGKILL)  # the driver dies: Ray drops its tasks with it
    driver.wait()
    written = len(list(out.glob("*.npz")))
    assert 1 <= written < 12, f"{written} shards when the driver was killed"
    summary = collect(config, out, backend="ray")
    assert summary["failed"] == {} and summary["skipped"] >= written
    assert summary["skipped"] + summary["ran"] == summary["tasks"] == 12
    assert not list(out.glob(".*.tmp"))
    assert_same(shards(out), shards(reference))
