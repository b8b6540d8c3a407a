"""The evaluation harness: common random numbers, determinism, statistics, references, outputs, errors."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from dsd_gym.cli import main
from dsd_gym.config import list_scenarios, load_scenario
from dsd_gym.controllers import fixed_policies
from dsd_gym.evaluation import evaluate, make_plan
from dsd_gym.evaluation import execute as execute_module
from dsd_gym.evaluation.report import table, to_csv, to_json
from dsd_gym.evaluation.stats import mean_ci, ratio_ci, t_quantile_975
from dsd_gym.runner import build, ego_session, simulate

SHORT = ["duration_s=25", "warmup_s=5"]
JSON_KEYS = {
    "scenario", "policy", "mode", "seeds", "throughput_tok_s", "tpot_ms_p50", "tpot_ms_p99", "goodput_rps",
    "ratio_to_fixed4", "ratio_to_oracle",
}  # fmt: skip


# -- common random numbers -------------------------------------------------------------------------


def _paths(policy: str, mode: str) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """(latent α, per-position accept/reject draw) of every request the measured sessions served,
    keyed by (session, k-th request of that session)."""
    paths: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    seen: dict[int, list[int]] = defaultdict(list)
    sim = build(load_scenario("regime-shift", ["duration_s=30"]), policy, seed=3, mode=mode)
    measured = {ego_session(sim).sid} if mode == "ego" else {s.sid for s in sim.sessions if not s.background}

    def hook(record, session) -> None:
        if record.session not in measured:
            return
        requests = seen[record.session]
        if not requests or requests[-1] != record.request:
            requests.append(record.request)
            path = session.request.path
            paths[(record.session, len(requests) - 1)] = (path.alpha.copy(), path.accepted.copy())

    sim.round_hook = hook
    sim.run()
    return paths


@pytest.mark.parametrize("mode", ["ego", "fleet"])
def test_policies_evaluated_together_share_latent_paths_and_acceptance_draws(mode: str) -> None:
    runs = [_paths(p, mode) for p in ("fixed:2", "fixed:7", "analytic", "oracle")]
    shared = set.intersection(*(set(r) for r in runs))
    assert len(shared) >= (3 if mode == "ego" else 20)
    for key in shared:
        alpha, accepted = runs[0][key]
        for other in runs[1:]:
            n = min(len(alpha), len(other[key][0]))
            assert n > 0
            np.testing.assert_array_equal(other[key][0][:n], alpha[:n])
            np.testing.assert_array_equal(other[key][1][:n], accepted[:n])


def test_every_policy_of_a_plan_runs_on_the_same_seeds() -> None:
    plan = make_plan(
        ["ideal", "wan"], ["fixed:2", "analytic", "best-fixed"], seeds=3, seed_base=5, overrides=SHORT
    )
    seeds = defaultdict(list)
    for task in plan.tasks:
        seeds[(task.variant, task.policy)].append(task.seed)
    assert set(map(tuple, seeds.values())) == {(5, 6, 7)}
    specs = {policy for _, policy in seeds}
    assert {"fixed:4", "oracle", "analytic"} <= specs and set(
        fixed_policies(plan.variants[1].scenario)
    ) <= specs


def test_all_names_every_shipped_scenario_once() -> None:
    plan = make_plan(["wan", "all"], ["fixed:4"], seeds=1, oracle=False)
    assert [v.name for v in plan.variants] == ["wan", *(n for n, _ in list_scenarios() if n != "wan")]


# -- determinism ---------------------------------------------------------------------------------


def test_same_evaluation_twice_and_in_any_number_of_processes_gives_the_same_bytes() -> None:
    args = (["ideal", "cellular"], ["fixed:3", "heuristic", "best-fixed"])
    kwargs = {"seeds": 2, "overrides": SHORT, "oracle": False}
    one = evaluate(*args, **kwargs, jobs=1)
    again = evaluate(*args, **kwargs, jobs=1)
    two = evaluate(*args, **kwargs, jobs=2)
    assert to_json(one) == to_json(again) == to_json(two)
    assert table(one) == table(two) and to_csv(one) == to_csv(two)


def test_fleet_row_is_the_mean_of_the_simulations_it_summarises() -> None:
    """On a scenario without background tenants the fleet's figures are the system's: the harness
    adds nothing to, and loses nothing from, what ``simulate`` reports."""
    evaluation = evaluate(["cellular"], ["fixed:3"], seeds=3, overrides=SHORT, oracle=False, jobs=1)
    scenario = load_scenario("cellular", SHORT)
    runs = [simulate(scenario, "fixed:3", seed) for seed in range(3)]
    row = evaluation.rows[0]
    assert row["throughput_tok_s"]["mean"] == pytest.approx(np.mean([r["throughput_tok_s"] for r in runs]))
    assert row["seeds"] == [0, 1, 2]
    assert row["throughput_tok_s_per_seed"] == [r["throughput_tok_s"] for r in runs]
    tpot = [r["tpot_ms"]["p99"] for r in runs if r["tpot_ms"]["p99"] is not None]  # seeds that completed one
    assert tpot and row["tpot_ms_p99"] == pytest.approx(np.mean(tpot))
    assert row["goodput_rps"] == pytest.approx(np.mean([r["goodput_rps"] for r in runs]))


def test_ego_figures_are_the_ego_sessions_own() -> None:
    scenario = load_scenario("metro-5g", SHORT)
    sim = build(scenario, "fixed:3", seed=0, mode="ego")
    ego = ego_session(sim)
    meter = sim.meter(lambda session: session is ego)
    rounds: dict[int, int] = defaultdict(int)

    def hook(record, session) -> None:
        if scenario.warmup_s <= record.end_s <= scenario.duration_s:
            rounds[record.session] += 1

    sim.round_hook = hook
    system = sim.run()
    own = meter.summary(len(sim.targets))
    assert own["rounds"] == rounds[ego.sid] > 0
    assert sum(rounds.values()) == system["rounds"]
    assert 0 < own["throughput_tok_s"] < system["throughput_tok_s"] / 4  # one of eight laptops
    assert own["tokens_per_round"] == pytest.approx(3.0 * own["acceptance_rate"] + 1, rel=0.05)


# -- statistics and references --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("df", "quantile"), [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (29, 2.0452), (120, 1.9799)]
)
def test_t_quantile_matches_the_table(df: int, quantile: float) -> None:
    assert t_quantile_975(df) == pytest.approx(quantile, abs=5e-4)


def test_confidence_interval_covers_the_mean_at_its_nominal_rate() -> None:
    rng = np.random.default_rng(0)
    trials, covered = 4000, 0
    for _ in range(trials):
        mean, half = mean_ci(rng.normal(10.0, 3.0, size=4).tolist())
        covered += abs(mean - 10.0) <= half
    assert covered / trials == pytest.approx(0.95, abs=0.012)
    assert mean_ci([]) == (None, None) and mean_ci([2.0]) == (2.0, None)


def test_paired_ratio_interval_covers_the_true_ratio_and_is_narrower_than_the_seeds() -> None:
    """Seeds share a large common factor (the workload); the policy is 3 % better than the reference
    on top of small own noise. The paired interval covers 1.03 at its nominal rate, and is far
    narrower than what the seeds' spread alone would allow."""
    rng = np.random.default_rng(1)
    trials, covered, widths = 4000, 0, []
    for _ in range(trials):
        seed_effect = rng.normal(50.0, 8.0, size=10)
        reference = seed_effect + rng.normal(0.0, 0.5, size=10)
        values = 1.03 * seed_effect + rng.normal(0.0, 0.5, size=10)
        ratio, half = ratio_ci(values.tolist(), reference.tolist())
        covered += abs(ratio - 1.03) <= half
        widths.append(half)
    assert covered / trials == pytest.approx(0.95, abs=0.015)
    assert np.median(widths) < 0.02  # the seeds alone spread by 16 % (sd 8 on 50)
    assert ratio_ci([], []) == (None, None) and ratio_ci([2.0], [1.0]) == (2.0, None)
    assert ratio_ci([1.0, 2.0], [0.0, 0.0]) == (None, None)


