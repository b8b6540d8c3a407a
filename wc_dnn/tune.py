"""``dsd-gym tune wc-dnn``: hyperparameter search for the WC-DNN with Optuna (:mod:`dsd_gym.study`).

A trial trains the config's model on the collected dataset with sampled optimiser and network
settings (:data:`SPACE`) into ``<out>/trial-NNNN/`` and scores the validation regret (tokens per
decision lost against the oracle, minimised) of its best epoch. Every epoch reports its validation
regret, so the median pruner stops a trial that is behind the others at the same epoch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from dsd_gym.backend import Backend
from dsd_gym.study import locations, optimize, trial_folder
from wc_dnn.config import WCDNNConfig, parse_config


def sample(trial: Any) -> dict[str, Any]:
    """The search space: ``train`` keys of the config."""
    return {
        "lr": trial.suggest_float("lr", 1e-4, 3e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [128, 256, 512, 1024]),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "regret_weight": trial.suggest_categorical("regret_weight", [0.0, 0.1, 1.0]),
        "model": {
            "hidden": trial.suggest_categorical("hidden", [16, 32, 64, 128]),
            "depth": trial.suggest_int("depth", 0, 3),
        },
    }


@dataclasses.dataclass(frozen=True)
class Settings:
    config: dict[str, Any]  # the WC-DNN config as JSON data
    data: tuple[str, ...]
    out: str


def objective(trial: Any, settings: Settings) -> float:
    """Train with the trial's settings; the validation regret of the best epoch."""
    import optuna

    from wc_dnn.train import train

    raw = settings.config
    sampled = sample(trial)
    model = {**raw["train"].get("model", {}), **sampled.pop("model")}
    config = parse_config(
        {**raw, "train": {**raw["train"], **sampled, "model": model}}, f"trial {trial.number}"
    )

    def report(epoch: int, val: dict[str, float]) -> None:
        trial.report(val["regret"], epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"epoch {epoch}: regret {val['regret']:.4f}")

    summary = train(config, list(settings.data), trial_folder(settings.out, trial), on_epoch=report)
    return float(summary["best_val"]["regret"])


def tune(
    config: WCDNNConfig, data: list[str], *, trials: int = 20, seed: int = 0, storage: str | None = None,
    study: str | None = None, out: str | Path | None = None, backend: Backend | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Search the WC-DNN's training settings on ``data`` until the study holds ``trials`` finished
    trials; see :func:`dsd_gym.study.optimize` for the summary."""
    from wc_dnn.dataset import read_sidecar

    for folder in data:
        read_sidecar(Path(folder))  # a missing or foreign dataset fails here, in one line
    name = study or f"wc-dnn-{config.name}"
    out, url = locations(name, out, storage)
    settings = Settings(
        config.model_dump(mode="json"), tuple(str(Path(d).absolute()) for d in data), str(out.absolute())
    )
    return optimize(objective, settings, url, name, "minimize", trials, backend, seed)
