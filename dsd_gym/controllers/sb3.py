"""``sb3:PATH``: an RL agent that ``dsd-gym train rl`` trained, run in the simulator as it was trained.

``PATH`` is a run folder (:mod:`dsd_gym.controllers.rl_run`) or a model inside one (``RUN/model.zip``,
``RUN/best``, ``RUN/checkpoints/step_N.zip``); the model is loaded with its algorithm's class
(:mod:`dsd_gym.controllers.rl_algos`) and the VecNormalize statistics beside it. When the spec is
parsed, every decision of the run's action table must be one the scenario allows (its window choices
and modes), and the model's spaces must match the run's observation layout and action table.

Each session observes exactly what the training env (``dsd_gym.envs.DSDEnv``) observed, built by the
same code (:meth:`TelemetryTracker.stacked`): the telemetry vector after each of the ``history`` + 1
newest *updates* (rounds and prefills, :meth:`TelemetryTracker.prefill`) that a decision saw, newest
first, zeros before the session's first. A decision whose job was lost with a failed target pushes
no row of its own (the re-prefill that follows does). A recurrent policy keeps its LSTM state per
session, from zeros at the session's first decision (``episode_start``). Decisions are deterministic
(``predict(..., deterministic=True)``) and taken on one torch thread: batch-1 inference is faster so,
and the simulator's processes share the machine's cores. The caller's thread count is restored after
each decision.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsd_gym.controllers.registry import file_cache, load_spec_file, register
from dsd_gym.controllers.rl_algos import ALGOS
from dsd_gym.controllers.rl_run import RunInfo, decision_table, model_files, read_run
from dsd_gym.controllers.torchscript import one_thread
from dsd_gym.errors import UserError, first_line
from dsd_gym.sim.controller import ControllerFactory, Decision, Mode
from dsd_gym.telemetry import FEATURES

if TYPE_CHECKING:
    from dsd_gym.config.schema import Scenario

__all__ = ["LoadedRun", "SB3Controller", "check_decisions", "load_run"]

# Inference needs none of the training schedules: never unpickle them (they may be closures).
_NO_SCHEDULES = {"learning_rate": 0.0, "lr_schedule": lambda _: 0.0, "clip_range": lambda _: 0.0}


@dataclass(frozen=True)
class LoadedRun:
    """A run's model ready to decide: the SB3 model, its observation statistics, its action table."""

    info: RunInfo
    folder: Path
    model_path: Path
    model: Any  # the SB3 / sb3-contrib algorithm instance (its ``policy`` decides)
    vecnorm: Any | None  # VecNormalize (statistics only, no env) when the run normalised observations
    decisions: tuple[Decision, ...]

    @property
    def observation_size(self) -> int:
        return (self.info.history + 1) * len(FEATURES)


def load_run(path: str | os.PathLike[str]) -> LoadedRun:
    """Load the model (and statistics) ``path`` names; every problem is a one-line ``UserError``."""
    info, folder = read_run(path)
    model_path, stats_path = model_files(path)
    where = f"RL run {folder}"
    algo = ALGOS.get(info.algo)
    if algo is None:
        raise UserError(f"{where}: algo {info.algo!r} is unknown; allowed: {', '.join(ALGOS)}")
    if not model_path.is_file():
        raise UserError(f"{where}: no model file {model_path}")
    try:
        model = algo.load().load(model_path, device="cpu", custom_objects=_NO_SCHEDULES)
    except Exception as exc:  # SB3 raises zipfile, pickle, KeyError, ValueError, RuntimeError ...
        raise UserError(
            f"{where}: {model_path.name} is not a readable {algo.cls} model ({first_line(exc)})"
        ) from None
    vecnorm = None
    if info.normalize_obs:
        if not stats_path.is_file():
            raise UserError(f"{where}: the run normalised observations but {stats_path} is missing")
        try:
            with open(stats_path, "rb") as f:
                vecnorm = pickle.load(f)  # what VecNormalize.load does, without attaching an env
            mean = np.asarray(vecnorm.obs_rms.mean)
        except Exception as exc:
            raise UserError(
                f"{where}: {stats_path.name} is not readable VecNormalize statistics ({first_line(exc)})"
            ) from None
    loaded = LoadedRun(info, folder, model_path, model, vecnorm, tuple(decision_table(info)))
    size = loaded.observation_size
    if model.observation_space.shape != (size,) or (vecnorm is not None and mean.shape != (size,)):
        raise UserError(
            f"{where}: the model observes {model.observation_space.shape}, the run's layout is (history "
            f"{info.history} + 1) × {len(FEATURES)} telemetry features = ({size},)"
        )
    if getattr(model.action_space, "n", None) != len(loaded.decisions):
        raise UserError(
            f"{where}: the model has {model.action_space} actions, run.json {len(loaded.decisions)} decisions"
        )
    return loaded


load_cached = file_cache(load_run, lambda path: os.fspath(model_files(path)[0]))


def check_decisions(decisions: tuple[Decision, ...] | list[Decision], scenario: Scenario) -> str | None:
    """Why ``scenario`` does not allow one of ``decisions`` (its window choices, modes), or None."""
    choices, modes = scenario.control.window_choices, scenario.control.modes
    for d in decisions:
        name = d.mode.name.lower()
        if name not in modes:
            return f"it may choose mode {name}; the scenario's control.modes allow {modes}"
        if d.mode != Mode.AUTOREGRESSIVE and d.gamma not in choices:
            return f"it may choose window {d.gamma}; the scenario's control.window_choices are {choices}"
    return None


class SB3Controller:
    """One session's use of a loaded run: its (recurrent) LSTM state; the observation history is the
    session's tracker's (``TelemetryTracker.stacked``, as the env builds it)."""

    __slots__ = ("run", "policy", "rows", "lstm", "start")
    observes = True

    def __init__(self, run: LoadedRun) -> None:
        self.run = run
        self.policy = run.model.policy
        self.rows = run.info.history + 1
        self.lstm: Any = None
        self.start = True

    def observation(self, session: Any) -> np.ndarray:
        """The policy's input of this decision, [1, (history + 1) · F] float32, normalised."""
        obs = session.telemetry.stacked(self.rows)[None]
        return obs if self.run.vecnorm is None else self.run.vecnorm.normalize_obs(obs)

    def decide(self, session: Any) -> Decision:
        obs = self.observation(session)
        with one_thread():
            action, self.lstm = self.policy.predict(
                obs, state=self.lstm, episode_start=np.array([self.start]), deterministic=True
            )
        self.start = False
        return self.run.decisions[int(action[0])]


@register("sb3", "sb3:PATH", "an RL agent dsd-gym train rl trained (its run folder or model zip)")
def _sb3(arg: str, scenario: Scenario) -> ControllerFactory:
    run = load_spec_file("sb3", arg, "give the run folder dsd-gym train rl wrote, sb3:PATH", load_cached)
    problem = check_decisions(run.decisions, scenario)
    if problem is not None:
        raise UserError(f"policy 'sb3:{arg}': {problem}")
    return lambda group: SB3Controller(run)
