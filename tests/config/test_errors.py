"""Bad input fails with exit code 2 and one line naming the key, the value and what is allowed.

Every case runs through the real command line: in-process through ``dsd_gym.cli.main`` (all of
them) and in a subprocess (a sample), so a traceback would show on the terminal if any escaped.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from dsd_gym.cli import main
from dsd_gym.config import load_scenario

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.stem for p in (REPO / "configs" / "scenarios").glob("*.yaml"))

# A small valid scenario; the file cases below each break one thing in it.
BASE: dict[str, Any] = {
    "description": "A small valid scenario that the error cases break one key at a time.",
    "duration_s": 5,
    "acceptance": {"kind": "iid", "alpha": 0.7},
    "devices": [
        {
            "name": "edge",
            "hardware": "jetson-agx-orin",
            "draft_model": "llama-3.2-1b",
            "latency": {"kind": "constant", "forward_ms": 1.0},
            "link": {
                "uplink_mbps": 100,
                "downlink_mbps": 100,
                "delay": {"kind": "constant", "one_way_ms": 5},
            },
        }
    ],
    "cloud": {
        "targets": [
            {
                "name": "target",
                "hardware": "h100-sxm",
                "model": "llama-3.1-8b",
                "latency": {"kind": "constant", "forward_ms": 20.0, "draft_forward_ms": 1.0},
            }
        ]
    },
    "workload": {"kind": "closed_loop", "task": "chat"},
}

NET_OK = "time_s,one_way_ms,uplink_mbps,downlink_mbps\n0,5,100,100\n1,6,90,100\n2,5,100,80\n"
WORK_OK = (
    '{"arrival_s": 0.5, "prompt_tokens": 20, "output_tokens": 40}\n'
    '{"arrival_s": 1.0, "prompt_tokens": 30, "output_tokens": 50, "device": "edge"}\n'
)
LAT_OK = "batch_size,num_tokens,ms\n1,1,10\n1,16,12\n8,1,14\n8,16,20\n"


def scenario(*edits: tuple[str, Any], drop: tuple[str, ...] = ()) -> str:
    """BASE as YAML, with dotted keys set (``("devices.0.link.delay", {...})``) or dropped."""
    raw = copy.deepcopy(BASE)
    for key, value in edits:
        *parents, last = key.split(".")
        node: Any = raw
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value
    for key in drop:
        del raw[key]
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


BACKGROUND = {**BASE["devices"][0], "name": "bg", "policy": "fixed:2"}

NET_SCENARIO = scenario(("devices.0.link.delay", {"kind": "trace", "path": "net.csv"}))
WORK_SCENARIO = scenario(("workload", {"kind": "trace", "path": "requests.jsonl"}))
LAT_SCENARIO = scenario(
    ("cloud.targets.0.latency", {"kind": "lookup", "path": "latency.csv"}),
    ("control", {"modes": ["distributed", "autoregressive"]}),
)


@dataclass(frozen=True)
class Case:
    """One bad input. ``{tmp}`` in argv is the folder ``files`` are written to."""

    id: str
    argv: tuple[str, ...]
    expect: tuple[str, ...]  # fragments of the error line: the key, the value, what is allowed
    files: dict[str, str] = field(default_factory=dict)


def ideal(*sets: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """``simulate`` on the shipped ideal scenario with ``--set`` overrides."""
    return ("simulate", "--scenario", "ideal", *(a for s in sets for a in ("--set", s)), *extra)


def from_file(*extra: str) -> tuple[str, ...]:
    return ("simulate", "--scenario", "{tmp}/scenario.yaml", *extra)


CASES = [
    # ---------------------------------------------------------------- keys and types
    Case(
        "unknown-top-level-key",
        ideal("durration_s=20"),
        ("durration_s", "value 20", "allowed keys: acceptance, cloud, control, description,"),
    ),
    Case(
        "unknown-nested-key",
        ideal("devices.0.link.delay.jitter=3"),
        (
            "devices.0.link.delay.jitter:",
            "value 3",
            "allowed keys: jitter_ms, kind, loss, one_way_ms, step_ms",
        ),
    ),
    Case(
        "unknown-key-in-file",
        from_file(),
        ("cloud.targets.0.max_batch", "value 64", "allowed keys:", "max_batch_size"),
        {"scenario.yaml": scenario(("cloud.targets.0.max_batch", 64))},
    ),
    Case(
        "wrong-type",
        ideal("duration_s=twenty"),
        ("duration_s:", "'twenty'", "should be a valid number"),
    ),
    Case(
        "wrong-type-in-file",
        from_file(),
        ("devices.0.link.uplink_mbps:", "'fast'", "should be a valid number"),
        {"scenario.yaml": scenario(("devices.0.link.uplink_mbps", "fast"))},
    ),
    Case(
        "required-key-missing",
        from_file(),
        ("devices:", "required key is missing"),
        {"scenario.yaml": scenario(drop=("devices",))},
    ),
    Case(
        "not-a-number-nan",
        ideal("duration_s=.nan"),
        ("duration_s:", "nan", "finite number"),
    ),
    # ---------------------------------------------------------------- ranges
    Case(
        "negative-latency",
        ideal("devices.0.link.delay.one_way_ms=-5"),
        ("devices.0.link.delay.one_way_ms:", "value -5", "greater than or equal to 0"),
    ),
    Case(
        "negative-latency-in-file",
        from_file(),
        ("devices.0.latency.forward_ms:", "value -1.0", "greater than 0"),
        {"scenario.yaml": scenario(("devices.0.latency.forward_ms", -1.0))},
    ),
    Case(
        "alpha-above-1",
        ideal("acceptance.alpha=1.01"),
        ("acceptance.alpha:", "value 1.01", "less than or equal to 1"),
    ),
    Case(
        "alpha-above-1-whole-mapping",
        ideal("acceptance={kind: iid, alpha: 1.5}"),
        ("acceptance.alpha:", "value 1.5", "less than or equal to 1"),
    ),
    Case(
        "alpha-below-0",
        ideal("acceptance={kind: iid, alpha: -0.2}"),
        ("acceptance.alpha:", "value -0.2", "greater than or equal to 0"),
    ),
    Case(
        "alpha-of-a-markov-regime",
        ideal(
            "acceptance={kind: markov, regimes: [{name: prose, alpha: 0.6, mean_tokens: 50},"
            " {name: code, alpha: 7, mean_tokens: 50}]}"
        ),
        ("acceptance.regimes.1.alpha:", "value 7", "less than or equal to 1"),
    ),
    Case(
        "negative-duration",
        ideal("duration_s=-10"),
        ("duration_s:", "value -10", "greater than 0"),
    ),
    Case(
        "warmup-not-before-end",
        ideal("warmup_s=600"),
        ("warmup_s", "600", "must be < duration_s (600"),
    ),
    Case(
        "loss-of-1",
        ideal("devices.0.link.delay.loss=1.0"),
        ("devices.0.link.delay.loss:", "value 1.0", "less than 1"),
    ),
    Case(
        "negative-seed-in-scenario",
        ideal("seed=-3"),
        ("seed:", "value -3", "greater than or equal to 0"),
    ),
    Case(
        "max-batch-tokens-below-widest-window",
        ideal("cloud.targets.0.max_batch_tokens=4"),
        ("cloud.targets.0.max_batch_tokens", "(4)", "control.window_choices (9 tokens)"),
    ),
    Case(
        "uniform-high-below-low",
        ideal("workload.task.output_tokens={dist: uniform, low: 50, high: 10}"),
        ("workload.task.output_tokens", "high (10.0)", "must be >= low (50.0)"),
    ),
    # ---------------------------------------------------------------- windows and modes
    Case(
        "empty-window-set",
        ideal("control.window_choices=[]"),
        ("control.window_choices:", "value []", "at least 1 item"),
    ),
    Case(
        "duplicate-window-choices",
        ideal("control.window_choices=[2, 4, 2]"),
        ("control.window_choices:", "[2, 4, 2]", "must be distinct"),
    ),
    Case(
        "zero-window",
        ideal("control.window_choices=[0, 2]"),
        ("control.window_choices.0:", "value 0", "greater than 0"),
    ),
    Case(
        "unknown-mode",
        ideal("control.modes=[distributed, turbo]"),
        ("control.modes.1:", "'turbo'", "'distributed', 'fused' or 'autoregressive'"),
    ),
    Case(
        "unknown-router",
        ideal("cloud.router=fastest"),
        ("cloud.router:", "'fastest'", "'random', 'round_robin' or 'jsq'"),
    ),
    # ---------------------------------------------------------------- profiles and kinds
    Case(
        "unknown-hardware-profile",
        ideal("devices.0.hardware=tpu-v9"),
        ("devices.0.hardware:", "'tpu-v9'", "allowed: a100-sxm-80gb,", "jetson-agx-orin"),
    ),
    Case(
        "unknown-model-profile",
        ideal("cloud.targets.0.model=gpt-5"),
        ("cloud.targets.0.model:", "'gpt-5'", "allowed:", "llama-3.1-8b"),
    ),
    Case(
        "unknown-acceptance-profile",
        ideal("acceptance=no-such-pair"),
        ("acceptance:", "'no-such-pair'", "allowed:", "iid-0.7"),
    ),
    Case(
        "unknown-acceptance-profile-of-a-device",
        ideal("devices.0.acceptance=no-such-pair"),
        ("devices.0.acceptance:", "'no-such-pair'", "allowed:", "iid-0.7"),
    ),
    Case(
        "unknown-task",
        ideal("workload.task=poetry"),
        ("workload.task:", "'poetry'", "allowed:", "chat"),
    ),
    Case(
        "unknown-delay-kind",
        ideal("devices.0.link.delay.kind=carrier-pigeon"),
        ("devices.0.link.delay.kind:", "'carrier-pigeon'", "allowed: constant, gilbert_elliott, trace"),
    ),
    Case(
        "unknown-distribution",
        ideal("workload.task.output_tokens={dist: gauss, mean: 3}"),
        ("workload.task.output_tokens.dist:", "'gauss'", "allowed: constant, exponential, uniform"),
    ),
    Case(
        "kind-missing",
        ideal("acceptance={alpha: 0.5}"),
        ("acceptance.kind:", "missing", "allowed: iid, markov, latent"),
    ),
    # ---------------------------------------------------------------- overrides
    Case(
        "override-list-index-out-of-range",
        ideal("devices.9.count=1"),
        ("devices.9", "'devices.9.count=1'", "allowed indices 0..0"),
    ),
    Case(
        "override-without-equals",
        ideal("duration_s"),
        ("override 'duration_s'", "expected dotted.key=value"),
    ),
    Case(
        "override-value-not-yaml",
        ideal("duration_s=[20"),
        ("override 'duration_s=[20'", "not valid YAML"),
    ),
    Case(
        "override-into-a-value",
        ideal("duration_s.max=3"),
        ("override 'duration_s.max=3'", "duration_s is a value (600)", "not a mapping or list"),
    ),
    # ---------------------------------------------------------------- scenario files
    Case(
        "unknown-scenario-name",
        ("simulate", "--scenario", "no-such-scenario"),
        ("'no-such-scenario'", "allowed: " + ", ".join(SHIPPED), "a path to a .yaml file"),
    ),
    Case(
        "missing-scenario-file",
        ("simulate", "--scenario", "{tmp}/missing.yaml"),
        ("missing.yaml", "no such file"),
    ),
    Case(
        "invalid-yaml-file",
        from_file(),
        ("scenario.yaml:3:", "mapping values are not allowed here", "the file must be valid YAML"),
        {"scenario.yaml": "description: broken\nduration_s: 5\n  warmup_s: 1\n"},
    ),
    Case(
        "scenario-file-not-a-mapping",
        from_file(),
        ("scenario.yaml", "a scenario must be a mapping of keys to values"),
        {"scenario.yaml": "- duration_s: 5\n"},
    ),
    # ---------------------------------------------------------------- data files
    Case(
        "missing-trace-file",
        from_file(),
        ("devices.0.link.delay.path:", "no-such-trace.csv", "no such file", "looked up next to"),
        {"scenario.yaml": scenario(("devices.0.link.delay", {"kind": "trace", "path": "no-such-trace.csv"}))},
    ),
    Case(
        "network-trace-not-a-number",
        from_file(),
        ("devices.0.link.delay.path:", "net.csv:3:", "time_s 'one'", "must be a finite number"),
        {"scenario.yaml": NET_SCENARIO, "net.csv": NET_OK.replace("\n1,", "\none,")},
    ),
    Case(
        "network-trace-time-decreases",
        from_file(),
        ("devices.0.link.delay.path:", "net.csv:4:", "time_s 0.5", "must strictly increase"),
        {"scenario.yaml": NET_SCENARIO, "net.csv": NET_OK.replace("\n2,", "\n0.5,")},
    ),
    Case(
        "network-trace-negative-delay",
        from_file(),
        ("devices.0.link.delay.path:", "net.csv:3:", "one_way_ms is -6", "must be >= 0"),
        {"scenario.yaml": NET_SCENARIO, "net.csv": NET_OK.replace("1,6,", "1,-6,")},
    ),
    Case(
        "network-trace-wrong-header",
        from_file(),
        (
            "devices.0.link.delay.path:",
            "net.csv:1:",
            "'time,delay'",
            "time_s,one_way_ms,uplink_mbps,downlink_mbps",
        ),
        {"scenario.yaml": NET_SCENARIO, "net.csv": "time,delay\n0,5\n1,6\n"},
    ),
    Case(
        "workload-trace-bad-json",
        from_file(),
        ("workload.path:", "requests.jsonl:2:", "invalid JSON", "each line is one JSON object"),
        {
            "scenario.yaml": WORK_SCENARIO,
            "requests.jsonl": WORK_OK.replace('"device": "edge"}', '"device": edge}'),
        },
    ),
    Case(
        "workload-trace-unknown-key",
        from_file(),
        ("workload.path:", "requests.jsonl:1:", "unknown key 'priority'", "allowed keys: arrival_s,"),
        {
            "scenario.yaml": WORK_SCENARIO,
            "requests.jsonl": WORK_OK.replace('"arrival_s": 0.5,', '"arrival_s": 0.5, "priority": 1,'),
        },
    ),
    Case(
        "workload-trace-zero-output-tokens",
        from_file(),
        ("workload.path:", "requests.jsonl:1:", "output_tokens is 0", "an integer >= 1"),
        {
            "scenario.yaml": WORK_SCENARIO,
            "requests.jsonl": WORK_OK.replace('"output_tokens": 40', '"output_tokens": 0'),
        },
    ),
    Case(
        "workload-trace-unknown-device",
        from_file(),
        ("workload.path:", "requests.jsonl", "unknown device 'toaster'", "allowed: edge"),
        {"scenario.yaml": WORK_SCENARIO, "requests.jsonl": WORK_OK.replace('"edge"', '"toaster"')},
    ),
    Case(
        "workload-trace-unknown-acceptance-profile",
        from_file(),
        ("workload.path:", "requests.jsonl", "unknown acceptance profile 'guesswork'", "allowed:", "iid-0.7"),
        {
            "scenario.yaml": WORK_SCENARIO,
            "requests.jsonl": WORK_OK.replace('"device": "edge"', '"acceptance": "guesswork"'),
        },
    ),
    Case(
        "latency-table-negative-ms",
        from_file(),
        ("cloud.targets.0.latency.path:", "latency.csv:3:", "ms is -12", "ms must be > 0"),
        {"scenario.yaml": LAT_SCENARIO, "latency.csv": LAT_OK.replace("1,16,12", "1,16,-12")},
    ),
    Case(
        "latency-table-incomplete-grid",
        from_file(),
        (
            "cloud.targets.0.latency.path:",
            "no row for batch_size 8, num_tokens 16",
            "every batch size with every token count",
        ),
        {"scenario.yaml": LAT_SCENARIO, "latency.csv": LAT_OK.replace("8,16,20\n", "")},
    ),
    # ---------------------------------------------------------------- policies and flags
    Case(
        "policy-window-not-a-number",
        ideal(extra=("--policy", "fixed:x")),
        ("--policy:", "'fixed:x'", "positive integer", "allowed: fixed:G, fused:G, autoregressive"),
    ),
    Case(
        "policy-unknown",
        ideal(extra=("--policy", "warp:3")),
        ("--policy:", "'warp:3'", "allowed: fixed:G, fused:G, autoregressive"),
    ),
    Case(
        "policy-window-not-among-choices",
        ideal("control.window_choices=[2, 4]", extra=("--policy", "fixed:3")),
        ("--policy:", "'fixed:3'", "window 3", "window choices [2, 4]"),
    ),
    Case(
        "policy-fused-not-enabled",
        ideal("control.modes=[distributed, autoregressive]", extra=("--policy", "fused:4")),
        ("--policy:", "'fused:4'", "mode fused", "allows ['distributed', 'autoregressive']"),
    ),
    Case(
        "policy-bad-one-among-several",
        ideal(extra=("--policy", "fixed:2", "--policy", "autoregresive")),
        ("--policy:", "'autoregresive'", "allowed: fixed:G, fused:G, autoregressive"),
    ),
    Case(
        "policy-in-the-scenario",
        ideal("control.policy=fixed:0"),
        ("control.policy:", "'fixed:0'", "window 0", "window choices [1, 2, 3, 4, 5, 6, 7, 8]"),
    ),
    Case(
        "policy-of-a-background-group",
        from_file(),
        ("devices.1.policy:", "'warp:2'", "allowed: fixed:G, fused:G, autoregressive"),
        {"scenario.yaml": scenario(("devices", [*BASE["devices"], {**BACKGROUND, "policy": "warp:2"}]))},
    ),
    # ---------------------------------------------------------------- conditions across keys
    Case(
        "open-loop-workload-without-a-foreground-device",
        from_file(),
        ("a poisson workload", "devices.N.policy", "leave the policy unset"),
        {
            "scenario.yaml": scenario(
                ("devices", [BACKGROUND]), ("workload", {"kind": "poisson", "rate_per_s": 1, "task": "chat"})
            )
        },
    ),
    Case(
        "trace-workload-with-a-background-group",
        from_file(),
        ("devices.N.policy", "trace workload", "use a closed_loop or poisson workload"),
        {
            "scenario.yaml": scenario(
                ("devices", [*BASE["devices"], BACKGROUND]),
                ("workload", {"kind": "trace", "path": "requests.jsonl"}),
            ),
            "requests.jsonl": WORK_OK,
        },
    ),
    Case(
        "background-verify-wider-than-a-batch",
        from_file(),
        ("cloud.background.verify_tokens", "(9000)", "<= cloud.targets.0.max_batch_tokens (8192)"),
        {
            "scenario.yaml": scenario(
                ("cloud.background", {"kind": "stochastic", "verify_rate_per_s": 10, "verify_tokens": 9000})
            )
        },
    ),
    Case(
        "negative-seed-flag",
        ideal(extra=("--seed", "-1")),
        ("--seed", "'-1'", "allowed: an integer >= 0"),
    ),
    Case(
        "unknown-flag",
        ideal(extra=("--frobnicate",)),
        ("--frobnicate", "unrecognized", "allowed: --help, --json, --policy, --scenario, --seed, --set"),
    ),
    Case(
        "missing-scenario-flag",
        ("simulate", "--policy", "fixed:2"),
        ("--scenario", "required"),
    ),
    Case(
        "unknown-command",
        ("simulte", "--scenario", "ideal"),
        ("'simulte'", "choose from 'scenarios', 'simulate', 'bench'"),
    ),
]

# A sample run in a real interpreter: the process's terminal output is what a user sees.
SUBPROCESS_CASES = {
    "unknown-nested-key",
    "negative-latency",
    "unknown-scenario-name",
    "invalid-yaml-file",
    "network-trace-time-decreases",
    "workload-trace-bad-json",
    "policy-unknown",
    "negative-seed-flag",
    "unknown-flag",
}


def _argv(case: Case, tmp_path: Path) -> list[str]:
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)
    return [a.replace("{tmp}", str(tmp_path)) for a in case.argv]


def _check(case: Case, rc: int, out: str, err: str) -> None:
    assert "Traceback" not in err
    assert rc == 2, err
    assert out == ""
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    for fragment in case.expect:
        assert fragment in err, f"{fragment!r} not in {err!r}"


def test_the_cases_are_distinct() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 20
    assert len({(c.argv, tuple(c.files.items())) for c in CASES}) == len(CASES)
    assert SUBPROCESS_CASES <= {c.id for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_one_line_and_exit_2(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(_argv(case, tmp_path))
    out, err = capsys.readouterr()
    _check(case, rc, out, err)


@pytest.mark.parametrize("case", [c for c in CASES if c.id in SUBPROCESS_CASES], ids=lambda c: c.id)
def test_bad_input_in_a_real_process(case: Case, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dsd_gym", *_argv(case, tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    _check(case, proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize(
    "files",
    [
        {"scenario.yaml": scenario()},
        {"scenario.yaml": NET_SCENARIO, "net.csv": NET_OK},
        {"scenario.yaml": WORK_SCENARIO, "requests.jsonl": WORK_OK},
        {"scenario.yaml": LAT_SCENARIO, "latency.csv": LAT_OK},
    ],
    ids=["base", "network-trace", "workload-trace", "latency-table"],
)
def test_the_unbroken_files_load(files: dict[str, str], tmp_path: Path) -> None:
    """Each file case breaks exactly one thing: without it, the same files are valid."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    load_scenario(str(tmp_path / "scenario.yaml"))


def test_a_bad_profile_table_names_the_profile_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = tmp_path / "configs"
    (configs / "profiles").mkdir(parents=True)
    (configs / "scenarios").mkdir()
    for path in (REPO / "configs" / "profiles").glob("*.yaml"):
        (configs / "profiles" / path.name).write_text(path.read_text())
    (configs / "scenarios" / "ideal.yaml").write_text((REPO / "configs/scenarios/ideal.yaml").read_text())
    hardware = configs / "profiles" / "hardware.yaml"
    table = yaml.safe_load(hardware.read_text())
    table["h100-sxm"]["mem_bw_gbps"] = -3350
    hardware.write_text(yaml.safe_dump(table))
    monkeypatch.setenv("DSD_GYM_CONFIGS", str(configs))

    rc = main(["simulate", "--scenario", "ideal"])
    out, err = capsys.readouterr()
    bad_profile = Case(
        "bad-profile", (), ("hardware.yaml", "'h100-sxm'", "mem_bw_gbps:", "-3350", "greater than 0")
    )
    _check(bad_profile, rc, out, err)
