"""The run folder of an RL training run: what ``dsd-gym train rl`` writes (``agents``), what
``sb3:PATH`` and ``dsd-gym export`` read. This module is the format; it imports no SB3 and no torch.

::

    RUN/
      run.json                 RunInfo (below): algo, env, action table, observation layout, ...
      model.zip                the newest model (Stable-Baselines3 ``save``)
      vecnormalize.pkl         its observation statistics (VecNormalize ``save``), when normalised
      checkpoints/step_<N>.zip, step_<N>_vecnormalize.pkl     periodic; a resumed run starts from the newest
      best/model.zip, best/vecnormalize.pkl                   the best by held-out evaluation throughput
      evaluations.json, curve.png, tensorboard/

**Observation.** What the policy was trained on, rebuilt from a session's telemetry: the telemetry
vector of :mod:`dsd_gym.telemetry` (raw units, clipped) at this decision, then the vectors after
each of the ``history`` previous *rounds*, newest first, zeros before the session's first rounds —
``(history + 1) · F`` float32 values. The env keeps this history per round (``TelemetryTracker``),
so a decision that produced no round (its job lost with a failed target) adds no row. With
``normalize_obs``, the stored statistics map it to ``clip((x − mean) / sqrt(var + epsilon), −clip_obs,
clip_obs)`` before the network.

**Action.** An index into ``decisions``: ``[gamma, mode]`` pairs, mode one of ``distributed``,
``fused``, ``autoregressive`` (the env's action table, :meth:`dsd_gym.envs.DSDEnv.action_to_decision`).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dsd_gym.errors import UserError
from dsd_gym.sim.controller import Decision, Mode

__all__ = [
    "RUN_FILE",
    "RunInfo",
    "decision_table",
    "decisions_of",
    "find_run",
    "model_files",
    "read_run",
    "write_run",
]

RUN_FILE = "run.json"
FORMAT = "dsd-gym-rl-run"
FORMAT_VERSION = 1
MODE_NAMES = {Mode.DISTRIBUTED: "distributed", Mode.FUSED: "fused", Mode.AUTOREGRESSIVE: "autoregressive"}
_MODES = {name: mode for mode, name in MODE_NAMES.items()}


@dataclass
class RunInfo:
    """``run.json``. ``algo``: a key of ``dsd_gym.controllers.rl_algos.ALGOS``; ``env_id`` and
    ``env_kwargs``: the training env (``gymnasium.make(env_id, **env_kwargs)``); ``recurrent``: the
    policy keeps a hidden state between decisions (reset at a new session)."""

    algo: str
    env_id: str
    env_kwargs: dict[str, Any]
    decisions: list[list[Any]]  # [[gamma, mode name], ...] by action index
    history: int
    normalize_obs: bool
    recurrent: bool
    seed: int
    config: dict[str, Any] = field(default_factory=dict)  # the hyperparameters, as resolved
    code_version: str = "unknown"
    format: str = FORMAT
    format_version: int = FORMAT_VERSION


def decisions_of(table: list[Decision]) -> list[list[Any]]:
    """An env's action table as ``RunInfo.decisions``."""
    return [[int(d.gamma), MODE_NAMES[d.mode]] for d in table]


def write_run(folder: str | os.PathLike[str], info: RunInfo) -> Path:
    """Write ``folder/run.json`` atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RUN_FILE
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{RUN_FILE}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(info), f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


def find_run(path: str | os.PathLike[str]) -> Path:
    """The run folder of ``path``: the folder itself, or the folder holding a model file given
    (``RUN/model.zip``, ``RUN/best/model.zip``, ``RUN/checkpoints/step_N.zip``)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"RL run {path}: no such file or folder; give a run folder dsd-gym train rl wrote")
    start = path if path.is_dir() else path.parent
    for folder in (start, start.parent):
        if (folder / RUN_FILE).is_file():
            return folder
    raise UserError(
        f"RL run {path}: no {RUN_FILE} here or one folder up; give a run folder dsd-gym train rl wrote"
    )


def read_run(path: str | os.PathLike[str]) -> tuple[RunInfo, Path]:
    """(RunInfo, run folder) of a run folder or a model file inside one; one-line errors."""
    folder = find_run(path)
    where = f"RL run {folder}"
    try:
        raw = json.loads((folder / RUN_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{where}: {RUN_FILE} is not readable JSON ({exc})") from None
    if (
        not isinstance(raw, dict)
        or raw.get("format") != FORMAT
        or raw.get("format_version") != FORMAT_VERSION
    ):
        raise UserError(f"{where}: {RUN_FILE} is not {FORMAT!r} version {FORMAT_VERSION}")
    try:
        info = RunInfo(**raw)
    except TypeError as exc:
        raise UserError(f"{where}: {RUN_FILE} does not match this version ({exc})") from None
    for pair in info.decisions:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not isinstance(pair[0], int)
            or pair[1] not in _MODES
        ):
            raise UserError(f"{where}: decisions must be [gamma, mode] pairs, mode among {list(_MODES)}")
    return info, folder


def model_files(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(model zip, its VecNormalize statistics) that ``path`` names: a folder (the run, or its
    ``best/``) means its ``model.zip`` and ``vecnormalize.pkl``; a ``model.zip`` comes with the
    ``vecnormalize.pkl`` beside it, ``checkpoints/step_N.zip`` with ``step_N_vecnormalize.pkl``.
    Neither file is checked to exist."""
    path = Path(path)
    model = path / "model.zip" if path.is_dir() else path
    stats = "vecnormalize.pkl" if model.stem == "model" else f"{model.stem}_vecnormalize.pkl"
    return model, model.with_name(stats)


def decision_table(info: RunInfo) -> list[Decision]:
    """``RunInfo.decisions`` as :class:`Decision` objects, by action index."""
    return [Decision(int(gamma), _MODES[mode]) for gamma, mode in info.decisions]
