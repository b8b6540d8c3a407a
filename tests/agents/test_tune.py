"""``dsd-gym tune rl``: trials train real runs and score their held-out throughput; a rerun resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from agents.tune import SPACES, tune
from dsd_gym.cli import main

from .test_train import COMMON, ENV, SMALL


@pytest.mark.slow
def test_tune_ppo_resumes_its_study_and_scores_held_out_throughput(tmp_path: Path) -> None:
    config = tmp_path / "ppo.yaml"
    config.write_text(yaml.safe_dump({"default": {**COMMON, **SMALL["ppo"], "n_timesteps": 2048}}))
    storage = str(tmp_path / "journal.log")  # the journal storage
    argv = ["tune", "rl", "--algo", "ppo", "--env", ENV, "--config", str(config), "--timesteps", "512",
            "--storage", storage, "--out", str(tmp_path / "trials"), "--jobs", "1"]  # fmt: skip
    assert main([*argv, "--trials", "1"]) == 0
    assert main([*argv, "--trials", "2"]) == 0
    summary = tune("ppo", env_id=ENV, config=config, trials=2, timesteps=512, storage=storage,
                   out=tmp_path / "trials")  # fmt: skip
    assert (summary["finished_before"], summary["ran"], summary["finished"]) == (2, 0, 2)
    best = summary["best"]
    run = tmp_path / "trials" / f"trial-{best['number']:04d}" / "run"
    evaluations = json.loads((run / "evaluations.json").read_text())
    assert best["value"] == pytest.approx(max(e["mean"] for e in evaluations))
    assert set(best["params"]) >= {"learning_rate", "n_steps", "batch_size", "gamma"}


def test_tune_rl_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "rl", "--algo", "qrdqn"]) == 2
    assert capsys.readouterr().err == f"error: --algo qrdqn: no search space; allowed: {', '.join(SPACES)}\n"
