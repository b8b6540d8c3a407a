"""``dsd-gym tune rl``: hyperparameter search for an RL agent with Optuna (:mod:`dsd_gym.study`).

The search spaces follow rl-baselines3-zoo's ``hyperparams_opt.py`` (narrowed to what suits a step of
one verification round: long horizons, small networks). A trial writes its parameters over the
algorithm's config (``configs/agents/<algo>.yaml`` or ``--config``) into ``<out>/trial-NNNN/``,
trains there for ``timesteps`` env steps (:func:`agents.train.train`) and scores the best held-out
evaluation throughput (tok/s, maximised). Runs are not pruned: a held-out evaluation is a few
episodes, too noisy to stop a run on before its end at these budgets.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from agents.algos import algo as find_algo
from agents.config import default_config_path
from dsd_gym.backend import Backend
from dsd_gym.errors import UserError
from dsd_gym.study import locations, optimize, trial_folder

NET_ARCH = {"small": [64, 64], "medium": [128, 128]}


def _common(trial: Any) -> dict[str, Any]:
    return {
        "gamma": trial.suggest_categorical("gamma", [0.98, 0.99, 0.995, 0.999]),
        "policy_kwargs": {
            "net_arch": NET_ARCH[trial.suggest_categorical("net_arch", list(NET_ARCH))],
            "activation_fn": trial.suggest_categorical("activation_fn", ["tanh", "relu"]),
        },
    }


def sample_ppo(trial: Any) -> dict[str, Any]:
    return {
        **_common(trial),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True),
        "n_steps": trial.suggest_categorical("n_steps", [64, 128, 256, 512]),
        "batch_size": trial.suggest_categorical("batch_size", [64, 128, 256]),
        "n_epochs": trial.suggest_categorical("n_epochs", [5, 10, 20]),
        "gae_lambda": trial.suggest_categorical("gae_lambda", [0.9, 0.95, 0.98]),
        "ent_coef": trial.suggest_float("ent_coef", 1e-4, 0.05, log=True),
        "clip_range": trial.suggest_categorical("clip_range", [0.1, 0.2, 0.3]),
    }


def sample_a2c(trial: Any) -> dict[str, Any]:
    return {
        **_common(trial),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
        "n_steps": trial.suggest_categorical("n_steps", [5, 8, 16, 32]),
        "gae_lambda": trial.suggest_categorical("gae_lambda", [0.9, 0.95, 1.0]),
        "ent_coef": trial.suggest_float("ent_coef", 1e-4, 0.05, log=True),
        "vf_coef": trial.suggest_float("vf_coef", 0.2, 0.8),
    }


def sample_dqn(trial: Any) -> dict[str, Any]:
    return {
        **_common(trial),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
        "buffer_size": trial.suggest_categorical("buffer_size", [10_000, 50_000, 100_000]),
        "train_freq": trial.suggest_categorical("train_freq", [1, 4, 8]),
        "target_update_interval": trial.suggest_categorical("target_update_interval", [500, 1000, 2000]),
        "exploration_fraction": trial.suggest_float("exploration_fraction", 0.05, 0.3),
        "exploration_final_eps": trial.suggest_float("exploration_final_eps", 0.0, 0.1),
    }


SPACES = {"ppo": sample_ppo, "a2c": sample_a2c, "dqn": sample_dqn}


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every trial shares."""

    algo: str
    env_id: str
    config: str
    timesteps: int
    seed: int
    out: str


def objective(trial: Any, settings: Settings) -> float:
    """Train with the trial's parameters; the best held-out evaluation throughput (tok/s)."""
    from agents.train import train

    raw = yaml.safe_load(Path(settings.config).read_text())
    sampled = SPACES[settings.algo](trial)
    section = {**raw.get(settings.env_id, {}), **sampled}
    folder = trial_folder(settings.out, trial)
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "hyperparams.yaml"
    config.write_text(yaml.safe_dump({**raw, settings.env_id: section}, sort_keys=False))
    summary = train(
        settings.algo, env_id=settings.env_id, config=config, timesteps=settings.timesteps,
        seed=settings.seed, out=folder / "run", progress=False,
    )  # fmt: skip
    best = summary["best_eval_throughput_tok_s"]
    if best is None:
        raise UserError(f"trial {trial.number}: no held-out evaluation ran")
    return float(best)


def tune(
    algo_name: str, *, env_id: str = "dsd_gym/DSD-v0", config: str | Path | None = None, trials: int = 20,
    timesteps: int = 50_000, seed: int = 0, storage: str | None = None, study: str | None = None,
    out: str | Path | None = None, backend: Backend | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Search ``algo_name``'s hyperparameters on ``env_id`` until the study holds ``trials`` finished
    trials; see :func:`dsd_gym.study.optimize` for the summary."""
    algo = find_algo(algo_name)
    if algo.name not in SPACES:
        raise UserError(f"--algo {algo.name}: no search space; allowed: {', '.join(SPACES)}")
    name = study or f"{algo.name}-{env_id.split('/')[-1]}"
    out, url = locations(name, out, storage)
    path = Path(config) if config is not None else default_config_path(algo)
    from agents.config import load_hyperparams

    load_hyperparams(algo, env_id, path)  # a bad config or env id fails here, in one line
    settings = Settings(algo.name, env_id, str(path.absolute()), timesteps, seed, str(out.absolute()))
    return optimize(objective, settings, url, name, "maximize", trials, backend, seed)
