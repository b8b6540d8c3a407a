"""``dsd-gym train rl``: learning, resume, the run folder, TensorBoard metrics, curves, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml

from agents.algos import ALGOS
from agents.train import train
from dsd_gym.cli import main
from dsd_gym.controllers.rl_run import read_run

ENV = "dsd_gym/DSD-ideal-v0"
# A simple decision: on `ideal` (α = 0.8, c = 0.2) γ = 4 beats γ = 1, and both beat autoregressive.
ENV_KWARGS = {
    "horizon_s": 8,
    "history": 1,
    "window_choices": [1, 4],
    "modes": ["distributed", "autoregressive"],
}
COMMON = {
    "env_kwargs": ENV_KWARGS, "eval": {"freq": 1024, "variants": 2, "seed": 1000}, "checkpoint_freq": 1024,
}  # fmt: skip
SMALL: dict[str, dict[str, Any]] = {
    "ppo": {"n_envs": 4, "n_steps": 128, "batch_size": 128, "n_epochs": 4, "learning_rate": "lin_1.0e-3",
            "policy_kwargs": {"net_arch": [32, 32], "activation_fn": "tanh"}},
    "a2c": {"n_envs": 4, "n_steps": 8, "policy_kwargs": {"net_arch": [32]}},
    "dqn": {"n_envs": 1, "learning_starts": 200, "buffer_size": 5000, "batch_size": 32,
            "policy_kwargs": {"net_arch": [32]}},
    "recurrent-ppo": {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 2,
                      "policy": "MlpLstmPolicy", "policy_kwargs": {"net_arch": [16], "lstm_hidden_size": 16}},
    "qrdqn": {"n_envs": 1, "learning_starts": 200, "buffer_size": 5000, "batch_size": 32,
              "policy_kwargs": {"net_arch": [32], "n_quantiles": 5}},
}  # fmt: skip


def _config(tmp_path: Path, algo: str, **changes: Any) -> Path:
    settings = {**COMMON, **SMALL[algo], "n_timesteps": 2048, **changes}
    path = tmp_path / f"{algo}.yaml"
    path.write_text(yaml.safe_dump({"default": settings}))
    return path


def _random_throughput(seed: int = 1000, variants: int = 2) -> float:
    """A uniformly random policy on the episodes the held-out evaluation runs."""
    env = gym.make(ENV, **ENV_KWARGS)
    rng = np.random.default_rng(0)
    out = []
    for i in range(variants):
        env.reset(seed=seed + i, options={"values": {}})
        tokens, done = 0, False
        while not done:
            _, _, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
            tokens += info["tokens"]
            done = terminated or truncated
        out.append(tokens / ENV_KWARGS["horizon_s"])
    return float(np.mean(out))


def test_ppo_learns_to_beat_a_random_policy(tmp_path: Path) -> None:
    # ideal's telemetry barely varies: running normalisation would turn its constant features into noise.
    changes = {
        "n_timesteps": 4096,
        "normalize": False,
        "batch_size": 64,
        "n_epochs": 10,
        "learning_rate": 1e-3,
    }
    summary = train("ppo", env_id=ENV, config=_config(tmp_path, "ppo", **changes), out=tmp_path / "run",
                    progress=False)  # fmt: skip
    random = _random_throughput()  # measured 82.8 tok/s; always γ = 4: 115.6; PPO reaches it by 2048 steps
    history = json.loads((tmp_path / "run" / "evaluations.json").read_text())
    assert history[0]["timesteps"] == 0 and history[-1]["timesteps"] == 4096
    assert summary["last_eval_throughput_tok_s"] > 1.3 * random, (summary, random)
    assert summary["best_eval_throughput_tok_s"] >= summary["last_eval_throughput_tok_s"]
    assert (tmp_path / "run" / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_every_algorithm_trains_and_writes_its_run(tmp_path: Path, algo: str) -> None:
    out = tmp_path / "run"
    summary = train(
        algo, env_id=ENV, config=_config(tmp_path, algo, n_timesteps=512), out=out, progress=False
    )
    info, folder = read_run(out / "model.zip")
    assert folder == out and info.algo == algo and info.recurrent == ALGOS[algo].recurrent
    assert info.decisions == [[1, "distributed"], [4, "distributed"], [0, "autoregressive"]]
    assert info.history == 1 and info.normalize_obs
    assert summary["timesteps"] >= 512 and summary["env_steps_per_s"] > 0
    model = ALGOS[algo].load().load(out / "model.zip", device="cpu")
    assert model.num_timesteps == summary["timesteps"]
    for name in (
        "vecnormalize.pkl",
        "best/model.zip",
        "best/vecnormalize.pkl",
        "evaluations.json",
        "curve.png",
    ):
        assert (out / name).is_file(), name


def _vecnorm_count(path: Path) -> float:
    import pickle

    with open(path, "rb") as f:
        return float(pickle.load(f).obs_rms.count)


def test_resume_continues_from_the_newest_checkpoint(tmp_path: Path) -> None:
    config = _config(tmp_path, "ppo", n_timesteps=3072)
    out = tmp_path / "run"
    train("ppo", env_id=ENV, config=config, out=out, progress=False)
    # An interruption after step 2048: the newest checkpoint and the evaluations after it are lost.
    (out / "checkpoints" / "step_3072.zip").unlink()
    (out / "checkpoints" / "step_3072_vecnormalize.pkl").unlink()
    count_at_2048 = _vecnorm_count(out / "checkpoints" / "step_2048_vecnormalize.pkl")
    summary = train("ppo", env_id=ENV, config=config, out=out, resume=True, progress=False)
    assert summary["resumed_from"] == 2048
    assert summary["trained_this_call"] == 1024 and summary["timesteps"] == 3072
    # The normalisation statistics went on from the checkpoint's: 1024 observations of the steps and the
    # 4 envs' first observations after the resumed run's reset.
    assert _vecnorm_count(out / "vecnormalize.pkl") == pytest.approx(count_at_2048 + 1024 + 4)
    steps = [row["timesteps"] for row in json.loads((out / "evaluations.json").read_text())]
    assert steps == [0, 1024, 2048, 3072]
    # Asking for more continues again, from the final checkpoint.
    more = train("ppo", env_id=ENV, config=config, out=out, resume=True, timesteps=4096, progress=False)
    assert more["resumed_from"] == 3072 and more["timesteps"] == 4096


def test_tensorboard_holds_the_dsd_metrics(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    train("ppo", env_id=ENV, config=_config(tmp_path, "ppo", n_timesteps=4096), out=out, progress=False)
    events = EventAccumulator(str(next((out / "tensorboard").rglob("events.out.tfevents.*"))),
                              size_guidance={"histograms": 0, "scalars": 0})  # fmt: skip
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in ("dsd/episode_throughput_tok_s", "dsd/acceptance", "dsd/tokens_per_round", "dsd/gamma_mean",
                "dsd/mode_share/autoregressive", "dsd/round_ms/verify", "eval/throughput_tok_s"):  # fmt: skip
        assert tag in scalars, tag
    assert "dsd/gamma" in events.Tags()["histograms"]
    acceptance = [e.value for e in events.Scalars("dsd/acceptance")]
    assert all(0 < a <= 1 for a in acceptance)


def test_curves_of_several_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for algo in ("ppo", "a2c"):
        train(
            algo,
            env_id=ENV,
            config=_config(tmp_path, algo, n_timesteps=512),
            out=tmp_path / algo,
            progress=False,
        )
    assert (
        main(["curves", str(tmp_path / "ppo"), str(tmp_path / "a2c"), "--out", str(tmp_path / "c.png")]) == 0
    )
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


# -- errors: one line, exit 2 -------------------------------------------------------------------


def _cli_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_bad_algorithm_env_and_config_give_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["train", "rl", "--env", ENV, "--out", str(tmp_path / "run")]
    assert "allowed: ppo, a2c, dqn" in _cli_error([*base, "--algo", "sac"], capsys)
    assert "dsd-gym ids" in _cli_error(
        ["train", "rl", "--algo", "ppo", "--env", "dsd_gym/DSD-nope-v0"], capsys
    )
    cases = {
        "unknown key 'n_stepz'": {"n_stepz": 5},
        "activation_fn 'swish' is unknown": {"policy_kwargs": {"activation_fn": "swish"}},
        "is not lin_<number>": {"learning_rate": "lin_fast"},
        "n_envs": {"n_envs": 0},
        "bad env_kwargs": {"env_kwargs": {"horizon": 3}},
        "history": {"env_kwargs": {"history": -1}},
    }
    for expected, change in cases.items():
        config = _config(tmp_path, "ppo", **change)
        assert expected in _cli_error([*base, "--algo", "ppo", "--config", str(config)], capsys), expected
    missing = _cli_error([*base, "--algo", "ppo", "--config", str(tmp_path / "none.yaml")], capsys)
    assert "no such file" in missing
    (tmp_path / "bad.yaml").write_text("default: [1, 2\n")
    assert "not valid YAML" in _cli_error(
        [*base, "--algo", "ppo", "--config", str(tmp_path / "bad.yaml")], capsys
    )
    assert "--timesteps" in _cli_error([*base, "--algo", "ppo", "--timesteps", "0"], capsys)


def test_a_finished_run_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, "a2c", n_timesteps=256)
    out = tmp_path / "run"
    train("a2c", env_id=ENV, config=config, out=out, progress=False)
    before = (out / "model.zip").read_bytes()
    args = ["train", "rl", "--algo", "a2c", "--env", ENV, "--config", str(config), "--out", str(out)]
    assert "already holds a run; pass --resume" in _cli_error(args, capsys)
    assert "holds a2c on" in _cli_error([*args, "--resume", "--seed", "7"], capsys)
    assert (out / "model.zip").read_bytes() == before


def test_shipped_configs_parse_for_every_algorithm() -> None:
    from agents.config import load_hyperparams

    for name, algo in ALGOS.items():
        for env_id in ("dsd_gym/DSD-v0", "dsd_gym/DSD-cellular-v0", "dsd_gym/DSDFleet-busy-cloud-v0"):
            params = load_hyperparams(algo, env_id)
            assert params.n_timesteps <= 500_000, (name, env_id)
