"""The telemetry vector: one definition, updated every round, inside its bounds."""

from __future__ import annotations

import numpy as np
import pytest

from dsd_gym.config import load_scenario
from dsd_gym.controllers import FixedController
from dsd_gym.runner import telemetry_factory
from dsd_gym.sim import Decision, Mode, Simulation
from dsd_gym.sim.records import RoundRecord
from dsd_gym.telemetry import FEATURES, HIGH, INDEX, LOW, NAMES, TelemetryTracker


def _record(gamma=4, accepted=2, start=0.0, end=0.1, draft=0.02, up=0.01, queue=0.005, verify=0.05,
            down=0.015, mode=0) -> RoundRecord:  # fmt: skip
    return RoundRecord(0, 0, mode, gamma, accepted, accepted + 1, 10, start, end, draft, up, queue, verify,
                       down, 3, 7, 100)  # fmt: skip


class Watching(FixedController):
    """A fixed window that asks for telemetry (fixed controllers normally do not track it)."""

    observes = True


def test_fixed_controllers_skip_telemetry_and_observers_get_it() -> None:
    scenario = load_scenario("lan-edge", ["duration_s=5", "warmup_s=0"])
    sim = Simulation(scenario, lambda group: FixedController(Decision(4)), telemetry=telemetry_factory)
    assert all(s.telemetry is None for s in sim.sessions)
    sim = Simulation(scenario, lambda group: Watching(Decision(4)), telemetry=telemetry_factory)
    sim.run()
    assert all(s.telemetry is not None and s.telemetry.rounds == s.rounds for s in sim.sessions)


def test_features_are_named_once_with_units_and_bounds() -> None:
    assert len(set(NAMES)) == len(NAMES)
    assert all(f.unit and f.low < f.high and f.scale > 0 for f in FEATURES)


def test_rtt_is_round_minus_draft_minus_server_time() -> None:
    t = TelemetryTracker(smoothing=0.5)
    t.update(_record())
    assert t["round_ms"] == pytest.approx(100.0)
    assert t["rtt_ms"] == pytest.approx(100.0 - 20.0 - 55.0)
    assert t["server_ms"] == pytest.approx(55.0)
    assert t["queue_depth"] == 3 and t["batch_size"] == 7
    assert t["accepted"] == 2 and t["drafted"] == 4 and t["last_gamma"] == 4
    assert t["acceptance_ewma"] == pytest.approx(0.5)
    assert t["draft_ms_per_token"] == pytest.approx(5.0)
    assert t["context_tokens"] == 103


def test_smoothing_is_an_ewma_of_the_newest_round() -> None:
    t = TelemetryTracker(smoothing=0.25)
    t.update(_record(end=0.1))
    t.update(_record(start=0.1, end=0.3))
    assert t["round_ms"] == pytest.approx(200.0)
    assert t["round_ms_ewma"] == pytest.approx(100.0 + 0.25 * 100.0)
    t.update(_record(gamma=8, accepted=8))
    # accepted/drafted EWMAs: (2 + .25 (2 - 2) + .25 (8 - 2)) / (4 + .25 (8 - 4)) = 3.5 / 5
    assert t["acceptance_ewma"] == pytest.approx(3.5 / 5.0)


def test_history_keeps_a_row_per_decision_that_found_the_vector_changed() -> None:
    t = TelemetryTracker(history=2)
    assert not t.decision_rows()
    for k in range(5):
        t.update(_record(gamma=k + 1, accepted=0))
        t.decision_rows()
    t.decision_rows()  # a decision after no update (its job was lost): no row
    assert [h[INDEX["last_gamma"]] for h in t.history] == [4.0, 5.0]
    t.update(_record(gamma=6, accepted=0))  # a request's last round, then the next one's prefill
    t.prefill(rtt_ms=3.0, draft_ms_per_token=9.0, context=50)
    rows = t.decision_rows()
    assert [h[INDEX["last_gamma"]] for h in rows] == [5.0, 6.0]
    assert rows[-1] == tuple(t.values) and rows[-1][INDEX["context_tokens"]] == 50


