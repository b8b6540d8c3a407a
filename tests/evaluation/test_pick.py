"""``dsd-gym pick``: the candidates' scores are evaluate's ratios to best-fixed on validation seeds, and
the winner's file is what lands at --out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dsd_gym.backend import Backend
from dsd_gym.cli import main
from dsd_gym.config import load_scenario
from dsd_gym.evaluation import evaluate
from dsd_gym.evaluation.pick import SEED_BASE, pick
from dsd_gym.evaluation.stats import capped_geomean
from dsd_gym.runner import build
from wc_dnn.awc import AWCConfig
from wc_dnn.export import WCDNNController, export_controller
from wc_dnn.model import FeatureNorm, WindowNet, WindowNetConfig

SHORT = ["duration_s=12", "warmup_s=2"]


def test_capped_geomean_lets_no_gain_pay_for_a_shortfall() -> None:
    assert capped_geomean([1.0, 1.0]) == 1.0
    assert capped_geomean([1.2, 0.9]) == pytest.approx(0.9**0.5)
    assert capped_geomean([0.81, 1.0, 1.0, 1.0]) == pytest.approx(0.81**0.25)
    with pytest.raises(ValueError, match="positive"):
        capped_geomean([])


def test_scores_are_evaluates_ratios_to_best_fixed_on_seeds_disjoint_from_an_evaluations() -> None:
    candidates = ["fixed:1", "fixed:6", "heuristic"]
    result = pick(
        candidates, ["ideal", "lan-edge"], seeds=2, overrides=SHORT, backend=Backend("processes", 1)
    )
    assert list(result.evaluation.plan.seeds) == [SEED_BASE, SEED_BASE + 1]
    reference = evaluate(["ideal", "lan-edge"], [*candidates, "best-fixed"], seeds=2, seed_base=SEED_BASE,
                         overrides=SHORT, oracle=False, jobs=1)  # fmt: skip
    for c in result.candidates:
        ratios = {r["scenario"]: r["ratio_to_best_fixed"] for r in reference.rows if r["policy"] == c.name}
        assert c.ratios == ratios
        assert c.score == pytest.approx(capped_geomean(list(ratios.values())))
    scores = [c.score for c in result.candidates]
    assert len(set(scores)) == 3 and result.winner == int(np.argmax(scores))
    assert result.record()["winner"] == candidates[result.winner]


def _controller(seed: int, path: Path) -> Path:
    """An untrained WC-DNN whose decisions move with the telemetry (seeded), exported."""
    vectors: list[np.ndarray] = []
    sim = build(load_scenario("lan-edge", ["duration_s=5", "warmup_s=0"]), "heuristic", 0,
                round_hook=lambda record, session: vectors.append(session.telemetry.vector()))  # fmt: skip
    sim.run()
    torch.manual_seed(seed)
    net = WindowNet(WindowNetConfig(hidden=16, depth=1, mode_head=True))
    with torch.no_grad():
        net.delta.weight.mul_(8.0)
    awc = AWCConfig(
        modes=["distributed", "fused", "autoregressive"], smoothing=0.5, gamma_dwell=1, mode_dwell=3
    )
    return export_controller(WCDNNController(FeatureNorm().fit(np.stack(vectors)), net, awc), path, {})


def test_pick_command_copies_the_winner_and_ties_go_to_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _controller(0, tmp_path / "a.pt"), _controller(1, tmp_path / "b.pt")
    twin = tmp_path / "a-twin.pt"
    shutil.copyfile(a, twin)
    out, record = tmp_path / "picked.pt", tmp_path / "pick.json"
    argv = ["pick", str(twin), str(b), str(a), "--scenario", "lan-edge", "--seeds", "2", "--jobs", "1",
            "--out", str(out), "--json", str(record), *[x for s in SHORT for x in ("--set", s)]]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    scores = {c["name"]: c["score"] for c in json.loads(record.read_text())["candidates"]}
    assert scores[str(twin)] == scores[str(a)] != scores[str(b)]  # same file, same decisions, same seeds
    winner = json.loads(record.read_text())["winner"]
    assert winner == (str(twin) if scores[str(twin)] > scores[str(b)] else str(b))  # the twin before a
    assert out.read_bytes() == Path(winner).read_bytes()
    assert f"picked {winner}" in printed and "lan-edge" in printed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.pt", "--out", "{tmp}/x.pt"], "no such controller file"),
        (["{a}", "{a}", "--out", "{tmp}/x.pt"], "given twice"),
        (["{a}", "--out", "{tmp}"], "is a directory"),
        (["{a}", "--out", "{tmp}/x.pt", "--scenario", "nowhere"], "nowhere"),
        (["{a}", "--out", "{tmp}/x.pt", "--seeds", "0"], "--seeds"),
    ],
)
def test_bad_pick_input_is_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = tmp_path / "a.pt"
    a.write_bytes(b"not run: the input is refused first")
    argv = [x.format(a=a, tmp=tmp_path) for x in argv]
    assert main(["pick", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "x.pt").exists()
