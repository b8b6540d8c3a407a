"""The WC-DNN dataset on disk: NPZ shards and a JSON sidecar describing them.

A dataset is a folder::

    dataset.json          the sidecar: format, feature names/units, the candidate decisions, every
                          array's dtype/shape/meaning, the behaviours, the collect config and its
                          hash, and the task list (one shard per task)
    <task>.npz            one shard per (scenario variant, seed) task, written atomically

A shard holds one row per decision of the labelled sessions of one simulation (arrays below, all
with N rows; F features, C candidates) and ``meta``, its provenance as a JSON string: task id,
scenario, variant, randomised values, simulation seed, code version, rows. A shard exists only when
complete (written to a temporary file, then renamed), so a folder can be resumed: a task whose shard
reads back whole is done.

>>> sorted(ARRAYS)
['behaviour', 'features', 'label', 'policy', 'session', 'time_s', 'values']
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsd_gym.errors import UserError
from dsd_gym.sim.controller import Decision, Mode
from dsd_gym.telemetry import FEATURES

__all__ = [
    "ARRAYS",
    "FORMAT",
    "FORMAT_VERSION",
    "SIDECAR",
    "Dataset",
    "ShardError",
    "check_format",
    "decision_records",
    "load_dataset",
    "merge_datasets",
    "read_json",
    "read_shard",
    "read_sidecar",
    "write_json",
    "write_shard",
]

FORMAT = "dsd-gym-wc-dnn-dataset"
FORMAT_VERSION = 1
SIDECAR = "dataset.json"
SIDECAR_KEYS = ("candidates", "tasks", "behaviours", "collect", "config_hash")

# name -> (dtype, shape, meaning)
ARRAYS: dict[str, tuple[str, str, str]] = {
    "features": (
        "float32",
        "[N, F]",
        "telemetry vector at the decision (dsd_gym.telemetry: raw units, clipped, feature order)",
    ),
    "label": ("int16", "[N]", "the oracle's decision: index into candidates"),
    "values": (
        "float32",
        "[N, C]",
        "the oracle's objective E[committed] − ρ·(E[round time] + X) of each candidate, in tokens "
        "(0 at the best; −inf for every candidate when a job would be dropped)",
    ),
    "behaviour": ("int16", "[N]", "the decision the behaviour policy played: index into candidates"),
    "policy": ("int16", "[N]", "the session's behaviour: index into behaviours"),
    "session": ("int32", "[N]", "the session's id in its simulation"),
    "time_s": ("float64", "[N]", "simulated time of the decision"),
}


class ShardError(Exception):
    """A shard that is missing, truncated or not of this dataset (its task is then not done)."""


def decision_records(decisions: list[Decision]) -> list[dict[str, Any]]:
    return [{"gamma": d.gamma, "mode": d.mode.name.lower()} for d in decisions]


def decisions_from_records(records: list[dict[str, Any]]) -> list[Decision]:
    return [Decision(int(r["gamma"]), Mode.parse(r["mode"])) for r in records]


def _atomic(path: Path, write: Any) -> None:
    """``write(tmp_path)`` then rename to ``path``: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide a dataset from its other users
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, data: dict[str, Any]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")

    _atomic(path, write)


def write_shard(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write one shard atomically; ``arrays`` must have exactly the ``ARRAYS`` names and dtypes."""
    out = {name: np.asarray(arrays[name], dtype=ARRAYS[name][0]) for name in ARRAYS}
    out["meta"] = np.array(json.dumps(meta, sort_keys=True))

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **out)

    _atomic(path, write)


def read_shard(path: Path, task_id: str, n_candidates: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A shard's arrays and meta, checked: every array there with its dtype and N rows, the features
    and candidates of this dataset, labels in range, and ``meta`` naming ``task_id``. Raises
    :class:`ShardError` with one line otherwise."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise ShardError(f"{path.name}: missing") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise ShardError(f"{path.name}: unreadable ({type(exc).__name__})") from None
    missing = sorted(set(ARRAYS) - set(data)) + ([] if "meta" in data else ["meta"])
    if missing:
        raise ShardError(f"{path.name}: lacks {', '.join(missing)}")
    try:
        meta = json.loads(str(data.pop("meta")))
    except json.JSONDecodeError:
        raise ShardError(f"{path.name}: meta is not JSON") from None
    if not isinstance(meta, dict) or meta.get("task") != task_id:
        raise ShardError(f"{path.name}: meta does not name task {task_id!r}")
    n = len(data["label"])
    shapes = {"features": (n, len(FEATURES)), "values": (n, n_candidates)}
    for name, (dtype, _, _) in ARRAYS.items():
        array = data[name]
        if array.dtype != np.dtype(dtype) or array.shape != shapes.get(name, (n,)):
            raise ShardError(f"{path.name}: {name} is {array.dtype}{list(array.shape)}, not {dtype}")
    for name in ("label", "behaviour"):
        if n and not (0 <= data[name].min() and data[name].max() < n_candidates):
            raise ShardError(f"{path.name}: {name} out of range 0..{n_candidates - 1}")
    if meta.get("rows") != n:
        raise ShardError(f"{path.name}: meta says {meta.get('rows')} rows, the arrays hold {n}")
    return data, meta


def check_format(
    document: Any, where: str, fmt: str, version: int, required: tuple[str, ...]
) -> dict[str, Any]:
    """``document`` if it is a dict of format ``fmt`` version ``version`` holding every ``required``
    key; a one-line ``UserError`` naming ``where`` otherwise."""
    if not isinstance(document, dict) or (document.get("format"), document.get("format_version")) != (
        fmt,
        version,
    ):
        raise UserError(f"{where} is not a {fmt} version {version} file")
    missing = [k for k in required if k not in document]
    if missing:
        raise UserError(f"{where} lacks {', '.join(map(repr, missing))}")
    return document


def read_json(path: Path, where: str) -> Any:
    """The JSON document at ``path``; an unreadable one is a one-line ``UserError`` naming ``where``."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{where}: {path.name} is not readable JSON ({type(exc).__name__})") from None


