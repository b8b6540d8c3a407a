"""The Ray backend on a local Ray instance: the same outcomes as processes, retries, failures."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from dsd_gym.backend import Backend, run
from dsd_gym.evaluation import evaluate
from dsd_gym.evaluation.report import table, to_json

from .test_backend import die_once, fail_on_three

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _by_value(local_ray: Any) -> None:
    """Ray's workers cannot import a test module by name: ship its functions by value."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[die_once.__module__])


def test_outcomes_failures_and_retries_on_ray(tmp_path: Path) -> None:
    outcomes = {o.key: o for o in run(fail_on_three, [(i, (i,)) for i in range(5)], Backend("ray"))}
    assert outcomes[3].error == "ValueError: three is not allowed"
    assert {k: o.value for k, o in outcomes.items() if o.ok} == {0: 0, 1: 1, 2: 2, 4: 4}
    retried = list(run(die_once, [(i, (str(tmp_path), i)) for i in range(2)], Backend("ray")))
    assert sorted((o.key, o.value, o.error) for o in retried) == [(0, 0, None), (1, 1, None)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0", "1"]  # each died once, then ran


def test_an_evaluation_grid_gives_identical_tables_on_processes_and_ray() -> None:
    args = (["ideal", "wan"], ["fixed:2", "heuristic", "best-fixed"])
    kwargs = {"seeds": 2, "overrides": ["duration_s=10", "warmup_s=2"]}
    processes = evaluate(*args, **kwargs, jobs=2)
    ray = evaluate(*args, **kwargs, backend="ray")
    assert not processes.failures and len(processes.plan.tasks) > 20
    assert to_json(ray) == to_json(processes)
    assert table(ray) == table(processes)
