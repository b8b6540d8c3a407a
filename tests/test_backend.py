"""The task backend without Ray: outcomes by key, retries of dead workers, failures reported."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dsd_gym import cli
from dsd_gym.backend import RAY_MISSING, Backend, run
from dsd_gym.errors import UserError


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed\nsecond line")
    return x


def die_once(marker: str, x: int) -> int:
    """The first call for ``x`` kills its worker process; the next one returns ``x``."""
    path = Path(marker) / str(x)
    if not path.exists():
        path.touch()
        os._exit(1)
    return x


def die_always(x: int) -> int:
    os._exit(1)


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_task_ends_once_under_its_key(jobs: int) -> None:
    outcomes = list(run(square, [(f"t{i}", (i,)) for i in range(7)], Backend(jobs=jobs)))
    assert sorted(o.key for o in outcomes) == [f"t{i}" for i in range(7)]
    assert {o.key: o.value for o in outcomes} == {f"t{i}": i * i for i in range(7)}


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_exception_is_reported_once_and_the_others_are_kept(jobs: int) -> None:
    outcomes = {o.key: o for o in run(fail_on_three, [(i, (i,)) for i in range(5)], Backend(jobs=jobs))}
    assert outcomes[3].error == "ValueError: three is not allowed" and outcomes[3].attempts == 1
    assert {k: o.value for k, o in outcomes.items() if o.ok} == {0: 0, 1: 1, 2: 2, 4: 4}


def test_a_dead_worker_is_retried_in_a_new_one(tmp_path: Path) -> None:
    outcomes = {o.key: o for o in run(die_once, [(i, (str(tmp_path), i)) for i in range(3)], Backend(jobs=2))}
    assert {k: o.value for k, o in outcomes.items()} == {0: 0, 1: 1, 2: 2}
    assert all(o.ok and o.attempts >= 2 for o in outcomes.values())


def test_retries_are_bounded_and_the_failure_is_reported() -> None:
    outcomes = list(run(die_always, [("a", (1,)), ("b", (2,))], Backend(jobs=2, retries=1)))
    assert sorted(o.key for o in outcomes) == ["a", "b"]
    assert all(o.error.startswith("worker died (BrokenProcessPool") and o.attempts == 2 for o in outcomes)


def test_bad_backend_settings_are_one_line() -> None:
    with pytest.raises(UserError, match="--backend 'dask': unknown; allowed: processes, ray"):
        Backend("dask")
    with pytest.raises(UserError, match="--address localhost:6379: only with --backend ray"):
        Backend(address="localhost:6379")


def test_a_missing_ray_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(UserError, match=r"^--backend ray needs Ray: pip install 'dsd-gym\[ray\]'$"):
        Backend("ray")
    argv = ["evaluate", "--scenario", "ideal", "--policy", "fixed:2", "--seeds", "1", "--no-oracle"]
    assert cli.main([*argv, "--set", "duration_s=5", "--backend", "ray"]) == 2
    assert capsys.readouterr().err == f"error: {RAY_MISSING}\n"
