"""Bad configs, missing or corrupt datasets and checkpoints: one line on stderr, exit status 2.

Also DESIGN §2's import rule: ``import dsd_gym.cli`` imports neither torch nor wc_dnn.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from dsd_gym.cli import main

REPO = Path(__file__).resolve().parents[2]


def fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one error line of a run that must fail as a user error."""
    assert main(list(argv)) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_cli_import_needs_neither_torch_nor_wc_dnn() -> None:
    code = "import sys, dsd_gym.cli; print(sorted(m for m in ('torch', 'wc_dnn') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"collect.bogus": 1}, "collect.bogus: unknown key"),
        ({"collect.duration_s": -1}, "collect.duration_s: value -1"),
        ({"collect.scenarios": []}, "collect.scenarios"),
        ({"collect.modes": ["warp"]}, "collect.modes"),
        ({"collect.scenarios": [{"scenario": "nowhere"}]}, "unknown scenario 'nowhere'"),
        ({"collect.behaviour.mix": {"nonsense": 1}}, "unknown policy 'nonsense'"),
        ({"collect.behaviour.mix": {"fixed:9": 1}}, "window 9 is not among"),
        ({"collect.behaviour.mix": {"random": 0}}, "collect.behaviour.mix.random"),
        ({"train.lr": 0}, "train.lr: value 0"),
        (
            {"collect.behaviour.learner_share": {"fleet": 2}},
            "learner_share: must be a probability, or one per evaluation mode",
        ),
        ({"collect.behaviour.learner_share": {"fleet": "x"}}, "collect.behaviour.learner_share"),
        (
            {"collect.evaluation_modes": ["fleet", "ego"], "collect.behaviour.learner_share": {"fleet": 1}},
            "no share for evaluation mode ego",
        ),
        ({"awc.smoothing": 2}, "awc.smoothing"),
        ({"train.model.ignore": ["rtt"]}, "ignore: unknown feature 'rtt'; allowed: round_ms, "),
        ({"train.select": "best"}, "train.select"),
        ({"train.select": {"ego": "loss", "cloud": "held"}}, "train.select"),
        # an untagged union (an integer, or one per mode): the branch the value took, under the user's key
        (
            {"collect.floor_seeds": {"flet": 2}},
            "collect.floor_seeds: value 'flet' is invalid: Input should be 'fleet'",
        ),
        (
            {"collect.floor_seeds": -1},
            "collect.floor_seeds: value -1 is invalid: Input should be greater than",
        ),
        (
            {
                "collect.scenarios": [
                    {"scenario": "ideal", "randomize": {"acceptance.alpha": {"uniform": [0.5, 1.5]}}}
                ]
            },
            "acceptance.alpha",
        ),
    ],  # fmt: skip
)
def test_bad_config_is_one_line(
    change: dict, expected: str, tiny_raw: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tiny_raw
    for dotted, value in change.items():
        *path, last = dotted.split(".")
        node = data
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    line = fails(capsys, "collect", "--config", str(path), "--out", str(tmp_path / "data"))
    assert expected in line
    assert "constrained-" not in line and "dict[" not in line  # no pydantic branch labels


def test_set_overrides_a_config_key_and_a_bad_one_is_one_line(
    tiny_config, write_config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path / "tiny.yaml", tiny_config()))
    line = fails(
        capsys, "collect", "--config", config, "--set", "collect.duration_s=-3", "--out", str(tmp_path / "d")
    )
    assert "collect.duration_s: value -3" in line
    line = fails(capsys, "collect", "--config", config, "--set", "collect=[1", "--out", str(tmp_path / "d"))
    assert "not valid YAML" in line
    assert not (tmp_path / "d").exists()


def test_mode_must_be_one_of_the_configs_evaluation_modes(
    tiny_config, write_config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path / "c.yaml", tiny_config())  # evaluation_modes: [fleet]
    for command in (["collect"], ["train", "wc-dnn"]):
        line = fails(capsys, *command, "--config", str(path), "--mode", "ego", "--out", str(tmp_path / "o"))
        assert "--mode ego: not among collect.evaluation_modes ['fleet'] of config tiny" in line
    assert not (tmp_path / "o").exists()