def read_sidecar(directory: Path) -> dict[str, Any]:
    """The checked sidecar of a dataset folder; a one-line ``UserError`` otherwise."""
    where = f"dataset {directory}"
    if not directory.exists():
        raise UserError(f"{where}: no such directory; make one with dsd-gym collect")
    if not directory.is_dir():
        raise UserError(f"{where}: not a directory; give the folder dsd-gym collect wrote")
    path = directory / SIDECAR
    if not path.exists():
        raise UserError(f"{where}: no {SIDECAR}; make the dataset with dsd-gym collect")
    sidecar = check_format(
        read_json(path, where), f"{where}: {SIDECAR}", FORMAT, FORMAT_VERSION, SIDECAR_KEYS
    )
    names = [f.get("name") for f in sidecar.get("features", []) if isinstance(f, dict)]
    ours = [f.name for f in FEATURES]
    if names != ours:
        diff = [f"+{n}" for n in ours if n not in names] + [f"-{n}" for n in names if n not in ours]
        raise UserError(
            f"{where}: recorded with other telemetry features than this dsd-gym's "
            f"({', '.join(diff) or 'another order'}); collect it again into a new or empty folder"
        )
    return sidecar


@dataclass(frozen=True)
class Dataset:
    """Every row of a complete dataset, shards concatenated in task order.

    ``group[i]``: index into ``groups`` of row i's scenario variant (``"<scenario>/v<k>"``);
    ``scenario[i]``: index into ``scenarios``.
    """

    directory: Path
    sidecar: dict[str, Any]
    candidates: list[Decision]
    arrays: dict[str, np.ndarray]
    group: np.ndarray
    groups: list[str]
    scenario: np.ndarray
    scenarios: list[str]

    @property
    def rows(self) -> int:
        return len(self.arrays["label"])


def load_dataset(directory: str | Path) -> Dataset:
    """Read a complete dataset folder; a missing, corrupt or unfinished one is a one-line error."""
    directory = Path(directory)
    sidecar = read_sidecar(directory)
    candidates = decisions_from_records(sidecar["candidates"])
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ARRAYS}
    group_parts, scenario_parts = [], []
    groups: list[str] = []
    scenarios: list[str] = []
    problems = []
    for task in sidecar["tasks"]:
        try:
            data, _ = read_shard(directory / task["file"], task["id"], len(candidates))
        except ShardError as exc:
            problems.append(str(exc))
            continue
        key = f"{task['scenario']}/v{task['variant']}"
        if key not in groups:
            groups.append(key)
        if task["scenario"] not in scenarios:
            scenarios.append(task["scenario"])
        for name in ARRAYS:
            parts[name].append(data[name])
        n = len(data["label"])
        group_parts.append(np.full(n, groups.index(key), dtype=np.int32))
        scenario_parts.append(np.full(n, scenarios.index(task["scenario"]), dtype=np.int32))
    if problems:
        raise UserError(
            f"dataset {directory}: {len(problems)} of {len(sidecar['tasks'])} shards not complete "
            f"(first: {problems[0]}); rerun dsd-gym collect with the same config and --out to finish it"
        )
    arrays = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    if not len(arrays["label"]):
        raise UserError(f"dataset {directory}: no rows; collect longer (collect.duration_s) or more tasks")
    return Dataset(
        directory, sidecar, candidates, arrays, np.concatenate(group_parts), groups,
        np.concatenate(scenario_parts), scenarios,
    )  # fmt: skip


def merge_datasets(datasets: list[Dataset]) -> Dataset:
    """The union of datasets with the same candidates (e.g. a dataset and its DAgger rounds).

    Rows keep their scenario variant by name (``"<scenario>/v<k>"``), so a variant present in several
    parts is one group and validation holds it out in all of them. The sidecar is the first part's,
    with ``config_hash`` the sha256 of the parts' hashes and ``parts`` listing them.
    """
    if len(datasets) == 1:
        return datasets[0]
    first = datasets[0]
    for other in datasets[1:]:
        if other.candidates != first.candidates:
            raise UserError(
                f"dataset {other.directory}: offers other decisions than {first.directory}; "
                "train on datasets of the same window choices and modes"
            )
    groups = list(dict.fromkeys(g for d in datasets for g in d.groups))
    scenarios = list(dict.fromkeys(s for d in datasets for s in d.scenarios))
    hashes = [d.sidecar["config_hash"] for d in datasets]
    sidecar = {
        **first.sidecar,
        "config_hash": hashlib.sha256("+".join(hashes).encode()).hexdigest(),
        "parts": [
            {"directory": str(d.directory), "config_hash": h, "rows": d.rows}
            for d, h in zip(datasets, hashes, strict=True)
        ],
    }
    remap = [np.array([groups.index(g) for g in d.groups], dtype=np.int32) for d in datasets]
    remap_s = [np.array([scenarios.index(s) for s in d.scenarios], dtype=np.int32) for d in datasets]
    return Dataset(
        first.directory, sidecar, first.candidates,
        {name: np.concatenate([d.arrays[name] for d in datasets]) for name in ARRAYS},
        np.concatenate([r[d.group] for d, r in zip(datasets, remap, strict=True)]), groups,
        np.concatenate([r[d.scenario] for d, r in zip(datasets, remap_s, strict=True)]), scenarios,
    )  # fmt: skip
