"""``dsd-gym tune wc-dnn``: a persistent Optuna study that a rerun resumes, on processes or in-process."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from dsd_gym.backend import Backend
from dsd_gym.cli import main
from wc_dnn.tune import tune


@pytest.mark.slow
def test_a_study_resumes_and_its_best_trial_is_a_trained_run(tiny_dataset: Path, tiny_config, tmp_path):
    config = tiny_config(**{"train.epochs": 3})
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    data = [str(tiny_dataset)]
    first = tune(config, data, trials=2, storage=storage, out=tmp_path, backend=Backend(jobs=2))
    assert (first["finished_before"], first["ran"], first["finished"], first["failures"]) == (0, 2, 2, {})
    again = tune(config, data, trials=3, storage=storage, out=tmp_path, backend=Backend(jobs=1))
    assert (again["finished_before"], again["ran"], again["finished"]) == (2, 1, 3)
    study = optuna.load_study(study_name="wc-dnn-tiny", storage=storage)
    assert sorted(t.number for t in study.trials) == [0, 1, 2]
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 3  # no two slots drew alike
    best = again["best"]
    metrics = json.loads((tmp_path / f"trial-{best['number']:04d}" / "metrics.json").read_text())
    assert best["value"] == pytest.approx(metrics["best_val"]["regret"])
    assert best["value"] == min(t.value for t in study.trials if t.value is not None)
    assert main(["tune", "wc-dnn", "--config", "x.yaml", "--trials", "0"]) == 2


def test_tune_errors_are_one_line(tiny_dataset: Path, write_config, tiny_config, tmp_path, capsys) -> None:
    path = write_config(tmp_path / "c.yaml", tiny_config())
    argv = ["tune", "wc-dnn", "--config", str(path), "--data", str(tiny_dataset)]
    assert main([*argv, "--storage", "nosuchdb://x"]) == 2
    assert capsys.readouterr().err.startswith("error: --storage nosuchdb://x: not an Optuna storage")
    assert main([*argv, "--data", str(tmp_path / "none")]) == 2
    assert "no such directory" in capsys.readouterr().err


@pytest.mark.slow
def test_trials_on_ray_equal_trials_on_processes(
    tiny_dataset: Path, tiny_config, tmp_path, local_ray
) -> None:
    """The same study on either backend: each trial slot draws the same parameters and trains to the
    same validation regret (training is seeded), so the two studies hold the same trials."""
    config = tiny_config(**{"train.epochs": 2})
    trials = {}
    for backend in (Backend(jobs=2), Backend("ray")):
        out = tmp_path / backend.name
        storage = f"sqlite:///{out / 'study.db'}"
        summary = tune(config, [str(tiny_dataset)], trials=2, storage=storage, out=out, backend=backend)
        assert (summary["ran"], summary["failures"]) == (2, {})
        study = optuna.load_study(study_name="wc-dnn-tiny", storage=storage)
        # trial numbers follow the order trials start in, which parallel workers do not fix
        trials[backend.name] = sorted((sorted(t.params.items()), t.value) for t in study.trials)
    assert trials["ray"] == trials["processes"]
