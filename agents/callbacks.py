"""Training callbacks: the DSD metrics in TensorBoard, held-out evaluation, checkpoints.

- :class:`DSDMetrics` reads every step's ``info`` (the round's breakdown and counts, see
  ``dsd_gym.envs``) and, every ``every`` env steps, records under ``dsd/``: episode throughput
  (committed tokens over the simulated horizon), tokens per round, acceptance (accepted / drafted),
  mean γ and a γ histogram, the share of each mode, and the mean round breakdown in ms.
- :class:`HeldOutEvaluation` runs the deterministic policy for one episode on each of a fixed list of
  scenario variants (``ScenarioSampler.variants``: drawn apart from the training draws) every
  ``eval.freq`` env steps, with the training normalisation frozen; writes ``evaluations.json`` and
  keeps the best model in ``best/``.
- :class:`Checkpoints` saves the model and its normalisation to ``checkpoints/step_<N>`` every
  ``freq`` env steps, keeping the newest ``keep``.

Every file is written atomically: an interrupted run leaves the previous version, never half of one.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.config import HyperParams
from dsd_gym.controllers.rl_run import MODE_NAMES
from dsd_gym.evaluation.report import write_atomic, write_text

__all__ = ["Checkpoints", "DSDMetrics", "HeldOutEvaluation", "save_model"]

_PARTS = ("draft", "uplink", "queue", "verify", "downlink")
_TB_ONLY = ("stdout", "log", "json", "csv")


def save_model(model: Any, zip_path: Path, stats_path: Path) -> None:
    """The model (SB3 zip) and, when it has one, its VecNormalize statistics, each atomically."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(zip_path, lambda temp: _save_zip(model, temp))
    vecnorm = model.get_vec_normalize_env()
    if vecnorm is not None:
        write_atomic(stats_path, lambda temp: vecnorm.save(str(temp)))


def _save_zip(model: Any, temp: Path) -> None:
    with open(temp, "wb") as f:  # a file object: SB3 would add ".zip" to a path
        model.save(f)


class DSDMetrics(BaseCallback):
    """The simulated system's metrics of the training rollouts, under ``dsd/`` in TensorBoard."""

    def __init__(self, horizon_s: float, every: int = 2048) -> None:
        super().__init__()
        self.horizon_s = horizon_s
        self.every = every
        self._last = 0
        self._episode_tokens: np.ndarray | None = None
        self._reset()

    def _reset(self) -> None:
        self.throughputs: list[float] = []
        self.gammas: list[int] = []
        self.modes: Counter[int] = Counter()
        self.tokens = self.rounds = self.accepted = self.drafted = 0
        self.breakdown = np.zeros(len(_PARTS))
        self.distributed = 0

    def _on_step(self) -> bool:
        infos, dones = self.locals["infos"], self.locals["dones"]
        if self._episode_tokens is None:
            self._episode_tokens = np.zeros(len(infos))
        for i, info in enumerate(infos):
            self._episode_tokens[i] += info["tokens"]
            if dones[i]:
                self.throughputs.append(self._episode_tokens[i] / self.horizon_s)
                self._episode_tokens[i] = 0.0
            mode = info["mode"]
            if mode < 0:  # the step ran no round of the deciding session
                continue
            self.rounds += 1
            self.tokens += info["committed"]
            self.modes[mode] += 1
            self.gammas.append(info["gamma"])
            if info["gamma"] > 0:
                self.accepted += info["accepted"]
                self.drafted += info["gamma"]
            if mode == 0:  # distributed: the breakdown is the edge's view of the round
                self.distributed += 1
                self.breakdown += [info[f"{part}_ms"] for part in _PARTS]
        if self.num_timesteps - self._last >= self.every:
            self._last = self.num_timesteps
            self._record()
        return True

    def _record(self) -> None:
        log = self.logger.record
        if self.throughputs:
            log("dsd/episode_throughput_tok_s", float(np.mean(self.throughputs)))
        if self.rounds:
            log("dsd/tokens_per_round", self.tokens / self.rounds)
            log("dsd/gamma_mean", float(np.mean(self.gammas)))
            log("dsd/gamma", np.asarray(self.gammas), exclude=_TB_ONLY)
            for mode, name in MODE_NAMES.items():
                log(f"dsd/mode_share/{name}", self.modes[int(mode)] / self.rounds)
        if self.drafted:
            log("dsd/acceptance", self.accepted / self.drafted)
        if self.distributed:
            for part, total in zip(_PARTS, self.breakdown, strict=True):
                log(f"dsd/round_ms/{part}", float(total / self.distributed))
        self._reset()


