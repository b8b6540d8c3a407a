"""``credit: round``: advantages along each session's own decisions (``agents.credit``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from agents.credit import session_advantages
from agents.train import train
from dsd_gym.cli import main


def _column(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)[:, None]


def test_each_session_bootstraps_from_its_own_next_decision() -> None:
    # Two sessions interleaved (0, 1, 0, 1, 0): session 0 decides at 0, 2, 4 and session 1 at 1, 3.
    values = _column(1, 2, 3, 4, 5)
    rewards = _column(10, 20, 30, 40, 50)
    session = np.array([[0], [1], [0], [1], [0]])
    advantages, valid = session_advantages(values, rewards, session, np.zeros_like(session), 0.5, 0.8)
    a2 = 30 + 0.5 * 5 - 3  # its next decision (4) ends the rollout's chain: δ alone
    a1 = 20 + 0.5 * 4 - 2
    a0 = 10 + 0.5 * 3 - 1 + 0.5 * 0.8 * a2
    assert advantages[:, 0] == pytest.approx([a0, a1, a2, 0, 0])
    assert valid[:, 0].tolist() == [True, True, True, False, False]


def test_an_episode_end_cuts_every_chain() -> None:
    values = _column(1, 1, 1, 1)
    rewards = _column(1, 1, 1, 1)
    session = np.array([[0], [0], [0], [0]])
    episode = np.array([[0], [0], [1], [1]])
    advantages, valid = session_advantages(values, rewards, session, episode, 0.9, 0.9)
    assert valid[:, 0].tolist() == [True, False, True, False]
    assert advantages[0, 0] == pytest.approx(1 + 0.9 - 1)


def _config(tmp_path: Path, **changes: object) -> Path:
    settings = {
        "n_timesteps": 1024, "n_envs": 2, "n_steps": 256, "batch_size": 256, "n_epochs": 2,
        "env_kwargs": {"horizon_s": 5, "reward": "round_rate"}, "credit": "round",
        "eval": {"freq": 1024, "variants": 1, "seed": 1000}, "checkpoint_freq": 1024,
        "policy_kwargs": {"net_arch": [16]}, **changes,
    }  # fmt: skip
    path = tmp_path / "ppo.yaml"
    path.write_text(yaml.safe_dump({"default": settings}))
    return path


def test_a_fleet_run_trains_with_round_credit(tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = train(
        "ppo", env_id="dsd_gym/DSDFleet-metro-5g-v0", config=_config(tmp_path), out=out, progress=False
    )
    assert summary["timesteps"] >= 1024
    assert json.loads((out / "run.json").read_text())["config"]["credit"] == "round"


def test_round_self_trains_with_round_credit(tmp_path: Path) -> None:
    config = _config(tmp_path, env_kwargs={"horizon_s": 5, "reward": "round_self"})
    summary = train(
        "ppo", env_id="dsd_gym/DSD-busy-cloud-v0", config=config, out=tmp_path / "run", progress=False
    )
    assert summary["timesteps"] >= 1024


@pytest.mark.parametrize(
    "algo, changes, expected",
    [
        ("ppo", {"env_kwargs": {"reward": "rate"}}, "credit: 'round' needs env_kwargs.reward round_rate or"),
        ("dqn", {"n_steps": None, "n_epochs": None}, "credit: 'round' does not apply to dqn"),
        ("ppo", {"credit": "session"}, "credit"),
    ],
)
def test_bad_credit_settings_give_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], algo: str, changes: dict, expected: str
) -> None:
    config = _config(tmp_path, **changes)
    if algo == "dqn":
        raw = yaml.safe_load(config.read_text())
        raw["default"] = {k: v for k, v in raw["default"].items() if k not in ("n_steps", "n_epochs")}
        config.write_text(yaml.safe_dump(raw))
    args = ["train", "rl", "--algo", algo, "--env", "dsd_gym/DSD-ideal-v0", "--config", str(config)]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and expected in err, err


def test_the_shipped_ppo_config_gives_round_credit_where_it_was_measured() -> None:
    from agents.algos import algo
    from agents.config import load_hyperparams

    for env_id, history, reward, gamma in (
        ("dsd_gym/DSD-busy-cloud-v0", 0, "round_self", 0.0),  # its env_kwargs override the default's history
        ("dsd_gym/DSDFleet-busy-cloud-v0", 2, "round_rate", 0.0),  # its own γ over the anchor's 0.5
        ("dsd_gym/DSDFleet-regime-shift-v0", 2, "round_rate", 0.5),
    ):
        params = load_hyperparams(algo("ppo"), env_id)
        assert params.credit == "round" and params.env_kwargs["reward"] == reward, env_id
        assert params.algo_kwargs["gamma"] == gamma and params.algo_kwargs["learning_rate"] == 1.0e-3, env_id
        assert params.env_kwargs["history"] == history, "env_kwargs merge with the default's"
    assert load_hyperparams(algo("ppo"), "dsd_gym/DSD-busy-cloud-v0").env_kwargs["horizon_s"] == 120
    assert load_hyperparams(algo("ppo"), "dsd_gym/DSDFleet-cellular-v0").credit == "step"
