"""RL export: ``sb3:PATH`` in-process and the exported TorchScript file decide identically, everywhere.

Tiny agents of every algorithm are trained once per session on ``ideal`` (history 1, normalised
observations; one PPO without either). Telemetry is recorded while ``sb3:PATH`` drives every session
of ``flaky`` — targets fail there, so some decisions produce no round and must not push a history row.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from agents.export import export_run
from dsd_gym.cli import main
from dsd_gym.config import load_scenario
from dsd_gym.controllers import parse_policy
from dsd_gym.controllers.rl_algos import ALGOS
from dsd_gym.controllers.sb3 import SB3Controller, load_run
from dsd_gym.errors import UserError
from dsd_gym.runner import simulation
from dsd_gym.runtime import load_controller
from dsd_gym.telemetry import NAMES

ENV = "dsd_gym/DSD-ideal-v0"
ENV_KWARGS = {
    "horizon_s": 4,
    "history": 1,
    "window_choices": [1, 4],
    "modes": ["distributed", "autoregressive"],
}
TINY: dict[str, dict[str, Any]] = {
    "ppo": {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 2, "policy_kwargs": {"net_arch": [16]}},
    "a2c": {"n_envs": 2, "n_steps": 8, "policy_kwargs": {"net_arch": [16]}},
    "dqn": {"n_envs": 1, "learning_starts": 64, "buffer_size": 1000, "batch_size": 16, "train_freq": 1,
            "exploration_fraction": 0.5, "policy_kwargs": {"net_arch": [16]}},
    "qrdqn": {"n_envs": 1, "learning_starts": 64, "buffer_size": 1000, "batch_size": 16, "train_freq": 1,
              "exploration_fraction": 0.5, "policy_kwargs": {"net_arch": [16], "n_quantiles": 5}},
    "recurrent-ppo": {"n_envs": 2, "n_steps": 32, "batch_size": 32, "n_epochs": 2, "policy": "MlpLstmPolicy",
                      "policy_kwargs": {"net_arch": [16], "lstm_hidden_size": 8, "n_lstm_layers": 2}},
}  # fmt: skip
RUNS = [*TINY, "ppo-plain"]  # ppo-plain: history 0, no normalisation
# Every decision of the runs' table is allowed; targets fail (MTBF 60 s) within the simulated time.
FLAKY = ["duration_s=30", "warmup_s=0", "control.window_choices=[1, 4]",
         "control.modes=[distributed, autoregressive]", "cloud.targets.0.mtbf_s=10"]  # fmt: skip


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from agents.train import train

    root = tmp_path_factory.mktemp("rl-runs")
    out = {}
    for name in RUNS:
        algo = name.removesuffix("-plain")
        settings = {"n_timesteps": 128, "env_kwargs": ENV_KWARGS, "checkpoint_freq": 10**6,
                    "eval": {"freq": 10**6, "variants": 1, "seed": 1000}, **TINY[algo]}  # fmt: skip
        if name.endswith("-plain"):
            settings.update(normalize=False, env_kwargs={**ENV_KWARGS, "history": 0})
        config = root / f"{name}.yaml"
        config.write_text(yaml.safe_dump({"default": settings}))
        train(algo, env_id=ENV, config=config, out=root / name, progress=False)
        out[name] = root / name
    return out


@pytest.fixture(scope="session")
def exported(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("rl-exported")
    return {name: export_run(run, folder / f"{name}.pt") for name, run in runs.items()}


@pytest.fixture(scope="session")
def recorded(runs: dict[str, Path]) -> dict[str, dict[int, list[tuple[np.ndarray, int, tuple[int, int]]]]]:
    """Per run, per session: (telemetry vector, rounds so far, in-process decision) of each decision."""
    scenario = load_scenario("flaky", FLAKY)
    out = {}
    for name, path in runs.items():
        run = load_run(path)
        log: dict[int, list[Any]] = defaultdict(list)

        class Recording(SB3Controller):
            __slots__ = ()

            def decide(self, session: Any, log: dict[int, list[Any]] = log) -> Any:
                decision = super().decide(session)
                tracker = session.telemetry
                log[session.sid].append(
                    (tracker.vector(), tracker.rounds, (decision.gamma, int(decision.mode)))
                )
                return decision

        simulation(scenario, lambda group, run=run: Recording(run), seed=0).run()
        out[name] = dict(log)
    return out


def _forward(module: Any, vectors: list[np.ndarray]) -> list[tuple[int, int]]:
    module.reset()
    return [tuple(module(torch.from_numpy(v))) for v in vectors]


@pytest.mark.parametrize("name", RUNS)
def test_the_file_decides_exactly_as_the_policy_in_process(name, exported, recorded) -> None:
    module = load_controller(exported[name]).module
    sessions = recorded[name]
    lost = 0
    for rows in sessions.values():
        vectors = [v for v, _, _ in rows]
        expected = [d for _, _, d in rows]
        assert _forward(module, vectors) == expected
        state, threaded = module.initial_state(1), []
        for v in vectors:
            gamma, mode, state = module.decide(torch.from_numpy(v).unsqueeze(0), state)
            threaded.append((int(gamma[0]), int(mode[0])))
        assert threaded == expected
        lost += sum(a[1] == b[1] for a, b in zip(rows, rows[1:], strict=False))
    assert lost > 0, "no decision without a round: the history rule went untested"
    # The sessions side by side in one batch give each session's own decisions.
    length = min(len(rows) for rows in sessions.values())
    batch = [rows[:length] for rows in sessions.values()]
    state, columns = module.initial_state(len(batch)), []
    for t in range(length):
        features = torch.from_numpy(np.stack([rows[t][0] for rows in batch]))
        gamma, mode, state = module.decide(features, state)
        columns.append(list(zip(gamma.tolist(), mode.tolist(), strict=True)))
    assert [[c[i] for c in columns] for i in range(len(batch))] == [[d for _, _, d in rows] for rows in batch]


def test_the_recorded_decisions_move(recorded) -> None:
    moving = [
        name
        for name, sessions in recorded.items()
        if len({d for rows in sessions.values() for *_, d in rows}) > 1
    ]
    assert len(moving) >= 3, moving  # otherwise "identical decisions" would prove little


def test_a_torch_only_process_loads_every_file_and_decides_identically(
    exported, recorded, torch_only
) -> None:
    cases = {}
    for name, path in exported.items():
        rows = next(iter(recorded[name].values()))
        cases[name] = {
            "path": str(path),
            "features": [v.tolist() for v, _, _ in rows],
            "expected": [list(d) for *_, d in rows],
        }
    out = torch_only(
        """
        import torch
        out = {}
        for name, case in json.load(sys.stdin).items():
            extra = {"metadata.json": ""}
            module = torch.jit.load(case["path"], _extra_files=extra)
            decided = [list(module(torch.tensor(row, dtype=torch.float32))) for row in case["features"]]
            out[name] = {"metadata": json.loads(extra["metadata.json"]), "ok": decided == case["expected"]}
        print(json.dumps(out))
        """,
        cases,
    )
    for name, result in out.items():
        assert result["ok"], name
        metadata = result["metadata"]
        algo = name.removesuffix("-plain")
        assert metadata["kind"] == "sb3" and metadata["algo"] == algo and metadata["env_id"] == ENV
        assert [f["name"] for f in metadata["features"]] == list(NAMES)
        assert metadata["decisions"] == [[1, "distributed"], [4, "distributed"], [0, "autoregressive"]]
        assert metadata["window_choices"] == [1, 4] and metadata["modes"] == ["distributed", "autoregressive"]
        assert metadata["provenance"]["code_version"] and metadata["provenance"]["inputs"]["timesteps"] >= 128
        if name.endswith("-plain"):
            assert metadata["history"] == 0 and metadata["normalization"] is None
        else:
            assert metadata["history"] == 1 and len(metadata["normalization"]["mean"]) == 2 * len(NAMES)
        lstm = 2 * 2 * 8 if ALGOS[algo].recurrent else 0
        assert metadata["state_size"] == (metadata["history"] + 1) * len(NAMES) + lstm


@pytest.mark.parametrize("name", ["recurrent-ppo", "qrdqn"])
def test_sb3_and_its_export_give_identical_simulate_and_evaluate_results(
    name, runs, exported, tmp_path, capsys
) -> None:
    specs = [f"sb3:{runs[name]}", f"torchscript:{exported[name]}"]
    policies = [arg for spec in specs for arg in ("--policy", spec)]
    short = ["--set", "duration_s=12", "--set", "warmup_s=2"]
    assert main(["simulate", "--scenario", "metro-5g", *short, "--json", *policies]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [{**row, "policy": None} for row in rows[:1]] == [{**row, "policy": None} for row in rows[1:]]
    out = tmp_path / "evaluate.json"
    evaluate = ["evaluate", "--scenario", "metro-5g", "--seeds", "2", "--mode", "ego", "--jobs", "1"]
    assert main([*evaluate, *short, "--no-oracle", "--json", str(out), *policies]) == 0
    capsys.readouterr()
    ours = [row for row in json.loads(out.read_text())["rows"] if row["policy"] in specs]
    assert len(ours) == 2 and {**ours[0], "policy": None} == {**ours[1], "policy": None}


# -- errors: one line, exit 2 -------------------------------------------------------------------


def _cli_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture
def broken(runs: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    """A copy of the ppo run with one file replaced by garbage."""

    def make(file: str) -> Path:
        folder = tmp_path / f"broken-{file.replace('/', '-')}"
        shutil.copytree(runs["ppo"], folder)
        (folder / file).write_bytes(b"not what it should be")
        return folder

    return make


def test_bad_paths_and_runs_give_one_line(runs, broken, tmp_path, capsys) -> None:
    simulate = ["simulate", "--scenario", "ideal", "--set", "duration_s=4", "--set", "warmup_s=1", "--policy"]
    export = ["export", "--out", str(tmp_path / "c.pt"), "--run"]
    cases = {
        str(tmp_path / "nope"): "no such file or folder",
        str(tmp_path): "no run.json here or one folder up",
        str(broken("model.zip")): "model.zip is not a readable PPO model",
        str(broken("vecnormalize.pkl")): "vecnormalize.pkl is not readable VecNormalize statistics",
        str(broken("run.json")): "run.json is not readable JSON",
    }
    for path, expected in cases.items():
        assert expected in _cli_error([*simulate, f"sb3:{path}"], capsys), path
        assert expected in _cli_error([*export, path], capsys), path
    assert not (tmp_path / "c.pt").exists()
    # A run whose decisions the scenario does not allow, caught when the spec is parsed.
    with pytest.raises(
        UserError, match=r"may choose window 4; the scenario's control.window_choices are \[1, 2\]"
    ):
        parse_policy(f"sb3:{runs['ppo']}", load_scenario("ideal", ["control.window_choices=[1, 2]"]))
    err = _cli_error([*simulate, f"sb3:{runs['ppo']}", "--set", "control.modes=[distributed]"], capsys)
    assert "may choose mode autoregressive" in err


def test_export_through_checkpoint_and_a_model_zip(runs, tmp_path, capsys) -> None:
    out = tmp_path / "c.pt"
    assert main(["export", "--checkpoint", str(runs["dqn"] / "best" / "model.zip"), "--out", str(out)]) == 0
    assert f"torchscript:{out}" in capsys.readouterr().out
    controller = load_controller(out)
    assert controller.kind == "sb3" and controller.metadata["provenance"]["inputs"]["model"].endswith(
        "best/model.zip"
    )


def test_a_checkpoint_zip_runs_with_its_own_statistics(runs, tmp_path) -> None:
    from dsd_gym.controllers.rl_run import model_files

    folder = runs["dqn"]
    (steps,) = [p.stem for p in (folder / "checkpoints").glob("step_*.zip")]
    checkpoint = folder / "checkpoints" / f"{steps}.zip"
    assert model_files(checkpoint) == (checkpoint, folder / "checkpoints" / f"{steps}_vecnormalize.pkl")
    assert model_files(folder / "best") == (
        folder / "best" / "model.zip",
        folder / "best" / "vecnormalize.pkl",
    )
    assert model_files(folder) == (folder / "model.zip", folder / "vecnormalize.pkl")
    run = load_run(checkpoint)
    assert run.model_path == checkpoint and run.vecnorm is not None
    assert parse_policy(f"sb3:{checkpoint}", load_scenario("ideal"))(None).run.model_path == checkpoint


@pytest.mark.parametrize("name", ["recurrent-ppo", "ppo-plain"])
def test_in_process_observations_are_the_envs(name, runs) -> None:
    """sb3:PATH rebuilds the training env's observation and takes the action SB3 takes on it, on an
    episode with failed targets (decisions without a round)."""
    import gymnasium as gym

    run = load_run(runs[name])
    kwargs = {**ENV_KWARGS, "history": run.info.history, "horizon_s": 30}
    overrides = ["cloud.targets.0.mtbf_s=4"]  # measured: 3 decisions of 69 without a round
    env = gym.make("dsd_gym/DSD-flaky-v0", overrides=overrides, randomize=False, **kwargs).unwrapped
    obs, _ = env.reset(seed=0)
    controller, state, start, done = SB3Controller(run), None, np.ones(1, dtype=bool), False
    steps = lost = rounds = 0
    while not done:
        session = env.deciding
        x = obs[None] if run.vecnorm is None else run.vecnorm.normalize_obs(obs[None])
        assert np.array_equal(controller.observation(session), x)
        action, state = run.model.predict(x, state=state, episode_start=start, deterministic=True)
        assert controller.decide(session) == run.decisions[int(action[0])]
        start = np.zeros(1, dtype=bool)
        obs, _, _, done, _ = env.step(int(action[0]))
        steps += 1
        lost += session.telemetry.rounds == rounds
        rounds = session.telemetry.rounds
    assert steps > 50 and lost > 1, (steps, lost)
