"""Export: one TorchScript file that a torch-only process loads and that decides exactly as in-process.

The telemetry is recorded from a short simulation; the controller is untrained but seeded, with its
normalisation fitted to that telemetry and a read-out large enough that γ and the mode move.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dsd_gym.cli import main
from dsd_gym.config import load_scenario
from dsd_gym.errors import UserError
from dsd_gym.runner import build
from dsd_gym.runtime import METADATA_FILE, load_controller
from dsd_gym.telemetry import NAMES
from wc_dnn.awc import AWCConfig
from wc_dnn.export import WCDNNController, controller_metadata, decision_latency_us, export_controller
from wc_dnn.model import FeatureNorm, WindowNet, WindowNetConfig

MODES = ["distributed", "fused", "autoregressive"]


@pytest.fixture(scope="module")
def telemetry() -> np.ndarray:
    vectors: list[np.ndarray] = []
    sim = build(load_scenario("metro-5g", ["duration_s=10", "warmup_s=0"]), "heuristic", 0,
                round_hook=lambda record, session: vectors.append(session.telemetry.vector()))  # fmt: skip
    sim.run()
    return np.stack(vectors[:400])


def make_controller(telemetry: np.ndarray) -> WCDNNController:
    torch.manual_seed(0)
    net = WindowNet(WindowNetConfig(hidden=16, depth=1, mode_head=True))
    with torch.no_grad():
        net.delta.weight.mul_(8.0)
        net.modes.weight.mul_(8.0)
    awc = AWCConfig(modes=MODES, smoothing=0.5, gamma_dwell=2, mode_dwell=3)
    return WCDNNController(FeatureNorm().fit(telemetry), net, awc)


@pytest.fixture(scope="module")
def exported(telemetry: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> tuple[WCDNNController, Path]:
    controller = make_controller(telemetry)
    path = export_controller(
        controller, tmp_path_factory.mktemp("export") / "controller.pt", {"test": "seeded"}
    )
    return controller, path


def forward_decisions(module, telemetry: np.ndarray) -> list[tuple[int, int]]:
    module.reset()
    return [tuple(module(torch.from_numpy(v))) for v in telemetry]


def test_decisions_move(exported, telemetry) -> None:
    decisions = forward_decisions(exported[0], telemetry)
    assert len({g for g, _ in decisions}) >= 3 and len({m for _, m in decisions}) >= 2


def test_forward_decide_eager_and_scripted_agree(exported, telemetry) -> None:
    controller, path = exported
    scripted = load_controller(path).module
    expected = forward_decisions(controller, telemetry)
    assert forward_decisions(scripted, telemetry) == expected
    for module in (controller, scripted):
        state, threaded = module.initial_state(1), []
        for v in telemetry:
            gamma, mode, state = module.decide(torch.from_numpy(v).unsqueeze(0), state)
            threaded.append((int(gamma[0]), int(mode[0])))
        assert threaded == expected


def test_batched_decide_equals_one_session_at_a_time(exported, telemetry) -> None:
    module = load_controller(exported[1]).module
    sessions = telemetry[:200].reshape(4, 50, -1)  # 4 sessions stepped in lockstep
    state, batched = module.initial_state(4), []
    for t in range(50):
        gamma, mode, state = module.decide(torch.from_numpy(np.ascontiguousarray(sessions[:, t])), state)
        batched.append(list(zip(gamma.tolist(), mode.tolist(), strict=True)))
    for i in range(4):
        assert [row[i] for row in batched] == forward_decisions(module, sessions[i])


def test_a_torch_only_process_loads_the_file_and_decides_identically(exported, telemetry, torch_only) -> None:
    controller, path = exported
    out = torch_only(
        f"""
        import torch
        extra = {{"metadata.json": ""}}
        module = torch.jit.load({str(path)!r}, _extra_files=extra)
        metadata = json.loads(extra["metadata.json"])
        features = torch.tensor(json.load(sys.stdin), dtype=torch.float32)
        assert features.shape[1] == len(metadata["features"])
        decisions = [list(module(row)) for row in features]
        state, threaded = module.initial_state(1), []
        for row in features:
            gamma, mode, state = module.decide(row.unsqueeze(0), state)
            threaded.append([int(gamma[0]), int(mode[0])])
        print(json.dumps({{"metadata": metadata, "forward": decisions, "decide": threaded}}))
        """,
        telemetry.tolist(),
    )
    expected = [list(d) for d in forward_decisions(controller, telemetry)]
    assert out["forward"] == expected and out["decide"] == expected
    metadata = out["metadata"]
    assert [f["name"] for f in metadata["features"]] == list(NAMES)
    assert metadata["kind"] == "wc-dnn" and metadata["modes"] == MODES
    assert metadata["window_choices"] == list(range(1, 9)) and metadata["awc"]["gamma_dwell"] == 2
    assert metadata["provenance"]["inputs"] == {"test": "seeded"} and metadata["provenance"]["code_version"]


def test_the_policy_runs_in_simulate(exported, capsys) -> None:
    argv = ["simulate", "--scenario", "metro-5g", "--set", "duration_s=15", "--json"]
    runs = []
    for _ in range(2):
        assert main([*argv, "--policy", f"torchscript:{exported[1]}"]) == 0
        runs.append(json.loads(capsys.readouterr().out))
    assert runs[0] == runs[1] and runs[0]["rounds"] > 0


def write_with_metadata(source: Path, target: Path, change) -> Path:
    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(source), _extra_files=extra)
    metadata = json.loads(extra[METADATA_FILE])
    change(metadata)
    torch.jit.save(module, str(target), _extra_files={METADATA_FILE: json.dumps(metadata)})
    return target


def bad_files(source: Path, tmp: Path) -> dict[str, tuple[Path, str]]:
    (tmp / "corrupt.pt").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp / "dir.pt").mkdir()
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(tmp / "bare.pt"))
    (tmp / "text.pt").write_text("hello")

    def features(metadata: dict) -> None:
        metadata["features"].reverse()

    def choices(metadata: dict) -> None:
        metadata["window_choices"] = [4, 2]

    return {
        "missing": (tmp / "missing.pt", "no such file"),
        "directory": (tmp / "dir.pt", "is a directory"),
        "corrupt": (tmp / "corrupt.pt", "not a readable TorchScript file"),
        "text": (tmp / "text.pt", "not a readable TorchScript file"),
        "no metadata": (tmp / "bare.pt", "no metadata.json inside"),
        "kind": (write_with_metadata(source, tmp / "kind.pt", lambda m: m.update(kind="ppo")), "kind 'ppo'"),
        "features": (
            write_with_metadata(source, tmp / "f.pt", features),
            "made for other telemetry features",
        ),
        "choices": (write_with_metadata(source, tmp / "c.pt", choices), "window_choices"),
        "scenario": (source, "not all among the scenario's control.window_choices [1, 2]"),
    }


def test_bad_files_give_one_line_and_exit_2(exported, tmp_path, capsys) -> None:
    for name, (path, message) in bad_files(exported[1], tmp_path).items():
        override = "control.window_choices=[1, 2]" if name == "scenario" else "duration_s=15"
        rc = main(
            ["simulate", "--scenario", "metro-5g", "--policy", f"torchscript:{path}", "--set", override]
        )
        out, err = capsys.readouterr()
        assert rc == 2 and out == "", name
        assert len(err.strip().splitlines()) == 1 and message in err, (name, err)
        if name != "scenario":
            with pytest.raises(UserError, match=message):
                load_controller(path)


def test_modes_must_be_enabled_by_the_scenario(exported) -> None:
    from dsd_gym.controllers import parse_policy

    scenario = load_scenario("metro-5g", ["control.modes=[distributed, autoregressive]"])
    with pytest.raises(UserError, match=r"may choose modes \['distributed', 'fused', 'autoregressive'\]"):
        parse_policy(f"torchscript:{exported[1]}", scenario)


def test_metadata_and_latency_report(exported, telemetry) -> None:
    controller, path = exported
    metadata = controller_metadata(controller)
    assert metadata["normalization"]["std"] == controller.norm.std.tolist()
    report = decision_latency_us(load_controller(path).module, torch.from_numpy(telemetry[0]), calls=500)
    assert report["threads"] == 1 and report["forward_us"]["median"] > 0