def test_a_stacked_observation_is_the_vectors_decisions_saw_newest_first() -> None:
    """``stacked(rows)`` is the decisions' vectors (clipped) newest first, then zeros, whether the
    tracker was built with a history or keeps one from its first ``stacked`` call on."""
    built, given = TelemetryTracker(history=3), TelemetryTracker()
    seen = []
    for k in range(5):
        for t in (built, given):
            t.update(_record(gamma=k + 1, accepted=0, start=k, end=k + 70.0 * k))  # k ≥ 1: round_ms clips
        seen.append(built.vector())
        obs = built.stacked(3)
        assert obs.dtype == np.float32 and obs.shape == (3 * len(FEATURES),)
        newest = seen[::-1][:3]
        expected = np.concatenate([*newest, np.zeros((3 - len(newest)) * len(FEATURES), np.float32)])
        assert np.array_equal(obs, expected)
        if k >= 2:
            kept = min(k - 1, 3)  # given's first decision is at k = 2: earlier vectors were never kept
            assert np.array_equal(given.stacked(3)[: kept * len(FEATURES)], obs[: kept * len(FEATURES)])
            assert not given.stacked(3)[kept * len(FEATURES) :].any()
    assert seen[-1][INDEX["round_ms"]] == HIGH[INDEX["round_ms"]]  # clipped
    assert np.array_equal(built.stacked(1), built.vector())


def test_only_exchanges_over_the_network_measure_it() -> None:
    """Distributed rounds and prefills sample the network time; fused rounds cross no network and
    leave the three network features alone, so a fused session keeps what its prefill measured."""
    t = TelemetryTracker(smoothing=0.5)
    t.prefill(rtt_ms=8.0, draft_ms_per_token=6.0, context=100)
    assert (t["rtt_ms"], t["rtt_ms_ewma"], t["rtt_jitter_ms"]) == (8.0, 8.0, 0.0)
    assert t["draft_ms_per_token"] == 6.0 and t["context_tokens"] == 100 and t.rounds == 0
    fused = _record(mode=1, draft=0.0, up=0.0, down=0.0, end=0.055)
    for _ in range(3):
        t.update(fused)
    assert (t["rtt_ms"], t["rtt_ms_ewma"], t["rtt_jitter_ms"]) == (8.0, 8.0, 0.0)
    assert t["draft_ms_per_token"] == 6.0 and t["round_ms"] == pytest.approx(55.0)
    t.update(_record())  # distributed: network 25 ms, draft 5 ms per token
    assert t["rtt_ms"] == pytest.approx(25.0)
    assert t["rtt_ms_ewma"] == pytest.approx(8.0 + 0.5 * 17.0)
    assert t["rtt_jitter_ms"] == pytest.approx(0.5 * 17.0)
    assert t["draft_ms_per_token"] == pytest.approx(6.0 + 0.5 * (5.0 - 6.0))
    t.prefill(rtt_ms=4.0, draft_ms_per_token=99.0, context=7)  # measured draft speed is kept
    assert t["draft_ms_per_token"] == pytest.approx(5.5) and t["rtt_ms"] == 4.0


def test_a_fused_session_knows_its_link_and_draft_speed() -> None:
    """On lan-edge every round fused: the features still read the link's round trip (0.4 ms each way
    plus the prompt's and the first token's transmission) and the Jetson's one-token draft time."""
    scenario = load_scenario("lan-edge", ["duration_s=10", "warmup_s=0"])
    sim = Simulation(scenario, lambda group: Watching(Decision(3, Mode.FUSED)), telemetry=telemetry_factory)
    sim.run()
    for s in sim.sessions:
        assert s.telemetry.rounds > 0
        assert 0.7 < s.telemetry["rtt_ms_ewma"] < 1.5
        draft_ms = 1e3 * s.device.cost.sequential_s(1, 0)
        assert s.telemetry["draft_ms_per_token"] == pytest.approx(draft_ms, rel=0.2)


def test_vectors_stay_in_bounds_on_every_shipped_scenario() -> None:
    for name in ("metro-5g", "cellular", "flaky", "busy-cloud"):
        seen: list[np.ndarray] = []

        def hook(record, session, seen=seen) -> None:
            seen.append(session.telemetry.vector())

        scenario = load_scenario(name, ["duration_s=15", "warmup_s=0"])
        Simulation(
            scenario, lambda group: Watching(Decision(4)), telemetry=telemetry_factory, round_hook=hook
        ).run()
        stacked = np.stack(seen)
        assert stacked.dtype == np.float32 and np.isfinite(stacked).all()
        assert (stacked >= LOW).all() and (stacked <= HIGH).all()
        assert stacked[:, INDEX["rtt_ms"]].max() > 0


def test_bad_smoothing_is_refused() -> None:
    with pytest.raises(ValueError, match="smoothing"):
        TelemetryTracker(smoothing=0.0)