def test_references_have_ratio_one_and_best_fixed_beats_every_fixed_decision() -> None:
    scenario = load_scenario("wan", SHORT)
    fixed = fixed_policies(scenario)
    evaluation = evaluate(
        ["wan"], ["fixed:4", "oracle", "best-fixed", *fixed], seeds=2, overrides=SHORT, jobs=1
    )
    rows = {row["policy"]: row for row in evaluation.rows}
    assert rows["fixed:4"]["ratio_to_fixed4"] == 1.0 and rows["oracle"]["ratio_to_oracle"] == 1.0
    assert rows["fixed:4"]["ratio_to_fixed4_ci95"] == 0.0 and rows["oracle"]["ratio_to_oracle_ci95"] == 0.0
    best = rows["best-fixed"]
    assert best["ratio_to_best_fixed"] == 1.0 and rows[best["best_fixed"]]["ratio_to_best_fixed"] == 1.0
    assert all(row["ratio_to_best_fixed"] <= 1.0 for row in rows.values() if row["policy"] in fixed)
    assert best["best_fixed"] in fixed
    assert best["throughput_tok_s"] == rows[best["best_fixed"]]["throughput_tok_s"]
    for spec in fixed:
        assert best["throughput_tok_s"]["mean"] >= rows[spec]["throughput_tok_s"]["mean"]
        ratio = rows[spec]["throughput_tok_s"]["mean"] / rows["fixed:4"]["throughput_tok_s"]["mean"]
        assert rows[spec]["ratio_to_fixed4"] == pytest.approx(ratio)
    assert "best-fixed" in table(evaluation) and f"best-fixed ({best['best_fixed']})" in table(evaluation)


