"""The physics of DESIGN §3, as directions the simulator must get right on the shipped profiles.

Each test compares runs of one scenario that differ in one knob (same seed: common random numbers)
and checks the direction of the effect: verifying a window is nearly free on a memory-bound target,
queueing grows with load, faults lengthen the tail without losing requests, RTT costs throughput,
wider windows waste more draft tokens, batches grow with sessions, and the theory case has no queue.
"""

from __future__ import annotations

from typing import Any

import pytest

from dsd_gym.config import load_scenario
from dsd_gym.runner import build, simulate
from dsd_gym.sim.latency import Roofline, target_cost

SHIPPED = ["busy-cloud", "cellular", "flaky", "hetero-fleet", "lan-edge", "metro-5g", "regime-shift", "wan"]


def verify_s(cost: Any, tokens: int, context: int = 1024) -> float:
    """One batch-1 forward of ``tokens`` new tokens on ``context`` cached tokens."""
    return cost.iteration_s(1, tokens, context, tokens * (context + (tokens + 1) / 2))


def strictly_increasing(values: list[float]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


# --------------------------------------------------------------------------- the roofline


def test_memory_bound_verify_of_a_window_costs_about_one_forward() -> None:
    """metro-5g's target (Llama-3.1-70B on H100 TP4): verifying γ + 1 = 5 tokens costs < 1.2× one
    token, while 5 single-token forwards cost ~5×: the reason speculative decoding pays."""
    group = load_scenario("metro-5g").cloud.targets[0]
    assert (group.hardware.name, group.model.name, group.tensor_parallel) == ("h100-sxm", "llama-3.1-70b", 4)
    cost = target_cost(group)
    assert isinstance(cost, Roofline)
    gamma = 4
    for context in (128, 1024, 4096):
        one, window = verify_s(cost, 1, context), verify_s(cost, gamma + 1, context)
        assert one < window < 1.2 * one
        assert (gamma + 1) * one == pytest.approx(5 * one)
        assert (gamma + 1) * one > 4 * window


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_target_verifies_a_window_for_little_more_than_one_token(name: str) -> None:
    for group in load_scenario(name).cloud.targets:
        cost = target_cost(group)
        one, window = verify_s(cost, 1), verify_s(cost, 5)
        assert one <= window < 1.2 * one, group.name
        # Batching amortises the weight read: 8 sequences decoding together cost far less than 8 alone.
        batch = cost.iteration_s(8, 8, 8 * 1024, 8 * 1025)
        assert batch < 2 * one < 8 * one, group.name


# --------------------------------------------------------------------------- queueing


def test_queue_wait_grows_with_background_load() -> None:
    queue = [
        simulate(
            load_scenario(
                "metro-5g", ["duration_s=30", "warmup_s=5", f"cloud.background.verify_rate_per_s={rate}"]
            ),
            "fixed:4",
        )["round_breakdown_ms"]["queue"]
        for rate in (0, 400, 1200)
    ]
    assert strictly_increasing(queue), queue


def closed_loop_lan(*overrides: str) -> dict[str, Any]:
    """lan-edge (A100, Llama-3.1-8B, no background) with users that never think, under fixed:4."""
    scenario = load_scenario(
        "lan-edge",
        ["duration_s=30", "warmup_s=5", "workload.think_time_s={dist: constant, value: 0}", *overrides],
    )
    return simulate(scenario, "fixed:4")


def test_queue_wait_grows_with_the_number_of_devices() -> None:
    queue = [closed_loop_lan(f"devices.0.count={n}")["round_breakdown_ms"]["queue"] for n in (1, 8, 32)]
    assert strictly_increasing(queue), queue
    assert queue[0] == pytest.approx(0.0, abs=1e-9)  # one user alone on the target never waits


def test_mean_batch_size_grows_with_the_number_of_sessions() -> None:
    """One session per device: the more users, the fuller the target's iterations."""
    batch = [closed_loop_lan(f"devices.0.count={n}")["mean_batch_size"] for n in (1, 4, 16, 64)]
    assert strictly_increasing(batch), batch
    assert batch[0] == pytest.approx(1.0)
    assert batch[-1] > 8


def test_sessions_sharing_a_device_queue_for_its_draft_model() -> None:
    """Sessions on one device share its draft model (a FIFO server): the draft part of a round,
    waiting included, grows about linearly with the sessions per device, and the device — not the
    target — becomes the bottleneck, so batches stay small."""
    runs = [closed_loop_lan("devices.0.count=2", f"devices.0.sessions={k}") for k in (1, 4, 16)]
    draft = [s["round_breakdown_ms"]["draft"] for s in runs]
    assert strictly_increasing(draft), draft
    assert draft[2] > 10 * draft[0]
    assert all(s["mean_batch_size"] < 1.5 for s in runs)


# --------------------------------------------------------------------------- faults


def run_counting(name: str, overrides: list[str], policy: str) -> tuple[dict[str, Any], int]:
    """The summary and the number of completions counted at the metrics hook itself."""
    sim = build(load_scenario(name, overrides), policy)
    done = [0]
    on_done = sim.metrics.on_request_done

    def request_done(req: Any, session: Any) -> None:
        done[0] += 1
        on_done(req, session)

    sim.metrics.on_request_done = request_done
    return sim.run(), done[0]


def test_loss_and_failures_lengthen_the_tail_but_lose_no_request() -> None:
    base = ["duration_s=120", "warmup_s=0"]
    faulty, faulty_done = run_counting("flaky", base, "fixed:4")
    clean, clean_done = run_counting(
        "flaky", [*base, "devices.0.link.delay.loss=0", "cloud.targets.0.mtbf_s=null"], "fixed:4"
    )
    assert faulty["target_failures"] > 0 and faulty["retransmissions"] > 0 and faulty["reprefills"] > 0
    assert clean["target_failures"] == clean["retransmissions"] == clean["reprefills"] == 0
    assert (
        faulty["tpot_ms"]["p99"] > clean["tpot_ms"]["p99"] or faulty["e2e_ms"]["p99"] > clean["e2e_ms"]["p99"]
    )
    for summary, done in ((faulty, faulty_done), (clean, clean_done)):
        assert done > 0
        assert summary["completed_requests"] == done  # no warm-up: every completion is counted
        assert summary["arrived_requests"] == done + summary["in_flight_requests"]


# --------------------------------------------------------------------------- network and window


def test_more_rtt_lowers_throughput_and_lengthens_the_network_part_of_a_round() -> None:
    runs = [
        simulate(
            load_scenario(
                "metro-5g",
                [
                    "duration_s=30",
                    "warmup_s=5",
                    f"devices.0.link.delay={{kind: constant, one_way_ms: {ms}}}",
                    "workload.think_time_s={dist: constant, value: 0}",
                ],
            ),  # fmt: skip
            "fixed:4",
        )
        for ms in (1, 20, 80)
    ]
    throughput = [s["throughput_tok_s"] for s in runs]
    network = [s["round_breakdown_ms"]["uplink"] + s["round_breakdown_ms"]["downlink"] for s in runs]
    assert strictly_increasing([-t for t in throughput]), throughput
    assert strictly_increasing([-s["session_tok_s"] for s in runs])
    assert strictly_increasing(network), network
    for ms, net in zip((1, 20, 80), network, strict=True):  # the round trip plus a little transmission time
        assert 2 * ms <= net < 2 * ms + 1.0


def test_wider_windows_reject_more_draft_tokens() -> None:
    runs = [simulate(load_scenario("ideal", ["duration_s=30"]), f"fixed:{g}") for g in (1, 2, 4, 8)]
    rejected = [s["rejected_draft_tokens"] for s in runs]
    per_round = [s["rejected_draft_tokens"] / s["rounds"] for s in runs]
    assert strictly_increasing(rejected), rejected
    assert strictly_increasing(per_round), per_round
    # i.i.d. α = 0.7: E[γ − A] = γ − α(1 − α^γ)/(1 − α)
    for g, value in zip((1, 2, 4, 8), per_round, strict=True):
        assert value == pytest.approx(g - 0.7 * (1 - 0.7**g) / 0.3, rel=0.1)


# --------------------------------------------------------------------------- the theory case


def test_ideal_scenario_has_no_queue_and_no_network() -> None:
    rounds: list[Any] = []
    sim = build(
        load_scenario("ideal", ["duration_s=30"]), "fixed:4", round_hook=lambda r, s: rounds.append(r)
    )
    summary = sim.run()
    assert len(rounds) > 1000
    assert all(r.queue_s == 0.0 for r in rounds)
    assert all(r.uplink_s + r.downlink_s < 1e-6 for r in rounds)
    assert all(r.batch_size == 1 and r.queue_depth == 0 for r in rounds)
    breakdown = summary["round_breakdown_ms"]
    assert breakdown["queue"] == 0.0
    assert breakdown["verify"] == pytest.approx(20.0)  # constant 20 ms target forward
    assert breakdown["draft"] == pytest.approx(4.0)  # γ = 4 sequential 1 ms draft forwards