class HeldOutEvaluation(BaseCallback):
    """Throughput of the deterministic policy on held-out scenario variants, during training."""

    def __init__(self, folder: Path, env_id: str, params: HyperParams, upto: int | None = None) -> None:
        """``upto``: a resumed run's step count; evaluations recorded after it are dropped (the run
        goes on from the checkpoint, and evaluates those steps again)."""
        super().__init__()
        self.folder = Path(folder)
        self.env_id = env_id
        self.env_kwargs = dict(params.env_kwargs)
        self.spec = params.eval
        self.path = self.folder / "evaluations.json"
        history = json.loads(self.path.read_text()) if upto is not None and self.path.exists() else []
        self.history: list[dict[str, Any]] = [row for row in history if row["timesteps"] <= (upto or 0)]
        self.best: float | None = max((row["mean"] for row in self.history), default=None)
        self._env: Any = None
        self._variants: list[dict[str, Any]] = []

    def _environment(self) -> Any:
        if self._env is None:
            import gymnasium as gym

            self._env = gym.make(self.env_id, **self.env_kwargs)
            sampler = self._env.unwrapped.sampler
            self._variants = [values for _, values in sampler.variants(self.spec.variants, self.spec.seed)]
        return self._env

    def _on_training_start(self) -> None:
        if not self.history:
            self.evaluate(self.model)

    def _on_step(self) -> bool:
        last = self.history[-1]["timesteps"] if self.history else 0
        if self.num_timesteps - last >= self.spec.freq:
            self.evaluate(self.model)
        return True

    def evaluate(self, model: Any, final: bool = False) -> None:
        """Evaluate ``model`` now (once per step count), record and keep the best."""
        steps = int(model.num_timesteps)
        if self.history and self.history[-1]["timesteps"] == steps:
            return
        env = self._environment()
        vecnorm = model.get_vec_normalize_env()
        per_variant = [self._episode(model, env, vecnorm, i, v) for i, v in enumerate(self._variants)]
        mean = float(np.mean(per_variant))
        self.history.append({"timesteps": steps, "throughput_tok_s": per_variant, "mean": mean})
        write_text(self.path, json.dumps(self.history, indent=1) + "\n")
        model.logger.record("eval/throughput_tok_s", mean)
        if final:
            model.logger.dump(steps)
        if self.best is None or mean > self.best:
            self.best = mean
            save_model(model, self.folder / "best" / "model.zip", self.folder / "best" / "vecnormalize.pkl")

    def _episode(self, model: Any, env: Any, vecnorm: Any, index: int, values: dict[str, Any]) -> float:
        obs, _ = env.reset(seed=self.spec.seed + index, options={"values": values})
        state, start, tokens, done = None, np.ones(1, dtype=bool), 0, False
        while not done:
            x = vecnorm.normalize_obs(obs) if vecnorm is not None else obs
            action, state = model.predict(x[None], state=state, episode_start=start, deterministic=True)
            start = np.zeros(1, dtype=bool)
            obs, _, terminated, truncated, info = env.step(int(action[0]))
            tokens += info["tokens"]
            done = terminated or truncated
        return tokens / env.unwrapped.horizon_s


class Checkpoints(BaseCallback):
    """``checkpoints/step_<N>.zip`` and ``step_<N>_vecnormalize.pkl`` every ``freq`` env steps."""

    def __init__(self, folder: Path, freq: int, keep: int = 3) -> None:
        super().__init__()
        self.dir = Path(folder) / "checkpoints"
        self.freq = freq
        self.keep = keep
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps - self.num_timesteps % self.freq

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.freq:
            self._last = self.num_timesteps
            self.save()
        return True

    def save(self) -> None:
        n = self.num_timesteps
        save_model(self.model, self.dir / f"step_{n}.zip", self.dir / f"step_{n}_vecnormalize.pkl")
        saved = sorted(int(p.stem.split("_")[1]) for p in self.dir.glob("step_*.zip"))
        for old in saved[: -self.keep]:
            (self.dir / f"step_{old}.zip").unlink(missing_ok=True)
            (self.dir / f"step_{old}_vecnormalize.pkl").unlink(missing_ok=True)
