"""Collection in ego mode and with a DAgger learner, oracle teammates, and training on several datasets."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dsd_gym.controllers.fixed import FixedController
from dsd_gym.controllers.oracles import MyopicOracle, teammate
from dsd_gym.errors import UserError
from dsd_gym.runner import build, ego_session
from dsd_gym.sim.controller import Decision, Mode
from wc_dnn.awc import AWCConfig
from wc_dnn.collect import LEARNER, Behaviour, collect, make_plan
from wc_dnn.dataset import SIDECAR, load_dataset, merge_datasets
from wc_dnn.export import WCDNNController, export_controller
from wc_dnn.model import FeatureNorm, WindowNet, WindowNetConfig
from wc_dnn.train import train

from .test_collect import assert_same, shards


@pytest.fixture(scope="module")
def learner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An exported (untrained) WC-DNN over the shipped scenarios' decisions."""
    torch.manual_seed(1)
    net = WindowNet(WindowNetConfig(hidden=8, depth=0, mode_head=True))
    awc = AWCConfig(modes=["distributed", "fused", "autoregressive"], smoothing=1.0, mode_dwell=1)
    out = tmp_path_factory.mktemp("learner") / "controller.pt"
    return export_controller(WCDNNController(FeatureNorm(), net, awc), out)


@pytest.fixture
def solo(metro_with_sessions, tmp_path: Path) -> str:
    """metro-5g with two foreground sessions: an ego and one tenant."""
    return metro_with_sessions(tmp_path, 2, "metro-5g-duo")


def played_by_ego(scenario, policy: str, seed: int) -> list[Decision]:
    played: list[Decision] = []
    egos = []

    def hook(record, session) -> None:
        if session is egos[0]:
            gamma = record.gamma if record.mode != Mode.AUTOREGRESSIVE else 0
            played.append(Decision(gamma, Mode(record.mode)))

    sim = build(scenario, policy, seed, round_hook=hook, mode="ego")
    egos.append(ego_session(sim))
    sim.run()
    return played


def test_only_oracles_and_fleet_behaviours_are_teammates() -> None:
    decisions = [Decision(4)]
    rng = np.random.default_rng(0)
    oracle = MyopicOracle(decisions)
    assert teammate(SimpleNamespace(controller=oracle))
    assert not teammate(SimpleNamespace(controller=FixedController(Decision(4))))
    fleet = Behaviour(oracle, 0, decisions, 0.0, rng, None, None, team=True)
    ego = Behaviour(oracle, 0, decisions, 0.0, rng, None, None, team=False)
    assert teammate(SimpleNamespace(controller=fleet)) and not teammate(SimpleNamespace(controller=ego))


def test_ego_labels_are_the_oracle_egos_decisions(tiny_config, solo: str, tmp_path: Path) -> None:
    """In ego mode the first foreground session alone is labelled, the other runs control.policy:
    with the oracle as behaviour its labels are what an ``oracle`` ego decides in evaluate's ego mode."""
    config = tiny_config(**{
        "collect.scenarios": [{"scenario": solo, "variants": 1}], "collect.duration_s": 8,
        "collect.evaluation_modes": ["ego"], "collect.behaviour": {"mix": {"oracle": 1}, "epsilon": 0.0},
    })  # fmt: skip
    plan = make_plan(config)
    (task,) = plan.tasks
    assert task.id == "metro-5g-duo.ego.v000.s000" and task.mode == "ego"
    collect(config, tmp_path / "data", jobs=1)
    dataset = load_dataset(tmp_path / "data")
    assert len(np.unique(dataset.arrays["session"])) == 1
    played = played_by_ego(plan.scenarios[task.id], "oracle", task.seed)
    labels = [dataset.candidates[j] for j in dataset.arrays["label"]]
    assert len(labels) > 100
    assert labels[: len(played)] == played
    assert len(labels) - len(played) in (0, 1)


def test_fleet_and_ego_tasks_are_other_simulations(tiny_config) -> None:
    config = tiny_config(**{"collect.evaluation_modes": ["fleet", "ego"]})
    tasks = make_plan(config).tasks
    fleet = [t for t in tasks if t.mode == "fleet"]
    ego = [t for t in tasks if t.mode == "ego"]
    assert [t.id for t in fleet] == [t.id for t in make_plan(tiny_config()).tasks]
    assert [t.id.replace(".ego", "") for t in ego] == [t.id for t in fleet]
    assert not {t.seed for t in fleet} & {t.seed for t in ego}


def test_learner_collection_is_deterministic_and_plays_the_learner(
    tiny_config, learner: Path, solo: str, tmp_path: Path
) -> None:
    """The learner drives the ego exactly as ``torchscript:PATH`` does in evaluate, the oracle still
    labels every row (its argmax), and the dataset is the same in one process or two."""
    config = tiny_config(**{
        "collect.scenarios": [{"scenario": solo, "variants": 2}],
        "collect.evaluation_modes": ["ego", "fleet"],
        "collect.behaviour": {"mix": {"random": 1}, "epsilon": 0.0, "learner_share": 1.0},
    })  # fmt: skip
    one, two = tmp_path / "one", tmp_path / "two"
    collect(config, one, jobs=1, learner=learner)
    collect(config, two, jobs=2, learner=learner)
    assert_same(shards(one), shards(two))
    sidecar = json.loads((one / SIDECAR).read_text())
    assert sidecar["behaviours"] == ["random", LEARNER]
    assert sidecar["learner"]["path"] == str(learner.resolve())
    dataset = load_dataset(one)
    a = dataset.arrays
    assert set(np.unique(a["policy"])) == {1}
    finite = np.isfinite(a["values"]).any(axis=1)
    best = a["values"][np.arange(dataset.rows), a["label"]]
    np.testing.assert_array_equal(best[finite], a["values"][finite].max(axis=1))
    assert (a["behaviour"] != a["label"]).any()  # an untrained learner is not the oracle
    plan = make_plan(config, learner)
    task = next(t for t in plan.tasks if t.mode == "ego")
    played = played_by_ego(plan.scenarios[task.id], f"torchscript:{learner}", task.seed)
    first = np.flatnonzero(dataset.group == dataset.groups.index(f"{task.scenario}/v{task.variant}"))
    behaviour = [dataset.candidates[j] for j in a["behaviour"][first][: len(played)]]
    assert behaviour == played
    plain = collect(config, tmp_path / "plain", jobs=1)  # without the learner: another dataset
    assert plain["rows"] and not (tmp_path / "plain" / SIDECAR).read_text() == (one / SIDECAR).read_text()
    with pytest.raises(UserError, match="another collect config"):
        collect(config, one, jobs=1)


def test_training_on_several_datasets(tiny_dataset: Path, tiny_config, tmp_path: Path) -> None:
    config = tiny_config(**{"train.epochs": 1})
    other = tmp_path / "other"
    collect(tiny_config(**{"collect.behaviour.epsilon": 0.3}), other, jobs=1)
    merged = merge_datasets([load_dataset(tiny_dataset), load_dataset(other)])
    assert merged.rows == load_dataset(tiny_dataset).rows + load_dataset(other).rows
    assert merged.groups == load_dataset(tiny_dataset).groups  # the same variants, one group each
    summary = train(config, [tiny_dataset, other], tmp_path / "run")
    assert summary["dataset"]["rows"] == merged.rows
    assert summary["dataset"]["config_hash"] == merged.sidecar["config_hash"]