def test_unreadable_configs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "no such file" in fails(capsys, "collect", "--config", str(tmp_path / "none.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert "bad.yaml:" in fails(capsys, "collect", "--config", str(bad))
    bad.write_text("- a list\n")
    assert "must be a mapping" in fails(capsys, "train", "wc-dnn", "--config", str(bad))


def test_scenarios_must_offer_the_same_decisions(tiny_config, write_config, tmp_path, capsys) -> None:
    raw = (REPO / "configs" / "scenarios" / "ideal.yaml").read_text() + "control: {window_choices: [1, 2]}\n"
    (tmp_path / "ideal2.yaml").write_text(raw)
    config = tiny_config(
        **{"collect.scenarios": [{"scenario": str(tmp_path / "ideal2.yaml")}, {"scenario": "lan-edge"}]}
    )
    path = write_config(tmp_path / "c.yaml", config)
    assert "offers other decisions" in fails(
        capsys, "collect", "--config", str(path), "--out", str(tmp_path / "d")
    )


def test_collect_refuses_another_configs_folder(
    tiny_dataset: Path, tiny_config, write_config, tmp_path, capsys
):
    other = write_config(tmp_path / "c.yaml", tiny_config(**{"collect.seed": 99}))
    assert "another collect config" in fails(
        capsys, "collect", "--config", str(other), "--out", str(tiny_dataset)
    )
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    assert "not empty" in fails(capsys, "collect", "--config", str(other), "--out", str(stray))


def test_missing_and_corrupt_datasets(
    tiny_dataset: Path, tiny_config, write_config, tmp_path, capsys
) -> None:
    config = write_config(tmp_path / "c.yaml", tiny_config())
    run = ["train", "wc-dnn", "--config", str(config), "--out", str(tmp_path / "run")]
    assert "no such directory" in fails(capsys, *run, "--data", str(tmp_path / "none"))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no dataset.json" in fails(capsys, *run, "--data", str(empty))
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dataset, broken)
    victim = sorted(broken.glob("*.npz"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    line = fails(capsys, *run, "--data", str(broken))
    assert "1 of 4 shards not complete" in line and victim.name in line
    (broken / "dataset.json").write_text("{not json")
    assert "not readable JSON" in fails(capsys, *run, "--data", str(broken))
    (broken / "dataset.json").write_text(json.dumps({"format": "other"}))
    assert "is not a dsd-gym-wc-dnn-dataset" in fails(capsys, *run, "--data", str(broken))
    older = tmp_path / "older"  # collected by a dsd-gym without one of this version's features
    shutil.copytree(tiny_dataset, older)
    sidecar = json.loads((older / "dataset.json").read_text())
    sidecar["features"] = [f for f in sidecar["features"] if f["name"] != "context_tokens"]
    (older / "dataset.json").write_text(json.dumps(sidecar))
    line = fails(capsys, *run, "--data", str(older))
    assert "other telemetry features" in line and "(+context_tokens)" in line and "collect it again" in line


def test_missing_and_corrupt_checkpoints(tiny_dataset, tiny_config, write_config, tmp_path, capsys) -> None:
    out = str(tmp_path / "c.pt")
    assert "no such file" in fails(capsys, "export", "--checkpoint", str(tmp_path / "none.pt"), "--out", out)
    assert "is a directory" in fails(capsys, "export", "--checkpoint", str(tmp_path), "--out", out)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 64)
    assert "not a readable checkpoint" in fails(capsys, "export", "--checkpoint", str(junk), "--out", out)
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    line = fails(capsys, "export", "--checkpoint", str(tmp_path / "other.pt"), "--out", out)
    assert "not a dsd-gym-wc-dnn-checkpoint" in line
    config = write_config(tmp_path / "c.yaml", tiny_config(**{"train.epochs": 1}))
    run = [
        "train",
        "wc-dnn",
        "--config",
        str(config),
        "--data",
        str(tiny_dataset),
        "--out",
        str(tmp_path / "run"),
    ]
    assert "last.pt: no such file" in fails(capsys, *run, "--resume")
    assert main(run) == 0
    capsys.readouterr()
    assert "holds a training run" in fails(capsys, *run)
    (tmp_path / "run" / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    assert "not a readable checkpoint" in fails(capsys, *run, "--resume")
