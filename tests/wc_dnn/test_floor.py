"""The fixed-decision floor: measured like evaluate's best-fixed, relabels only variants a learner failed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dsd_gym.controllers import fixed_policies
from dsd_gym.errors import UserError
from dsd_gym.evaluation.execute import run_task
from dsd_gym.evaluation.plan import Task
from dsd_gym.evaluation.stats import capped_geomean
from dsd_gym.sim.controller import Decision, Mode
from wc_dnn.awc import AWCConfig
from wc_dnn.checkpoint import load_checkpoint
from wc_dnn.collect import collect, make_plan
from wc_dnn.config import for_evaluation_mode
from wc_dnn.dataset import load_dataset
from wc_dnn.export import WCDNNController, export_checkpoint, export_controller
from wc_dnn.floor import FLOOR, LEARNER, HeldSelection, read_floor, relabel
from wc_dnn.model import FeatureNorm, WindowNet, WindowNetConfig
from wc_dnn.train import split_by_variant, train

CANDIDATES = [Decision(1), Decision(4), Decision(4, Mode.FUSED)]
RECORDS = {"fixed:1": (1, "distributed"), "fixed:4": (4, "distributed"), "fused:4": (4, "fused")}


def _sweep(group_means: dict[str, dict[str, float]]) -> dict:
    groups = {
        group: {
            spec: {"throughput_tok_s": [m, m], "tokens_per_round": [3.0, 3.0],
                   "decision": {"gamma": RECORDS[spec][0], "mode": RECORDS[spec][1]}}
            for spec, m in means.items()
        }
        for group, means in group_means.items()
    }  # fmt: skip
    return {"learner": None, "groups": groups}


def _learner(group_means: dict[str, float]) -> dict:
    groups = {
        g: {LEARNER: {"throughput_tok_s": [m, m], "tokens_per_round": [2.0, 2.0]}}
        for g, m in group_means.items()
    }
    return {"learner": {"path": "x.pt", "sha256": "0"}, "groups": groups}


def test_relabel_only_the_variants_a_learner_failed_and_rank_by_held_throughput() -> None:
    sweep = _sweep({"a/v0": {"fixed:1": 100.0, "fixed:4": 80.0, "fused:4": 90.0},
                    "b/v0": {"fixed:1": 50.0, "fixed:4": 60.0, "fused:4": 40.0}})  # fmt: skip
    groups, group = ["a/v0", "b/v0"], np.array([0, 0, 1, 1, 1])
    label = np.array([1, 2, 0, 1, 2], dtype=np.int16)
    values = -np.arange(15, dtype=np.float32).reshape(5, 3)
    # a: the learner made 97 % of fixed:1 (below 0.98); b: 59.4 of 60 (0.99)
    new_label, new_values, verdicts = relabel(
        [sweep, _learner({"a/v0": 97.0, "b/v0": 59.4})], CANDIDATES, groups, group, label, values, 0.98
    )
    assert [(v.group, v.best, v.relabelled) for v in verdicts] == [
        ("a/v0", "fixed:1", True),
        ("b/v0", "fixed:4", False),
    ]
    assert verdicts[0].ratio == pytest.approx(0.97)
    assert new_label.tolist() == [0, 0, 0, 1, 2]  # a's rows: fixed:1; b's untouched
    # value_c = −(1 − H_c / H_best) · T_best: 0 at fixed:1, −0.2·3 at fixed:4, −0.1·3 at fused:4
    assert new_values[:2].tolist() == [pytest.approx([0.0, -0.6, -0.3])] * 2
    assert np.array_equal(new_values[2:], values[2:]) and np.array_equal(label, [1, 2, 0, 1, 2])
    # once failed, always relabelled: a later learner that passes a does not undo it
    _, _, again = relabel([sweep, _learner({"a/v0": 97.0}), _learner({"a/v0": 100.0})], CANDIDATES, groups,
                          group, label, values, 0.98)  # fmt: skip
    assert again[0].relabelled and again[0].ratio == pytest.approx(0.97)
    # no learner measured, or no sweep: nothing changes
    assert relabel([sweep], CANDIDATES, groups, group, label, values, 0.98)[2] == []
    assert relabel([_learner({"a/v0": 1.0})], CANDIDATES, groups, group, label, values, 0.98)[2] == []


@pytest.fixture(scope="module")
def floor_run(tmp_path_factory: pytest.TempPathFactory, tiny_config) -> tuple:
    """The tiny config with a floor of one seed, in fleet mode: a dataset and a DAgger round."""
    config = tiny_config(**{"collect.floor_seeds": 1, "collect.duration_s": 4, "train.floor": 0.98})
    root = tmp_path_factory.mktemp("floor")
    first = collect(config, root / "data", jobs=1)
    torch.manual_seed(1)
    net = WindowNet(WindowNetConfig(hidden=8, depth=0, mode_head=True))
    awc = AWCConfig(modes=["distributed", "fused", "autoregressive"], smoothing=1.0, mode_dwell=1)
    learner = export_controller(WCDNNController(FeatureNorm(), net, awc), root / "controller.pt")
    second = collect(config, root / "dagger", jobs=1, learner=learner)
    return config, root, first, second, learner


def test_the_floor_is_each_fixed_decision_held_as_evaluate_runs_it(floor_run) -> None:
    config, root, first, second, learner = floor_run
    floor = read_floor(root / "data")
    plan = make_plan(config)
    assert floor["learner"] is None and floor["mode"] == "fleet"
    assert sorted(floor["groups"]) == sorted({f"{t.scenario}/v{t.variant}" for t in plan.tasks})
    assert first["floor"]["sims"] == len(floor["groups"]) * len(plan.candidates)
    group = "lan-edge/v1"
    scenario = plan.scenarios[next(t.id for t in plan.tasks if f"{t.scenario}/v{t.variant}" == group)]
    assert sorted(floor["groups"][group]) == sorted(fixed_policies(scenario))
    (seed,) = floor["seeds"][group]
    held = run_task(scenario, Task(variant=0, policy="fused:3", seed=seed, mode="fleet"))
    assert floor["groups"][group]["fused:3"]["throughput_tok_s"] == [held["throughput_tok_s"]]
    assert seed not in {t.seed for t in plan.tasks}  # the floor's seeds are its own
    dagger = read_floor(root / "dagger")
    assert dagger["learner"]["sha256"] and dagger["seeds"] == floor["seeds"]
    assert all(list(g) == [LEARNER] for g in dagger["groups"].values())
    held = run_task(scenario, Task(variant=0, policy=f"torchscript:{learner}", seed=seed, mode="fleet"))
    assert dagger["groups"][group][LEARNER]["throughput_tok_s"] == [held["throughput_tok_s"]]


def test_floor_is_deterministic_resumed_and_used_by_training(floor_run, tmp_path: Path) -> None:
    config, root, first, second, learner = floor_run
    before = (root / "data" / FLOOR).read_bytes()
    again = collect(config, root / "data", jobs=2)
    assert again["floor"]["sims"] == 0 and (root / "data" / FLOOR).read_bytes() == before
    (root / "data" / FLOOR).unlink()
    collect(config, root / "data", jobs=2)  # two workers, same numbers
    assert json.loads((root / "data" / FLOOR).read_bytes()) == json.loads(before)
    summary = train(config, [root / "data", root / "dagger"], tmp_path / "run")
    verdicts = summary["dataset"]["floor"]
    sweep, dagger = read_floor(root / "data"), read_floor(root / "dagger")
    assert len(verdicts) == len(sweep["groups"])
    for v in verdicts:
        means = {s: np.mean(r["throughput_tok_s"]) for s, r in sweep["groups"][v["group"]].items()}
        best = max(means.values())
        ratio = np.mean(dagger["groups"][v["group"]][LEARNER]["throughput_tok_s"]) / best
        assert v["ratio"] == pytest.approx(ratio) and v["relabelled"] == (ratio < 0.98)
        assert means[v["best"]] == best
    assert any(v["relabelled"] for v in verdicts)  # an untrained learner misses somewhere


def test_floor_needs_one_evaluation_mode_and_may_differ_per_mode(tiny_config) -> None:
    config = tiny_config(**{"collect.floor_seeds": 1, "collect.evaluation_modes": ["fleet", "ego"]})
    with pytest.raises(UserError, match="floor is measured in one evaluation mode"):
        make_plan(config)
    config = tiny_config(**{"collect.floor_seeds": {"ego": 2}, "collect.evaluation_modes": ["fleet", "ego"]})
    assert (config.collect.floor("fleet"), config.collect.floor("ego")) == (0, 2)
    assert for_evaluation_mode(config, "ego").collect.floor_seeds == 2
    assert for_evaluation_mode(config, "fleet").collect.floor_seeds == 0


def test_a_broken_floor_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / FLOOR).write_text("{not json")
    with pytest.raises(UserError, match="floor.json is not readable JSON"):
        read_floor(tmp_path)
    (tmp_path / FLOOR).write_text(json.dumps({"format": "dsd-gym-wc-dnn-floor", "format_version": 1}))
    with pytest.raises(UserError, match="lacks 'mode'"):
        read_floor(tmp_path)
    assert read_floor(tmp_path / "nowhere") is None


def test_relabelled_variants_are_trained_on_not_held_out(tiny_dataset: Path) -> None:
    dataset = load_dataset(tiny_dataset)
    usable = np.ones(dataset.rows, dtype=bool)
    plain = split_by_variant(dataset, 0.25, 0, usable)
    held = plain.val_groups[0]
    moved = split_by_variant(dataset, 0.25, 0, usable, [held])
    scenario = held.split("/")[0]
    assert held not in moved.val_groups
    assert [g for g in moved.val_groups if g.startswith(f"{scenario}/")] == [
        g for g in dataset.groups if g.startswith(f"{scenario}/") and g != held
    ]
    assert split_by_variant(dataset, 0.25, 0, usable, dataset.groups).val_groups == plain.val_groups


def test_select_held_scores_every_epoch_closed_loop(floor_run, tmp_path: Path) -> None:
    config, root, *_ = floor_run
    config = config.model_copy(
        update={"train": config.train.model_copy(update={"select": "held", "epochs": 2, "patience": 5})}
    )
    summary = train(config, [root / "data", root / "dagger"], tmp_path / "run", jobs=1)
    history = load_checkpoint(tmp_path / "run" / "last.pt")["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert summary["best_epoch"] == max(history, key=lambda h: h["held"])["epoch"]
    # the best epoch's score is its controller held on every variant of the sweep, on the sweep's seeds
    best = export_checkpoint(tmp_path / "run" / "best.pt", tmp_path / "best-controller.pt")
    sweep, plan = read_floor(root / "data"), make_plan(config)
    ratios = []
    for group, fixed in sweep["groups"].items():
        task = next(t for t in plan.tasks if f"{t.scenario}/v{t.variant}" == group)
        (seed,) = sweep["seeds"][group]
        held = run_task(
            plan.scenarios[task.id], Task(variant=0, policy=f"torchscript:{best}", seed=seed, mode="fleet")
        )
        ratios.append(held["throughput_tok_s"] / max(r["throughput_tok_s"][0] for r in fixed.values()))
    record = next(h for h in history if h["epoch"] == summary["best_epoch"])
    assert record["held"] == pytest.approx(capped_geomean(ratios))
    assert record["held_min"] == pytest.approx(min(ratios))
    assert record["held_worst"] == list(sweep["groups"])[int(np.argmin(ratios))]
    assert record["held_below"] == sum(r < 0.98 for r in ratios)


def test_select_held_keeps_the_best_score_and_stops_on_patience(
    floor_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, root, *_ = floor_run
    config = config.model_copy(
        update={"train": config.train.model_copy(update={"select": "held", "epochs": 9, "patience": 2})}
    )
    scores = iter([0.95, 0.99, 0.97, 0.96, 1.0])
    monkeypatch.setattr(HeldSelection, "measure", lambda self, path: dict.fromkeys(self.groups, next(scores)))
    summary = train(config, [root / "data", root / "dagger"], tmp_path / "run", jobs=1)
    assert (summary["epochs"], summary["best_epoch"], summary["stopped_early"]) == (4, 2, True)
    assert load_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == 2


def test_select_held_needs_a_fixed_sweep(tiny_config, tiny_dataset, tmp_path: Path) -> None:
    config = tiny_config(**{"train.select": "held"})
    with pytest.raises(UserError, match="no fixed-decision sweep"):
        train(config, tiny_dataset, tmp_path / "run")


def test_select_may_differ_per_evaluation_mode(tiny_config) -> None:
    spec = tiny_config(**{"train.select": {"ego": "held"}}).train
    assert (spec.selection(["ego"]), spec.selection(["fleet"])) == ("held", "loss")
    with pytest.raises(UserError, match="train one mode at a time"):
        spec.selection(["fleet", "ego"])
    assert tiny_config(**{"train.select": "held"}).train.selection(["fleet", "ego"]) == "held"
