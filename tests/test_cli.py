"""The ``dsd-gym`` command: listing scenarios, simulating, JSON output, determinism, comparisons."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dsd_gym.cli import main

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "configs" / "scenarios"

PERCENTILES = ("p50", "p95", "p99")
SUMMARY_KEYS = {
    "throughput_tok_s", "session_tok_s", "ttft_ms", "tpot_ms", "goodput_rps", "acceptance_rate",
    "tokens_per_round", "target_utilization", "mean_batch_size", "rounds", "completed_requests",
    "sim_time_s", "round_breakdown_ms",
}  # fmt: skip
BREAKDOWN_KEYS = {"draft", "uplink", "queue", "verify", "downlink"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """stdout of a successful in-process run."""
    rc = main(list(argv))
    out, err = capsys.readouterr()
    assert (rc, err) == (0, ""), err
    return out


def simulate_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    return json.loads(run(capsys, "simulate", *argv, "--json"))


def test_scenarios_lists_every_shipped_file_with_its_description(capsys: pytest.CaptureFixture[str]) -> None:
    lines = run(capsys, "scenarios").splitlines()
    files = sorted(SCENARIOS.glob("*.yaml"))
    assert len(lines) == len(files)
    for line, path in zip(lines, files, strict=True):
        name, _, description = line.partition(" ")
        assert name == path.stem
        first = str(yaml.safe_load(path.read_text())["description"]).strip().splitlines()[0]
        assert description.strip() == first != ""


def test_simulate_json_has_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    summary = simulate_json(capsys, "--scenario", "ideal", "--set", "duration_s=20")
    assert isinstance(summary, dict)
    assert SUMMARY_KEYS <= summary.keys()
    for key in ("ttft_ms", "tpot_ms"):
        assert set(PERCENTILES) <= summary[key].keys()
    assert BREAKDOWN_KEYS <= summary["round_breakdown_ms"].keys()
    assert summary["sim_time_s"] == 20
    assert summary["rounds"] > 0 and summary["throughput_tok_s"] > 0
    assert 0 <= summary["acceptance_rate"] <= 1
    assert summary["scenario"] == "ideal" and summary["policy"] == "fixed:4"


def test_simulate_prints_a_summary_table(capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "simulate", "--scenario", "ideal", "--set", "duration_s=20")
    assert out.splitlines()[0].split() == ["scenario", "ideal"]
    for label in ("throughput", "TTFT p50/p95/p99", "TPOT p50/p95/p99", "round breakdown"):
        assert label in out


def test_same_command_same_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("simulate", "--scenario", "metro-5g", "--set", "duration_s=20", "--json")
    first = run(capsys, *argv)
    assert run(capsys, *argv) == first
    # And across processes, whose hash seeds and import order differ.
    proc = subprocess.run(
        [sys.executable, "-m", "dsd_gym", *argv], capture_output=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == first


def test_seed_changes_a_stochastic_run(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("--scenario", "metro-5g", "--set", "duration_s=20")
    one = simulate_json(capsys, *argv, "--seed", "1")
    two = simulate_json(capsys, *argv, "--seed", "2")
    assert (one["seed"], two["seed"]) == (1, 2)
    one.pop("seed"), two.pop("seed")
    assert one != two
    assert (one["rounds"], one["throughput_tok_s"]) != (two["rounds"], two["throughput_tok_s"])


def test_seed_flag_equal_to_the_scenario_seed_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("simulate", "--scenario", "metro-5g", "--set", "duration_s=20", "--set", "seed=3", "--json")
    assert run(capsys, *argv) == run(capsys, *argv, "--seed", "3")


def test_several_policies_print_one_row_each(capsys: pytest.CaptureFixture[str]) -> None:
    policies = ["autoregressive", "fixed:2", "fixed:4", "fused:3"]
    argv = ["simulate", "--scenario", "ideal", "--set", "duration_s=20"]
    for p in policies:
        argv += ["--policy", p]
    lines = run(capsys, *argv).splitlines()
    assert lines[0] == "scenario ideal, seed 0, 20 s simulated"
    header, rule, *rows = lines[1:]
    assert header.split()[0] == "policy" and header.endswith("× AR")
    assert set(rule.replace(" ", "")) == {"-"}
    assert [row.split()[0] for row in rows] == policies
    assert rows[0].split()[-1] == "1.00"  # autoregressive against itself
    speedups = [float(row.split()[-1]) for row in rows[1:]]
    assert all(s > 1 for s in speedups)  # α = 0.7, c = 0.05: speculation wins


def test_several_policies_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    rows = simulate_json(
        capsys, "--scenario", "ideal", "--set", "duration_s=20", "--policy", "fixed:2", "--policy", "fixed:6"
    )
    assert [r["policy"] for r in rows] == ["fixed:2", "fixed:6"]
    assert all(SUMMARY_KEYS <= r.keys() for r in rows)


def test_policy_flag_overrides_the_scenario_policy(capsys: pytest.CaptureFixture[str]) -> None:
    """The scenario's default fixed:4 is outside these choices, but the run names its own policy."""
    summary = simulate_json(
        capsys, "--scenario", "ideal", "--set", "duration_s=20", "--set", "control.window_choices=[1, 2]",
        "--policy", "fixed:2",
    )  # fmt: skip
    assert summary["policy"] == "fixed:2"


def test_a_scenario_given_by_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "my-ideal.yaml"
    shutil.copy(SCENARIOS / "ideal.yaml", path)
    by_path = simulate_json(capsys, "--scenario", str(path), "--set", "duration_s=20")
    by_name = simulate_json(capsys, "--scenario", "ideal", "--set", "duration_s=20")
    assert by_path.pop("scenario") == "my-ideal"
    by_name.pop("scenario")
    assert by_path == by_name


def test_a_scenario_by_path_finds_its_trace_next_to_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raw = yaml.safe_load((SCENARIOS / "ideal.yaml").read_text())
    raw["devices"][0]["link"]["delay"] = {"kind": "trace", "path": "link.csv"}
    (tmp_path / "link.csv").write_text(
        "time_s,one_way_ms,uplink_mbps,downlink_mbps\n0,10,100,100\n1,30,100,100\n"
    )
    (tmp_path / "traced.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    summary = simulate_json(capsys, "--scenario", str(tmp_path / "traced.yaml"), "--set", "duration_s=20")
    assert summary["scenario"] == "traced"
    assert summary["round_breakdown_ms"]["uplink"] >= 10
