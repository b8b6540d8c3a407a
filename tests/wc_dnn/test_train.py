"""Training: the split holds out whole variants, validation loss falls, a checkpoint resumes to the same
state, and an exported checkpoint loads and decides as the in-process controller."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dsd_gym.cli import main
from dsd_gym.runtime import load_controller
from dsd_gym.sim.controller import Decision, Mode
from dsd_gym.telemetry import INDEX
from wc_dnn.checkpoint import load_checkpoint, save_checkpoint
from wc_dnn.dataset import load_dataset
from wc_dnn.export import controller_from_checkpoint
from wc_dnn.model import FeatureNorm, WindowNet, WindowNetConfig
from wc_dnn.train import BEST, LAST, evaluate, split_by_variant, targets, train


@pytest.fixture(scope="module")
def trained(tiny_dataset: Path, tiny_config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(tiny_config(), tiny_dataset, out)
    return out


def test_split_holds_out_whole_variants(tiny_dataset: Path) -> None:
    dataset = load_dataset(tiny_dataset)
    usable = np.isfinite(dataset.arrays["values"]).any(axis=1)
    split = split_by_variant(dataset, 0.25, 0, usable)
    train_groups = set(dataset.group[split.train].tolist())
    val_groups = set(dataset.group[split.val].tolist())
    assert train_groups.isdisjoint(val_groups)
    assert len(split.val_groups) == 2  # one of the two variants of each scenario
    assert {g.split("/")[0] for g in split.val_groups} == {"lan-edge", "metro-5g"}
    assert split_by_variant(dataset, 0.25, 0, usable).val_groups == split.val_groups


def test_training_reduces_validation_loss(trained: Path, tiny_dataset: Path, tiny_config) -> None:
    config = tiny_config()
    checkpoint = load_checkpoint(trained / LAST)
    dataset = load_dataset(tiny_dataset)
    usable = np.isfinite(dataset.arrays["values"]).any(axis=1)
    split = split_by_variant(dataset, config.train.val_fraction, config.train.seed, usable)
    torch.manual_seed(config.train.seed)
    untrained = WindowNet(WindowNetConfig(**checkpoint["model_config"]))
    norm = FeatureNorm().fit(dataset.arrays["features"][split.train])
    before = evaluate(untrained, norm, dataset.arrays, split.val, targets(dataset.candidates), config.train)
    history = checkpoint["history"]
    assert len(history) == config.train.epochs
    best = min(h["loss"] for h in history)
    # Four tiny variants: what is held out is far from what is learnt, so the margin is modest.
    assert best < 0.9 * before["loss"]
    assert checkpoint["model_config"]["mode_head"]  # the dataset offers three modes
    assert (trained / "tensorboard").is_dir() and any((trained / "tensorboard").iterdir())
    assert (trained / BEST).exists()


def test_resume_continues_to_the_same_state(tiny_dataset: Path, tiny_config, tmp_path: Path) -> None:
    config = tiny_config(**{"train.epochs": 4})
    train(config, tiny_dataset, tmp_path / "straight")
    train(config, tiny_dataset, tmp_path / "resumed", stop_after=2)
    assert load_checkpoint(tmp_path / "resumed" / LAST)["epoch"] == 2
    train(config, tiny_dataset, tmp_path / "resumed", resume=True)
    a = load_checkpoint(tmp_path / "straight" / LAST)
    b = load_checkpoint(tmp_path / "resumed" / LAST)
    assert a["epoch"] == b["epoch"] == 4
    for key in ("model", "norm"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), name
    for i, state in a["optimizer"]["state"].items():
        for name, tensor in state.items():
            assert torch.equal(tensor, b["optimizer"]["state"][i][name])
    assert torch.equal(a["shuffle_rng"], b["shuffle_rng"])
    assert a["history"] == b["history"]


def test_exported_checkpoint_loads_and_decides_as_in_process(
    trained: Path, tiny_dataset: Path, capsys
) -> None:
    out = trained / "controller.pt"
    assert main(["export", "--checkpoint", str(trained / BEST), "--out", str(out)]) == 0
    assert "exported" in capsys.readouterr().out
    loaded = load_controller(out)
    assert loaded.modes == ["distributed", "fused", "autoregressive"]
    assert loaded.metadata["provenance"]["inputs"]["epoch"] >= 1
    controller = controller_from_checkpoint(load_checkpoint(trained / BEST), "test")
    features = torch.from_numpy(load_dataset(tiny_dataset).arrays["features"][:300])
    state_a, state_b = loaded.module.initial_state(1), controller.initial_state(1)
    decisions = []
    for row in features:
        gamma_a, mode_a, state_a = loaded.module.decide(row.unsqueeze(0), state_a)
        gamma_b, mode_b, state_b = controller.decide(row.unsqueeze(0), state_b)
        assert (int(gamma_a), int(mode_a)) == (int(gamma_b), int(mode_b))
        decisions.append((int(gamma_a), int(mode_a)))
    assert len(set(decisions)) > 1  # the trained controller moves
    argv = [
        "simulate",
        "--scenario",
        "lan-edge",
        "--set",
        "duration_s=5",
        "--set",
        "warmup_s=0",
        "--policy",
        f"torchscript:{out}",
    ]
    assert main(argv) == 0
    assert "throughput" in capsys.readouterr().out


def test_several_checkpoints_export_as_their_mean(
    trained: Path, tiny_dataset: Path, tiny_config, write_config, tmp_path: Path, capsys
) -> None:
    config = write_config(tmp_path / "tiny.yaml", tiny_config())
    other = tmp_path / "seed1"
    argv = ["train", "wc-dnn", "--config", str(config), "--data", str(tiny_dataset), "--out", str(other)]
    assert main([*argv, "--set", "train.seed=1"]) == 0
    capsys.readouterr()
    assert load_checkpoint(other / BEST)["config"]["train"]["seed"] == 1
    paths = [trained / BEST, other / BEST]
    out = tmp_path / "mean.pt"
    assert main(["export", *(x for p in paths for x in ("--checkpoint", str(p))), "--out", str(out)]) == 0
    loaded = load_controller(out)
    assert loaded.metadata["model"]["members"] == 2
    assert [i["checkpoint"] for i in loaded.metadata["provenance"]["inputs"]["ensemble"]] == [
        str(p.resolve()) for p in paths
    ]
    members = [controller_from_checkpoint(load_checkpoint(p), "test") for p in paths]
    features = torch.from_numpy(load_dataset(tiny_dataset).arrays["features"][:300])
    state, awc_state = loaded.module.initial_state(1), members[0].initial_state(1)
    moved = set()
    for row in features.unsqueeze(1):
        gamma, mode, state = loaded.module.decide(row, state)
        outputs = [m.net(row) for m in members]  # each with its normalisation folded in (export)
        mean_gamma, mean_logits = (sum(o[i] for o in outputs) / 2 for i in (0, 1))
        gamma_b, mode_b, awc_state = members[0].awc(mean_gamma, mean_logits, awc_state)
        assert (int(gamma), int(mode)) == (int(gamma_b), int(mode_b))
        moved.add((int(gamma), int(mode)))
    assert len(moved) > 1
    # members must decide alike: another AWC is refused in one line
    changed = load_checkpoint(other / BEST)
    changed["config"]["awc"]["smoothing"] = 0.9
    save_checkpoint(tmp_path / "other-awc.pt", changed)
    argv = ["export", "--checkpoint", str(trained / BEST), "--checkpoint", str(tmp_path / "other-awc.pt")]
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "differs" in err and not (tmp_path / "x.pt").exists()
    assert main(["train", "wc-dnn", "--config", str(config), "--set", "train.nope=1"]) == 2
    assert "nope" in capsys.readouterr().err


def test_regret_tables_and_their_interpolation() -> None:
    from wc_dnn.train import _interpolated, regret_tables

    decisions = [Decision(g, m) for m in (Mode.DISTRIBUTED, Mode.FUSED) for g in (1, 2, 4)]
    decisions.append(Decision(0, Mode.AUTOREGRESSIVE))
    t = targets(decisions)
    values = np.array([
        [-1.0, 0.0, -3.0, -2.0, -0.5, -4.0, -5.0],  # best: (2, distributed)
        [-9.0, -9.0, -9.0, -9.0, -9.0, -9.0, 0.0],  # best: autoregressive
    ])  # fmt: skip
    label = values.argmax(axis=1)
    window, by_mode = regret_tables(values, label, t)
    np.testing.assert_allclose(window, [[1.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(by_mode, [[0.0, 0.5, 5.0], [9.0, 9.0, 0.0]])
    windows = torch.tensor([1.0, 2.0, 4.0])
    table = torch.from_numpy(window[:1]).repeat(5, 1)
    gamma = torch.tensor([0.0, 1.5, 2.5, 3.0, 9.0], requires_grad=True)
    regret = _interpolated(windows, table, gamma)
    torch.testing.assert_close(regret, torch.tensor([1.0, 0.5, 0.75, 1.5, 3.0]))
    regret.sum().backward()
    torch.testing.assert_close(gamma.grad, torch.tensor([0.0, -1.0, 1.5, 1.5, 0.0]))  # flat when clamped


def test_the_regret_term_trains(tiny_dataset: Path, tiny_config, tmp_path: Path) -> None:
    summary = train(tiny_config(**{"train.epochs": 2, "train.regret_weight": 1.0}), tiny_dataset, tmp_path)
    assert summary["best_val"]["regret_loss"] > 0


def test_ignored_features_stay_unread(tiny_dataset: Path, tiny_config, tmp_path: Path) -> None:
    ignore = ["last_gamma", "last_mode", "drafted"]
    train(tiny_config(**{"train.epochs": 3, "train.model.ignore": ignore}), tiny_dataset, tmp_path)
    checkpoint = load_checkpoint(tmp_path / LAST)
    columns = [INDEX[name] for name in ignore]
    stem = checkpoint["model"]["stem.weight"]
    assert torch.count_nonzero(stem[:, columns]) == 0  # through three epochs of Adam
    assert torch.count_nonzero(stem) == stem.numel() - stem.shape[0] * len(columns)  # the rest learn
    controller = controller_from_checkpoint(checkpoint, "test")
    features = torch.from_numpy(load_dataset(tiny_dataset).arrays["features"][:200])
    changed = features.clone()
    changed[:, columns] = torch.tensor([7.0, 2.0, 3.0])
    assert torch.equal(controller.net(features)[0], controller.net(changed)[0])
    assert torch.equal(controller.net(features)[1], controller.net(changed)[1])
    # the same telemetry without the option: the network reads those columns
    train(tiny_config(**{"train.epochs": 3}), tiny_dataset, tmp_path / "all")
    reads = controller_from_checkpoint(load_checkpoint(tmp_path / "all" / LAST), "test")
    assert not torch.equal(reads.net(features)[0], reads.net(changed)[0])
