"""Where many independent tasks run: worker processes on this machine, or a Ray cluster (DESIGN §9).

``evaluate``'s simulations, ``collect``'s shards and ``tune``'s trials are each a list of independent,
deterministic tasks. :func:`run` maps a function over them on a :class:`Backend` and yields an
:class:`Outcome` per task as tasks complete; callers key what they keep by the task's key, never by
completion order, so results are the same on every backend and for any number of workers.

- ``processes`` (the default): a ``ProcessPoolExecutor`` of ``jobs`` workers (default: one per CPU);
  ``jobs=1`` runs every task in this process. No service to start.
- ``ray``: every task is a Ray task (one CPU each) on the cluster at ``address``, or, without one, on
  a local Ray instance of ``jobs`` CPUs started here and stopped at the end. Ray is imported only
  here, and only when this backend runs.

Failures. A task whose worker died (a killed or crashed process, a lost Ray node) is retried, at most
``retries`` times, in a fresh worker. An exception raised by the task itself is not: the tasks are
deterministic, so a rerun raises it again; it is reported at once. Either way the task ends as an
``Outcome`` with its ``error`` (one line) and the others go on: nothing is dropped, and what finished
is kept.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib.util
import logging
import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from dsd_gym.errors import UserError

BACKENDS = ("processes", "ray")
RAY_MISSING = "--backend ray needs Ray: pip install 'dsd-gym[ray]'"


@dataclasses.dataclass(frozen=True)
class Backend:
    """What runs the tasks. ``jobs``: worker processes, or the CPUs of a local Ray instance (default:
    every CPU); with a Ray ``address`` the cluster's CPUs are used and ``jobs`` is ignored."""

    name: str = "processes"
    jobs: int | None = None
    address: str | None = None
    retries: int = 2

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise UserError(f"--backend {self.name!r}: unknown; allowed: {', '.join(BACKENDS)}")
        if self.address is not None and self.name != "ray":
            raise UserError(f"--address {self.address}: only with --backend ray")
        if self.jobs is not None and self.jobs < 1:
            raise UserError(f"--jobs {self.jobs}: allowed: an integer >= 1")
        if self.retries < 0:
            raise UserError(f"retries {self.retries}: allowed: an integer >= 0")
        if self.name == "ray" and importlib.util.find_spec("ray") is None:
            raise UserError(RAY_MISSING)  # before anything runs, not after the first task


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A task's end: its ``value``, or its ``error`` (one line) after ``attempts`` runs."""

    key: Hashable
    value: Any = None
    error: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None


def describe(exc: BaseException) -> str:
    """``Type: first line of the message``: a failure as one line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def run(
    fn: Callable[..., Any], tasks: Sequence[tuple[Hashable, tuple[Any, ...]]], backend: Backend | None = None
) -> Iterator[Outcome]:
    """``fn(*args)`` for every ``(key, args)`` of ``tasks``, one :class:`Outcome` per task as each
    completes. ``fn`` must be importable by name (a module-level function) and its arguments picklable."""
    backend = backend or Backend()
    if not tasks:
        return iter(())
    if backend.name == "ray":
        return _ray(fn, tasks, backend)
    jobs = min(backend.jobs or os.cpu_count() or 1, len(tasks))
    if jobs == 1:
        return _here(fn, tasks)
    return _processes(fn, tasks, jobs, backend.retries)


def _here(fn: Callable[..., Any], tasks: Sequence[tuple[Hashable, tuple[Any, ...]]]) -> Iterator[Outcome]:
    for key, args in tasks:
        try:
            value = fn(*args)
        except Exception as exc:  # a failed task is reported, the others go on
            yield Outcome(key, error=describe(exc))
        else:
            yield Outcome(key, value)


def _processes(
    fn: Callable[..., Any], tasks: Sequence[tuple[Hashable, tuple[Any, ...]]], jobs: int, retries: int
) -> Iterator[Outcome]:
    attempts = dict.fromkeys((key for key, _ in tasks), 0)
    pending = list(tasks)
    while pending:  # a dead worker breaks the whole pool: what it took down runs again in a new one
        again = []
        pool = concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, len(pending)))
        try:
            futures = {pool.submit(fn, *args): (key, args) for key, args in pending}
            for future in concurrent.futures.as_completed(futures):
                key, args = futures[future]
                attempts[key] += 1
                try:
                    value = future.result()
                except BrokenProcessPool as exc:
                    if attempts[key] <= retries:
                        again.append((key, args))
                    else:
                        yield Outcome(key, error=f"worker died ({describe(exc)})", attempts=attempts[key])
                except Exception as exc:
                    yield Outcome(key, error=describe(exc), attempts=attempts[key])
                else:
                    yield Outcome(key, value, attempts=attempts[key])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        pending = again


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(RAY_MISSING) from None
    return ray


def connect(backend: Backend) -> bool:
    """Make sure this process is a Ray driver: join the cluster at ``backend.address``, or start a
    local instance of ``backend.jobs`` CPUs. Returns whether this call started it (and should stop it);
    an instance already running in this process (a notebook's, a test session's) is used as it is."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if backend.address is None:
        options.update(num_cpus=backend.jobs or os.cpu_count() or 1, include_dashboard=False)
    try:
        ray.init(address=backend.address, **options)
    except ConnectionError as exc:
        raise UserError(f"--address {backend.address}: no Ray cluster there ({describe(exc)})") from None
    return True


def _ray(
    fn: Callable[..., Any], tasks: Sequence[tuple[Hashable, tuple[Any, ...]]], backend: Backend
) -> Iterator[Outcome]:
    ray = _import_ray()
    started = connect(backend)
    remote = ray.remote(num_cpus=1, max_retries=backend.retries, retry_exceptions=False)(fn)
    refs = {remote.remote(*args): key for key, args in tasks}
    try:
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            key = refs.pop(done[0])
            try:
                value = ray.get(done[0])
            except ray.exceptions.RayTaskError as exc:  # raised by fn itself: not retried
                yield Outcome(key, error=describe(exc.cause if exc.cause is not None else exc))
            except ray.exceptions.RayError as exc:  # worker or node lost, after Ray's own retries
                yield Outcome(key, error=f"worker died ({describe(exc)})", attempts=backend.retries + 1)
            else:
                yield Outcome(key, value)
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
