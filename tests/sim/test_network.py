"""The access link: delay processes, FIFO transmission, loss and retransmission, trace replay."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from dsd_gym.config.schema import LinkSpec
from dsd_gym.errors import UserError
from dsd_gym.sim.network import BLOCK, GilbertElliottProcess, Link, TraceProcess, delay_process
from dsd_gym.sim.traces import load_network_trace


def link_spec(delay: dict, up: float = 8.0, down: float = 80.0, rto_ms: float = 200.0) -> LinkSpec:
    return LinkSpec(uplink_mbps=up, downlink_mbps=down, delay=delay, retransmit_timeout_ms=rto_ms)


def make_link(spec: LinkSpec, seed: int = 0) -> Link:
    return Link(
        spec,
        delay_process(spec, np.random.default_rng(seed)),
        np.random.default_rng(seed + 1),
        np.random.default_rng(seed + 2),
    )


def test_constant_delay_without_jitter_is_exact() -> None:
    link = make_link(link_spec({"kind": "constant", "one_way_ms": 25}))
    assert link.send_up(1.0, 1000) == pytest.approx(1.0 + 8000 / 8e6 + 0.025, abs=1e-12)
    assert link.send_down(1.0, 1000) == pytest.approx(1.0 + 8000 / 80e6 + 0.025, abs=1e-12)
    assert link.one_way_delay_s(123.4) == pytest.approx(0.025, abs=1e-15)
    assert (link.up.messages, link.up.bytes, link.up.retransmissions) == (1, 1000, 0)
    assert (link.down.messages, link.down.bytes) == (1, 1000)


def test_back_to_back_messages_queue_fifo() -> None:
    link = make_link(link_spec({"kind": "constant", "one_way_ms": 25}))
    tx = 8000 / 8e6
    arrivals = [link.send_up(1.0, 1000) for _ in range(3)]
    assert arrivals == pytest.approx([1.0 + k * tx + 0.025 for k in (1, 2, 3)], abs=1e-12)
    # Once the transmitter is idle again, a message goes at once; the other direction never queued.
    assert link.send_up(2.0, 1000) == pytest.approx(2.0 + tx + 0.025, abs=1e-12)
    assert link.send_down(1.0, 1000) == pytest.approx(1.0 + 8000 / 80e6 + 0.025, abs=1e-12)
    assert (link.up.messages, link.up.bytes) == (4, 4000)


def test_loss_retransmits_after_multiples_of_the_timeout() -> None:
    spec = link_spec({"kind": "constant", "one_way_ms": 25, "loss": 0.5}, up=8000, rto_ms=200)
    link = make_link(spec, seed=3)
    tx = 8000 / 8e9
    total = 0
    for i in range(200):
        now = 10.0 * i  # far apart: no queueing between messages
        before = link.up.retransmissions
        extra = link.send_up(now, 1000) - (now + tx + 0.025)
        lost = link.up.retransmissions - before
        assert extra == pytest.approx(0.2 * lost, abs=1e-9)
        total += lost
    assert link.up.retransmissions == total > 100
    assert link.up.messages == 200
    assert link.up.bytes == 1000 * (200 + total)


def test_empirical_loss_rate_matches_configuration() -> None:
    link = make_link(link_spec({"kind": "constant", "one_way_ms": 10, "loss": 0.1}), seed=7)
    for i in range(20_000):
        link.send_up(i * 1.0, 100)
        link.send_down(i * 1.0, 100)
    for direction in (link.up, link.down):
        attempts = direction.messages + direction.retransmissions
        assert direction.retransmissions / attempts == pytest.approx(0.1, abs=0.01)


def test_deliveries_never_overtake() -> None:
    spec = link_spec({"kind": "constant", "one_way_ms": 5, "jitter_ms": 50, "step_ms": 1}, up=1000)
    link = make_link(spec)
    arrivals = [link.send_up(i * 1e-3, 100) for i in range(2000)]
    assert all(b >= a for a, b in itertools.pairwise(arrivals))
    clamped = sum(b == a for a, b in itertools.pairwise(arrivals))
    assert clamped > 100  # the jitter would have reordered these


def test_constant_jitter_is_half_normal_and_piecewise_constant() -> None:
    process = delay_process(
        link_spec({"kind": "constant", "one_way_ms": 20, "jitter_ms": 4}), np.random.default_rng(0)
    )
    cells = np.array([process.one_way_delay_s(0.01 * i + 0.005) for i in range(20_000)])
    assert cells.min() >= 0.020
    assert (cells - 0.020).mean() == pytest.approx(0.004 * np.sqrt(2 / np.pi), rel=0.03)
    assert process.one_way_delay_s(0.0101) == process.one_way_delay_s(0.0199)


GE = {
    "kind": "gilbert_elliott",
    "good_ms": 20,
    "bad_ms": 300,
    "p_good_to_bad": 0.02,
    "p_bad_to_good": 0.1,
    "loss_good": 0.01,
    "loss_bad": 0.3,
    "step_ms": 10,
}


def test_gilbert_elliott_time_in_bad_state_and_transitions() -> None:
    process = delay_process(link_spec(GE), np.random.default_rng(11))
    bad = np.array([process.one_way_delay_s(0.01 * i + 0.005) > 0.1 for i in range(300_000)])
    assert bad.mean() == pytest.approx(0.02 / 0.12, abs=0.015)
    good_to_bad = np.sum(~bad[:-1] & bad[1:]) / np.sum(~bad[:-1])
    bad_to_good = np.sum(bad[:-1] & ~bad[1:]) / np.sum(bad[:-1])
    assert good_to_bad == pytest.approx(0.02, rel=0.1)
    assert bad_to_good == pytest.approx(0.1, rel=0.1)
    losses = np.array([process.loss_probability(0.01 * i + 0.005) for i in range(300_000)])
    assert set(losses[bad]) == {0.3} and set(losses[~bad]) == {0.01}


def test_gilbert_elliott_starts_in_the_stationary_distribution() -> None:
    starts = [
        delay_process(link_spec(GE), np.random.default_rng(s)).one_way_delay_s(0.0) > 0.1 for s in range(1000)
    ]
    assert np.mean(starts) == pytest.approx(0.02 / 0.12, abs=0.04)


def test_gilbert_elliott_absorbing_state() -> None:
    never_bad = delay_process(link_spec({**GE, "p_good_to_bad": 0.0}), np.random.default_rng(0))
    assert all(never_bad.one_way_delay_s(t) == 0.020 for t in np.arange(0.0, 2000.0, 0.37))
    assert isinstance(never_bad, GilbertElliottProcess)


JITTERY = {"kind": "constant", "one_way_ms": 20, "jitter_ms": 5, "loss": 0.1, "step_ms": 2}


@pytest.mark.parametrize(
    "delay", [JITTERY, {**GE, "jitter_ms": 3, "step_ms": 1}], ids=["constant", "gilbert_elliott"]
)
def test_process_values_do_not_depend_on_the_query_pattern(delay: dict) -> None:
    spec = link_spec(delay)
    dense = delay_process(spec, np.random.default_rng(5))
    sparse = delay_process(spec, np.random.default_rng(5))
    times = np.random.default_rng(9).uniform(0.0, 3 * BLOCK * spec.delay.step_ms * 1e-3, 20_000)
    forward = [(dense.one_way_delay_s(t), dense.loss_probability(t)) for t in np.sort(times)]
    # The other copy jumps far ahead first, then walks backwards over every fifth time.
    far = 50 * BLOCK * spec.delay.step_ms * 1e-3
    assert sparse.one_way_delay_s(far) == dense.one_way_delay_s(far)
    chosen = np.sort(times)[::5][::-1]
    backward = {t: (sparse.one_way_delay_s(t), sparse.loss_probability(t)) for t in chosen}
    expected = dict(zip(np.sort(times), forward, strict=True))
    assert all(backward[t] == expected[t] for t in chosen)
    assert len({value for value, _ in forward}) > 100  # the process actually varies


def test_different_seeds_give_different_processes() -> None:
    spec = link_spec(JITTERY)
    a = delay_process(spec, np.random.default_rng(1))
    b = delay_process(spec, np.random.default_rng(2))
    assert [a.one_way_delay_s(t) for t in range(10)] != [b.one_way_delay_s(t) for t in range(10)]


# --------------------------------------------------------------------------- trace replay

TRACE_CSV = """\
# a three-step test trace
time_s,one_way_ms,uplink_mbps,downlink_mbps
0,10,5,50
1.5,40,1,20
2.0,25,8,80
"""


def write(tmp_path: Path, text: str, name: str = "trace.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_trace_parses_and_extends_the_last_row(tmp_path: Path) -> None:
    trace = load_network_trace(write(tmp_path, TRACE_CSV))
    assert trace.time_s.tolist() == [0.0, 1.5, 2.0]
    assert trace.one_way_ms.tolist() == [10.0, 40.0, 25.0]
    assert trace.uplink_mbps.tolist() == [5.0, 1.0, 8.0]
    assert trace.downlink_mbps.tolist() == [50.0, 20.0, 80.0]
    assert trace.period_s == 2.5


def test_trace_replay_reproduces_rows_and_loops(tmp_path: Path) -> None:
    spec = link_spec({"kind": "trace", "path": write(tmp_path, TRACE_CSV), "delay_scale": 2.0, "loss": 0.05})
    process = delay_process(spec, np.random.default_rng(4))
    assert isinstance(process, TraceProcess)
    assert 0.0 <= process.offset_s < 2.5
    rows = [
        (0.0, 1.5, 0.020, 5e6, 50e6),
        (1.5, 2.0, 0.080, 1e6, 20e6),
        (2.0, 2.5, 0.050, 8e6, 80e6),
    ]
    for start, end, delay_s, up_bps, down_bps in rows:
        for frac in (0.01, 0.5, 0.99):
            trace_t = start + frac * (end - start)
            for loop in range(3):
                t = (trace_t - process.offset_s) % 2.5 + 2.5 * loop
                assert process.one_way_delay_s(t) == pytest.approx(delay_s, abs=1e-15)
                assert process.uplink_bps(t) == up_bps
                assert process.downlink_bps(t) == down_bps
                assert process.loss_probability(t) == 0.05


def test_trace_offsets_differ_between_devices(tmp_path: Path) -> None:
    spec = link_spec({"kind": "trace", "path": write(tmp_path, TRACE_CSV)})
    offsets = {delay_process(spec, np.random.default_rng(s)).offset_s for s in range(5)}
    assert len(offsets) == 5


def test_link_uses_trace_bandwidth(tmp_path: Path) -> None:
    spec = link_spec({"kind": "trace", "path": write(tmp_path, TRACE_CSV)}, up=1000, down=1000)
    process = delay_process(spec, np.random.default_rng(0))
    link = Link(spec, process, np.random.default_rng(1), np.random.default_rng(2))
    now = (0.1 - process.offset_s) % 2.5 + 2.5  # 0.1 s into the first row: 5 Mbit/s up, 10 ms
    assert link.send_up(now, 1250) == pytest.approx(now + 1250 * 8 / 5e6 + 0.010, abs=1e-12)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("time_s,one_way_ms,uplink_mbps\n0,1,2\n1,1,2\n", 1, "header"),
        ("# c\ntime_s,one_way_ms,uplink_mbps,downlink_mbps\n0,1,2,3\n1,1,2\n", 4, "3 fields"),
        (
            "time_s,one_way_ms,uplink_mbps,downlink_mbps\n0,1,2,3\n2,1,2,3\n1,1,2,3\n",
            4,
            "does not increase",
        ),
        (
            "time_s,one_way_ms,uplink_mbps,downlink_mbps\n0,1,2,3\n1,-5,2,3\n",
            3,
            "one_way_ms must be >= 0",
        ),
        (
            "time_s,one_way_ms,uplink_mbps,downlink_mbps\n0,1,2,3\n1,1,fast,3\n",
            3,
            "uplink_mbps 'fast' is not a number",
        ),
        (
            "time_s,one_way_ms,uplink_mbps,downlink_mbps\n0,1,2,3\n1,1,2,0\n",
            3,
            "downlink_mbps must be > 0",
        ),
        (
            "time_s,one_way_ms,uplink_mbps,downlink_mbps\n0.5,1,2,3\n1,1,2,3\n",
            2,
            "must have time_s 0",
        ),
        ("time_s,one_way_ms,uplink_mbps,downlink_mbps\n0,nan,2,3\n1,1,2,3\n", 2, "one_way_ms"),
        (
            "# only a comment\ntime_s,one_way_ms,uplink_mbps,downlink_mbps\n0,1,2,3\n",
            3,
            "at least 2",
        ),
        ("# nothing but comments\n", 1, "no header"),
    ],
)
def test_malformed_network_trace(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text, "bad.csv")
    with pytest.raises(UserError, match=message) as info:
        load_network_trace(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert "\n" not in str(info.value)


def test_missing_network_trace(tmp_path: Path) -> None:
    path = str(tmp_path / "missing.csv")
    with pytest.raises(UserError, match="no such file") as info:
        load_network_trace(path)
    assert str(info.value) == f"{path}: no such file"
    spec = link_spec({"kind": "trace", "path": path})
    with pytest.raises(UserError):
        delay_process(spec, np.random.default_rng(0))
