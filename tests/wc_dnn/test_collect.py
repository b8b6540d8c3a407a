"""Collection: deterministic for a seed, resumable without duplicates, labels equal to the oracle's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from dsd_gym.config import load_scenario
from dsd_gym.controllers.oracles import candidates
from dsd_gym.runner import build
from dsd_gym.sim.controller import Decision, Mode
from dsd_gym.telemetry import NAMES
from wc_dnn.collect import collect, labelled_sessions, make_plan
from wc_dnn.config import for_evaluation_mode
from wc_dnn.dataset import ARRAYS, SIDECAR, load_dataset, read_shard


def shards(directory: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for path in sorted(directory.glob("*.npz")):
        with np.load(path, allow_pickle=False) as npz:
            out[path.name] = {name: npz[name] for name in ARRAYS}
    return out


def assert_same(a: dict[str, dict[str, np.ndarray]], b: dict[str, dict[str, np.ndarray]]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        for key in ARRAYS:
            np.testing.assert_array_equal(a[name][key], b[name][key], err_msg=f"{name}:{key}")
            assert a[name][key].dtype == b[name][key].dtype


def test_dataset_describes_itself(tiny_dataset: Path, tiny_config) -> None:
    sidecar = json.loads((tiny_dataset / SIDECAR).read_text())
    assert [f["name"] for f in sidecar["features"]] == list(NAMES)
    plan = make_plan(tiny_config())
    assert [t["id"] for t in sidecar["tasks"]] == [t.id for t in plan.tasks]
    assert len(sidecar["candidates"]) == 17  # 8 distributed, 8 fused, autoregressive
    assert sidecar["arrays"].keys() == ARRAYS.keys()
    dataset = load_dataset(tiny_dataset)
    a = dataset.arrays
    assert dataset.rows > 500
    values = a["values"].astype(np.float64)
    best = values[np.arange(dataset.rows), a["label"]]
    finite = np.isfinite(values).any(axis=1)
    assert finite.mean() > 0.9
    np.testing.assert_array_equal(best[finite], values[finite].max(axis=1))  # the label is the argmax
    assert set(np.unique(a["policy"])) <= set(range(len(sidecar["behaviours"])))
    task = sidecar["tasks"][1]
    _, meta = read_shard(tiny_dataset / task["file"], task["id"], 17)
    assert meta["scenario"] == task["scenario"] and meta["seed"] == task["seed"]
    assert meta["code_version"] and meta["values"] == task["values"]
    assert meta["values"]  # variant 1 is a draw of the randomised keys


def test_collection_is_deterministic_for_a_seed_in_any_number_of_processes(
    tiny_dataset: Path, tiny_config, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    summary = collect(tiny_config(), again, jobs=2)
    assert summary["ran"] == summary["tasks"] == len(list(again.glob("*.npz")))
    assert_same(shards(tiny_dataset), shards(again))
    other = tmp_path / "other"
    collect(tiny_config(**{"collect.seed": 4}), other, jobs=1)
    assert not np.array_equal(
        shards(other)["lan-edge.v001.s000.npz"]["features"],
        shards(again)["lan-edge.v001.s000.npz"]["features"],
    )


def test_resume_redoes_missing_and_corrupt_shards_only(
    tiny_dataset: Path, tiny_config, tmp_path: Path
) -> None:
    out = tmp_path / "data"
    config = tiny_config()
    files = sorted(p.name for p in tiny_dataset.glob("*.npz"))
    # An interrupted run: the sidecar and some shards, one shard truncated, a temporary file left behind.
    out.mkdir()
    (out / SIDECAR).write_bytes((tiny_dataset / SIDECAR).read_bytes())
    for name in files[:2]:
        (out / name).write_bytes((tiny_dataset / name).read_bytes())
    (out / files[1]).write_bytes((tiny_dataset / files[1]).read_bytes()[:300])
    (out / f".{files[2]}.abc.tmp").write_bytes(b"partial")
    summary = collect(config, out, jobs=1)
    assert (summary["skipped"], summary["ran"]) == (1, len(files) - 1)
    assert sorted(os.listdir(out)) == sorted([*files, SIDECAR])
    assert_same(shards(tiny_dataset), shards(out))
    again = collect(config, out, jobs=1)  # complete: nothing to do
    assert (again["skipped"], again["ran"], again["rows"]) == (len(files), 0, 0)
    assert load_dataset(out).rows == load_dataset(tiny_dataset).rows


def test_labels_are_the_oracles_decisions(tiny_config, metro_with_sessions, tmp_path: Path) -> None:
    """One foreground session whose behaviour is the oracle: its labels are the decisions the
    ``oracle`` policy takes in a run of its own, and the behaviour played exactly those."""
    path = metro_with_sessions(tmp_path, 1, "metro-5g-solo")
    config = tiny_config(**{
        "collect.scenarios": [{"scenario": str(path), "variants": 1}],
        "collect.duration_s": 8, "collect.record_sessions": 1,
        "collect.behaviour": {"mix": {"oracle": 1}, "epsilon": 0.0},
    })  # fmt: skip
    plan = make_plan(config)
    (task,) = plan.tasks
    collect(config, tmp_path / "data", jobs=1)
    dataset = load_dataset(tmp_path / "data")
    played: list[Decision] = []

    def hook(record, session) -> None:
        if not session.background:
            gamma = record.gamma if record.mode != Mode.AUTOREGRESSIVE else 0
            played.append(Decision(gamma, Mode(record.mode)))

    scenario = plan.scenarios[task.id]
    build(scenario, "oracle", task.seed, round_hook=hook).run()
    labels = [dataset.candidates[j] for j in dataset.arrays["label"]]
    assert len(labels) > 100
    assert labels[: len(played)] == played  # the last decision's round may not end in time
    assert len(labels) - len(played) in (0, 1)
    np.testing.assert_array_equal(dataset.arrays["behaviour"], dataset.arrays["label"])
    assert dataset.candidates == candidates(scenario)


def test_one_evaluation_mode_is_that_modes_share_of_the_dataset(tiny_config) -> None:
    shares = {"fleet": 1.0, "ego": 0.25}
    both = tiny_config(
        **{"collect.evaluation_modes": ["fleet", "ego"], "collect.behaviour.learner_share": shares}
    )
    for mode in ("fleet", "ego"):
        narrowed = for_evaluation_mode(both, mode)
        assert narrowed.name == f"tiny-{mode}" and narrowed.collect.evaluation_modes == [mode]
        assert narrowed.collect.behaviour.learner_share == shares[mode]
        assert narrowed.data_dir() == Path("runs/wc_dnn") / f"tiny-{mode}" / "data"
        assert narrowed.train == both.train and narrowed.awc == both.awc
        tasks = make_plan(narrowed).tasks
        assert tasks and tasks == tuple(t for t in make_plan(both).tasks if t.mode == mode)


def test_a_mixed_fleets_labels_come_from_every_device_group(tiny_config, tmp_path: Path) -> None:
    """hetero-fleet builds 12 phones, 8 laptops, then 8 Jetson sessions: four labelled sessions
    spread over them take two phones, a laptop and a Jetson (the first four would be phones only)."""
    assert labelled_sessions(load_scenario("hetero-fleet"), "fleet", 4) == {0, 7, 14, 21}
    assert labelled_sessions(load_scenario("hetero-fleet"), "ego", 4) == {0, 1, 2, 3}
    assert labelled_sessions(load_scenario("busy-cloud"), "fleet", 4) == {0, 2, 4, 6}  # 8 of 32
    assert labelled_sessions(load_scenario("lan-edge"), "fleet", 4) == {0, 1, 2, 3}
    config = tiny_config(**{
        "collect.scenarios": [{"scenario": "hetero-fleet", "variants": 1}],
        "collect.duration_s": 10, "collect.record_sessions": 4, "collect.evaluation_modes": ["fleet"],
    })  # fmt: skip
    collect(config, tmp_path / "data", jobs=1)
    sessions = set(load_dataset(tmp_path / "data").arrays["session"].tolist())
    assert sessions == {0, 7, 14, 21}