def test_a_failed_simulation_is_reported_and_the_others_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    real = execute_module.run_task

    def flaky(scenario, task):
        if task.policy == "fixed:2" and task.seed == 1:
            raise RuntimeError("worker lost\nsecond line")
        return real(scenario, task)

    monkeypatch.setattr(execute_module, "run_task", flaky)
    evaluation = evaluate(["ideal"], ["fixed:2", "fixed:3"], seeds=3, overrides=SHORT, oracle=False, jobs=1)
    assert evaluation.failures == [
        {
            "scenario": "ideal",
            "variant": None,
            "policy": "fixed:2",
            "seed": 1,
            "error": "RuntimeError: worker lost",
        }
    ]
    rows = {row["policy"]: row for row in evaluation.rows}
    assert rows["fixed:2"]["seeds"] == [0, 2] and rows["fixed:3"]["seeds"] == [0, 1, 2]
    assert "only seeds 0,2" in table(evaluation)


# -- the command ---------------------------------------------------------------------------------


def test_evaluate_command_writes_json_csv_and_plots_over_a_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "evaluate", "--scenario", "metro-5g", "--policy", "fixed:4", "--policy", "analytic", "--seeds", "2",
        "--sweep", "devices.0.link.delay.one_way_ms=2,15,40", "--set", "duration_s=20", "--set", "warmup_s=5",
        "--no-oracle", "--jobs", "2", "--json", str(tmp_path / "e.json"), "--csv", str(tmp_path / "e.csv"),
        "--plots", str(tmp_path / "plots"),
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("metro-5g devices.0.link.delay.one_way_ms=") == 3
    document = json.loads((tmp_path / "e.json").read_text())
    rows = document["rows"]
    assert len(rows) == 6 and all(JSON_KEYS <= set(row) for row in rows)
    assert [r["sweep_value"] for r in rows] == [2, 2, 15, 15, 40, 40]
    fixed4 = [r["throughput_tok_s"]["mean"] for r in rows if r["policy"] == "fixed:4"]
    assert fixed4 == sorted(fixed4, reverse=True), "a longer round trip cannot speed fixed:4 up"
    assert all(r["ratio_to_oracle"] is None for r in rows)
    header = (tmp_path / "e.csv").read_text().splitlines()[0].split(",")
    assert {"throughput_tok_s_mean", "throughput_tok_s_ci95", "ratio_to_fixed4"} <= set(header)
    for name in ("throughput.png", "tpot_p50.png", "gamma.png"):
        png = (tmp_path / "plots" / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert not list(tmp_path.glob(".*.tmp")) and not list((tmp_path / "plots").glob(".*.tmp"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scenario", "nowhere"], "nowhere"),
        (["--scenario", "ideal", "--policy", "fixed:99"], "window 99 is not among"),
        (["--scenario", "ideal", "--policy", "magic"], "allowed:"),
        (["--scenario", "ideal", "--sweep", "one_way_ms"], "expected KEY=V1,V2"),
        (["--scenario", "ideal", "--sweep", "duration_s="], "no values"),
        (["--scenario", "ideal", "--sweep", "duration_s=10,,20"], "empty value"),
        (["--scenario", "ideal", "--sweep", "duration_s=10,10"], "repeated"),
        (["--scenario", "ideal", "--sweep", "seed=1,2"], "--seeds"),
        (["--scenario", "ideal", "--sweep", "devices.0.link.delay.one_way_ms=a,b"], "one_way_ms"),
        (["--scenario", "ideal", "--sweep", "no.such.key=1,2"], "no.such.key"),
        (["--scenario", "ideal", "--seeds", "0"], "integer >= 1"),
        (["--scenario", "ideal", "--mode", "solo"], "invalid choice"),
        (["--scenario", "ideal", "--json", "/no/such/dir/e.json"], "no such directory"),
        (
            [
                "--scenario",
                "ideal",
                "--mode",
                "ego",
                "--set",
                "workload={kind: poisson, rate_per_s: 1, task: chat}",
            ],
            "closed_loop",
        ),
    ],
)
def test_bad_evaluate_input_is_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    if "--policy" not in argv:
        argv = [*argv, "--policy", "fixed:4"]
    assert main(["evaluate", *argv, "--set", "duration_s=5"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
