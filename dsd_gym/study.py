"""Hyperparameter search with Optuna: a persistent study whose trials run on a backend.

The study lives in ``storage``: an Optuna RDB URL (``sqlite:///runs/tune/ppo.db``, or a
PostgreSQL/MySQL URL that every machine of a cluster reaches) or a journal file (a path ending in
``.log``, on a file system the workers share). It is opened with ``load_if_exists``, so the same
command again resumes it: ``trials`` is the number of finished (complete or pruned) trials the study
should hold, and only the missing ones run.

Each trial is one task of :func:`dsd_gym.backend.run`: a worker (a process, or a Ray task on a
cluster) opens the study and runs one ``study.optimize(..., n_trials=1)``, so the sampler sees every
trial the others have told the storage. A trial's sampler is seeded by (``seed``, the trial's slot),
so parallel workers do not draw the same parameters. The search is reproducible run by run only with
one worker (``jobs=1``): with more, which trials a sampler has seen depends on timing.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dsd_gym.backend import Backend, run
from dsd_gym.errors import UserError

SQLITE = "sqlite:///"
Objective = Callable[[Any, Any], float]  # (optuna trial, settings) -> value; module-level, picklable


def storage(url: str) -> Any:
    """An Optuna storage for ``url``: a journal file for a path ending in ``.log``, else an RDB URL; a
    relative SQLite path is made absolute (workers may run elsewhere) and its folder created."""
    import optuna

    url = absolute(url)
    if _is_journal(url):
        from optuna.storages.journal import JournalFileBackend

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(url))
    if url.startswith(SQLITE):
        Path(url.removeprefix(SQLITE)).parent.mkdir(parents=True, exist_ok=True)
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # SQLAlchemy's errors for a bad URL or an unreachable database vary
        raise UserError(
            f"--storage {url}: not an Optuna storage ({type(exc).__name__}); allowed: an RDB URL such as "
            "sqlite:///runs/tune/ppo.db, or a journal file path ending in .log"
        ) from None


def _is_journal(url: str) -> bool:
    return url.endswith(".log") and "://" not in url


def absolute(url: str) -> str:
    """``url`` with a relative SQLite or journal path made absolute: what a worker elsewhere opens."""
    if url.startswith(SQLITE):
        return f"{SQLITE}{Path(url.removeprefix(SQLITE)).absolute()}"
    if _is_journal(url):
        return str(Path(url).absolute())
    return url


def locations(name: str, out: str | os.PathLike[str] | None, url: str | None) -> tuple[Path, str]:
    """The trial folders and the storage URL of study ``name``: ``out`` (default ``runs/tune/<name>``)
    and ``url`` (default ``sqlite:///<out>/study.db``), each as given when given."""
    folder = Path(out) if out is not None else Path("runs") / "tune" / name
    return folder, url or f"{SQLITE}{folder / 'study.db'}"


def open_study(url: str, name: str, direction: str, seed: int = 0, slot: int = 0) -> Any:
    """Create or load the study ``name``; its sampler is TPE seeded by (``seed``, ``slot``), its
    pruner the median rule (after 3 trials, from the 2nd report on)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler_seed = int(np.random.SeedSequence(seed, spawn_key=(slot,)).generate_state(1)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=sampler_seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    store = storage(url)
    try:
        study = optuna.create_study(
            storage=store, study_name=name, direction=direction, sampler=sampler, pruner=pruner,
            load_if_exists=True,
        )  # fmt: skip
    except ValueError as exc:
        raise UserError(f"--study {name}: {exc}") from None
    if study.direction.name.lower() != direction:
        have = study.direction.name.lower()
        raise UserError(
            f"--study {name}: in {url} it is a {have} study, not {direction}; give another --study"
        )
    return study


def finished(study: Any) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def one_trial(objective: Objective, settings: Any, url: str, name: str, direction: str, seed: int, slot: int):
    """A worker's job: one trial of the study, told to the storage; returns (number, state, value)."""
    study = open_study(url, name, direction, seed, slot)
    ran: list[Any] = []
    study.optimize(
        lambda trial: objective(trial, settings), n_trials=1, callbacks=[lambda _, t: ran.append(t)]
    )
    return ran[0].number, ran[0].state.name, ran[0].value


def optimize(
    objective: Objective, settings: Any, url: str, name: str, direction: str, trials: int,
    backend: Backend | None = None, seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Run the trials ``name`` lacks to hold ``trials`` finished ones; a summary: how many ran, the
    failures (slot -> error), the best trial's number, value and parameters."""
    url = absolute(url)
    study = open_study(url, name, direction, seed)
    before = finished(study)
    start = len(study.get_trials(deepcopy=False))  # slots never repeat, so neither do sampler seeds
    slots = range(start, start + max(trials - before, 0))
    tasks = [(k, (objective, settings, url, name, direction, seed, k)) for k in slots]
    failures = {o.key: o.error for o in run(one_trial, tasks, backend) if not o.ok}
    study = open_study(url, name, direction, seed)
    done = finished(study)
    best = None
    try:
        best = study.best_trial
    except ValueError:  # no complete trial yet
        pass
    return {
        "study": name, "storage": url, "finished_before": before, "finished": done, "ran": len(tasks),
        "failures": failures, "best": None if best is None else {
            "number": best.number, "value": best.value, "params": best.params,
        },
    }  # fmt: skip


def trial_folder(out: str | os.PathLike[str], trial: Any) -> Path:
    return Path(out).absolute() / f"trial-{trial.number:04d}"
