"""Forward-pass cost models against hand-computed roofline numbers and measured-table lookups."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from dsd_gym.config.schema import DeviceGroup, HardwareProfile, LinkSpec, ModelProfile, TargetGroup
from dsd_gym.errors import UserError
from dsd_gym.sim.latency import (
    ConstantCost,
    LookupCost,
    Roofline,
    cloud_draft_cost,
    edge_draft_cost,
    target_cost,
)
from dsd_gym.sim.traces import load_latency_table


def hardware(**kw: object) -> HardwareProfile:
    fields = dict(name="hw", description="test", peak_tflops=100, mem_bw_gbps=1000, memory_gb=80)
    fields.update(source="test", **kw)
    return HardwareProfile(**fields)


def model(**kw: object) -> ModelProfile:
    fields = dict(
        name="m",
        description="test",
        params_b=1,
        layers=10,
        hidden=1024,
        heads=8,
        kv_heads=2,
        head_dim=128,
    )
    fields.update(source="test", **kw)
    return ModelProfile(**fields)


H100 = hardware(name="h100", peak_tflops=989, mem_bw_gbps=3350, interconnect_gbps=450, allreduce_latency_us=5)
LLAMA_8B = model(name="llama-3-8b", params_b=8.03, layers=32, hidden=4096, heads=32, kv_heads=8)
LLAMA_70B = model(name="llama-3-70b", params_b=70.6, layers=80, hidden=8192, heads=64, kv_heads=8)

# Round figures for hand computation: 5e13 FLOP/s and 5e11 B/s achieved, 1 ms overhead; a 1B model
# with 2 KV heads: weights 2e9 B, KV 2·10·2·128·2 = 10240 B/token, attention 4·10·8·128 = 40960
# FLOP per unit of NC.
SMALL_HW = hardware(mfu=0.5, mbu=0.5, overhead_ms=1.0)
SMALL = model()


def decode(cost: Roofline, context: int) -> float:
    return cost.iteration_s(1, 1, context, context + 1)


def verify(cost: Roofline, tokens: int, context: int) -> float:
    return cost.iteration_s(1, tokens, context, tokens * (context + (tokens + 1) / 2))


def test_roofline_memory_bound_decode_by_hand() -> None:
    cost = Roofline(SMALL_HW, SMALL)
    weights_s = 2e9 / 5e11
    kv_s = 10240 * (1000 + 1) / 5e11
    compute_s = 2 * 2e9 / 2 / 5e13 + 40960 * 1001 / 5e13  # 2·P·N + attention
    assert compute_s < weights_s + kv_s
    assert decode(cost, 1000) == pytest.approx(1e-3 + weights_s + kv_s, rel=1e-12)
    assert decode(cost, 1000) == pytest.approx(5.02050048e-3, rel=1e-12)


def test_roofline_compute_bound_prefill_by_hand() -> None:
    cost = Roofline(SMALL_HW, SMALL)
    nc = 1000 * (0 + 1001 / 2)
    compute_s = 2 * 1e9 * 1000 / 5e13 + 40960 * nc / 5e13
    assert compute_s == pytest.approx(0.0404100096, rel=1e-12)
    assert compute_s > 2e9 / 5e11 + 10240 * 1000 / 5e11  # compute-bound
    assert cost.prefill_s(1000) == pytest.approx(1e-3 + compute_s, rel=1e-12)
    assert cost.iteration_s(1, 1000, 0, nc) == cost.prefill_s(1000)


def test_roofline_h100_8b_decode_by_hand() -> None:
    cost = Roofline(H100, LLAMA_8B)
    kv_bytes = 2 * 32 * 8 * 128 * 2
    expected = (8.03e9 * 2 + kv_bytes * 2048) / (3350e9 * 0.7)
    assert decode(cost, 2047) == pytest.approx(expected, rel=1e-12)
    assert 6.8e-3 < expected < 7.1e-3  # ~7 ms per token: the familiar 8B-on-H100 figure


@pytest.mark.parametrize(
    "cost", [Roofline(H100, LLAMA_8B), Roofline(H100, LLAMA_70B, 4)], ids=["8b", "70b-tp4"]
)
def test_verify_of_a_window_costs_little_more_than_one_forward(cost: Roofline) -> None:
    gamma, context = 4, 1000
    one = decode(cost, context)
    window = verify(cost, gamma + 1, context)
    assert one < window < 1.2 * one
    assert window < 0.3 * cost.sequential_s(gamma + 1, context)


@pytest.mark.parametrize(
    "cost", [Roofline(H100, LLAMA_8B), Roofline(H100, LLAMA_70B, 4)], ids=["8b", "70b-tp4"]
)
def test_batching_amortises_the_weight_read(cost: Roofline) -> None:
    context, tokens = 1000, 5
    per_token = [
        cost.iteration_s(b, b * tokens, b * context, b * tokens * (context + (tokens + 1) / 2)) / (b * tokens)
        for b in (1, 2, 4, 8, 16, 32, 64)
    ]
    assert all(later < earlier for earlier, later in itertools.pairwise(per_token))
    assert per_token[-1] < per_token[0] / 10


def test_compute_bound_prefill_scales_about_linearly() -> None:
    cost = Roofline(H100, LLAMA_8B)
    ratio = cost.prefill_s(4096) / cost.prefill_s(2048)
    assert 1.9 < ratio < 2.2  # linear in tokens, plus a small quadratic attention term
    flops = 2 * 8.03e9 * 2048 + 4 * 32 * 32 * 128 * 2048 * 2049 / 2
    assert cost.prefill_s(2048) == pytest.approx(flops / (989e12 * 0.5), rel=1e-12)  # compute-bound


def test_tensor_parallel_divides_work_and_adds_allreduce() -> None:
    tp, tokens, context = 4, 5, 1000
    nc = tokens * (context + (tokens + 1) / 2)
    single = Roofline(H100, LLAMA_70B).iteration_s(1, tokens, context, nc)
    split = Roofline(H100, LLAMA_70B, tp).iteration_s(1, tokens, context, nc)
    allreduce_s = 2 * 80 * (5e-6 + 2 * (tp - 1) / tp * tokens * 8192 * 2 / 450e9)
    assert split == pytest.approx(single / tp + allreduce_s, rel=1e-12)  # both memory-bound
    assert allreduce_s == pytest.approx(8.436907e-4, rel=1e-6)


def test_tensor_parallel_without_interconnect_names_the_hardware() -> None:
    with pytest.raises(ValueError, match=r"'l4'.*interconnect_gbps"):
        Roofline(hardware(name="l4"), LLAMA_8B, 2)
    Roofline(hardware(name="l4"), LLAMA_8B, 1)  # a single GPU needs no interconnect


# Profiles whose batch-1 decode crosses the roofline ridge as the context grows, in both
# directions, so sequential_s has to split its sum.
MEMORY_THEN_COMPUTE = Roofline(
    hardware(peak_tflops=1, mem_bw_gbps=1000, mfu=1, mbu=1),
    model(params_b=0.001, layers=2, hidden=2048, heads=32, kv_heads=1, head_dim=64, bytes_per_weight=4),
)
COMPUTE_THEN_MEMORY = Roofline(
    hardware(peak_tflops=2, mem_bw_gbps=1000, mfu=1, mbu=1),
    model(params_b=0.001, layers=2, hidden=256, heads=4, kv_heads=4, head_dim=64, bytes_per_weight=0.5),
)


def regime(cost: Roofline, context: int) -> str:
    """Which roof binds for a single-token decode on ``context``: does more attention cost time?"""
    more_attention = cost.iteration_s(1, 1, context, context + 1.001) - decode(cost, context)
    return "compute" if more_attention > 0 else "memory"


def test_ridge_profiles_cross_the_ridge() -> None:
    # 1e12 FLOP/s and B/s. Compute 2e-6 + 1.6384e-8·(c+1) s, memory 4e-6 + 5.12e-10·(c+1) s:
    # memory-bound up to context 125, compute-bound after.
    assert decode(MEMORY_THEN_COMPUTE, 100) == pytest.approx(4e-6 + 5.12e-10 * 101, rel=1e-12)
    assert decode(MEMORY_THEN_COMPUTE, 150) == pytest.approx(2e-6 + 1.6384e-8 * 151, rel=1e-12)
    # Compute 1e-6 + 1.024e-9·(c+1) s, memory 5e-7 + 2.048e-9·(c+1) s: compute-bound up to
    # context 487, memory-bound after.
    assert decode(COMPUTE_THEN_MEMORY, 100) == pytest.approx(1e-6 + 1.024e-9 * 101, rel=1e-12)
    assert decode(COMPUTE_THEN_MEMORY, 600) == pytest.approx(5e-7 + 2.048e-9 * 601, rel=1e-12)


COSTS = {
    "8b": Roofline(H100, LLAMA_8B),
    "70b-tp4": Roofline(H100, LLAMA_70B, 4),
    "small": Roofline(SMALL_HW, SMALL),
    "memory-then-compute": MEMORY_THEN_COMPUTE,
    "compute-then-memory": COMPUTE_THEN_MEMORY,
}


@pytest.mark.parametrize("name", COSTS)
@pytest.mark.parametrize(
    ("steps", "context"),
    [
        (0, 0),
        (1, 0),
        (1, 500),
        (4, 0),
        (8, 120),
        (50, 100),
        (50, 470),
        (300, 0),
        (1000, 1),
        (7, 5000),
    ],
)
def test_sequential_is_the_exact_sum_of_its_forwards(name: str, steps: int, context: int) -> None:
    cost = COSTS[name]
    explicit = math.fsum(decode(cost, context + k) for k in range(steps))
    assert cost.sequential_s(steps, context) == pytest.approx(explicit, rel=1e-12, abs=1e-15)


def test_ridge_cases_are_covered() -> None:
    """The sums above include windows that start on one side of the ridge and end on the other."""
    assert regime(MEMORY_THEN_COMPUTE, 100) == "memory"
    assert regime(MEMORY_THEN_COMPUTE, 149) == "compute"
    assert regime(COMPUTE_THEN_MEMORY, 470) == "compute"
    assert regime(COMPUTE_THEN_MEMORY, 519) == "memory"


def test_constant_cost() -> None:
    cost = ConstantCost(20.0, 0.5)
    assert cost.iteration_s(3, 10, 999, 12345) == pytest.approx(0.025)
    assert cost.sequential_s(4, 100) == pytest.approx(4 * 0.0205)
    assert cost.sequential_s(0, 100) == 0.0
    assert cost.prefill_s(100, 50) == pytest.approx(0.070)


LATENCY_CSV = """\
# measured on a test rig
batch_size,num_tokens,ms
1,1,10
1,8,12
4,1,14
4,8,20
16,1,30
16,8,44
"""


@pytest.fixture
def table_path(tmp_path: Path) -> str:
    path = tmp_path / "latency.csv"
    path.write_text(LATENCY_CSV)
    return str(path)


def test_lookup_exact_at_grid_points(table_path: str) -> None:
    table = load_latency_table(table_path)
    grid = {(1, 1): 10, (1, 8): 12, (4, 1): 14, (4, 8): 20, (16, 1): 30, (16, 8): 44}
    for (b, n), ms in grid.items():
        assert table.ms(b, n) == ms
    assert table.batch_sizes == (1, 4, 16) and table.num_tokens == (1, 8)


def test_lookup_interpolates_bilinearly(table_path: str) -> None:
    table = load_latency_table(table_path)
    assert table.ms(2.5, 1) == pytest.approx(12.0)  # halfway from 10 to 14
    assert table.ms(4, 4.5) == pytest.approx(17.0)
    assert table.ms(10, 4.5) == pytest.approx((14 + 20 + 30 + 44) / 4)  # centre of a cell
    assert table.ms(7, 2) == pytest.approx(
        (1 - 0.25) * ((1 - 1 / 7) * 14 + 1 / 7 * 20) + 0.25 * ((1 - 1 / 7) * 30 + 1 / 7 * 44)
    )


def test_lookup_extrapolates_linearly_and_clamps(table_path: str) -> None:
    table = load_latency_table(table_path)
    assert table.ms(32, 1) == pytest.approx(30 + 16 * (30 - 14) / 12)
    assert table.ms(4, 15) == pytest.approx(20 + 7 * 6 / 7)
    x, y = (32 - 4) / 12, (15 - 1) / 7  # both beyond the last grid line
    corners = (1 - x) * (1 - y) * 14 + x * (1 - y) * 30 + (1 - x) * y * 20 + x * y * 44
    assert table.ms(32, 15) == pytest.approx(corners)
    assert table.ms(0, 0) == 10.0  # extrapolated below the cheapest measurement: clamped


def test_lookup_cost(table_path: str) -> None:
    cost = LookupCost(load_latency_table(table_path))
    assert cost.iteration_s(4, 8, 123, 456) == pytest.approx(0.020)
    assert cost.iteration_s(4, 8, 99999, 0) == cost.iteration_s(4, 8, 0, 0)  # context ignored
    assert cost.sequential_s(5, 1000) == pytest.approx(0.050)
    assert cost.prefill_s(8) == pytest.approx(0.012)


def test_lookup_single_row_table_is_constant_along_the_lone_axis(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("batch_size,num_tokens,ms\n1,1,5\n1,9,9\n")
    table = load_latency_table(str(path))
    assert table.ms(7, 5) == pytest.approx(7.0)
    assert table.ms(1, 17) == pytest.approx(13.0)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("batch_size,tokens,ms\n1,1,5\n", 1, "header"),
        ("# c\nbatch_size,num_tokens,ms\n1,1,5\n1,x,5\n", 4, "num_tokens 'x' is not an integer"),
        ("batch_size,num_tokens,ms\n1,1,0\n", 2, "ms must be > 0"),
        ("batch_size,num_tokens,ms\n1,1,5\n2,2,6\n", 3, "no row for batch_size 1, num_tokens 2"),
        ("batch_size,num_tokens,ms\n1,1,5\n1,1,6\n", 3, "repeated"),
        ("batch_size,num_tokens,ms\n1,1\n", 2, "2 fields"),
    ],
)
def test_malformed_latency_table(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as info:
        load_latency_table(str(path))
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert "\n" not in str(info.value)


def test_missing_latency_table(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(UserError, match="no such file"):
        load_latency_table(str(path))


# --------------------------------------------------------------------------- factories

CONSTANT = {"kind": "constant", "forward_ms": 30, "per_token_ms": 1}
LINK = LinkSpec(uplink_mbps=10, downlink_mbps=50, delay={"kind": "constant", "one_way_ms": 20})


def target(**kw: object) -> TargetGroup:
    return TargetGroup(name="t", hardware=H100, model=LLAMA_70B, **kw)


def test_target_cost_by_kind(table_path: str) -> None:
    roof = target_cost(target(tensor_parallel=4))
    assert roof.iteration_s(1, 5, 1000, 5015) == Roofline(H100, LLAMA_70B, 4).iteration_s(1, 5, 1000, 5015)
    assert target_cost(target(latency=CONSTANT)).iteration_s(2, 10, 0, 0) == pytest.approx(0.040)
    lookup = target_cost(target(latency={"kind": "lookup", "path": table_path}))
    assert lookup.iteration_s(16, 8, 0, 0) == pytest.approx(0.044)


def test_cloud_draft_cost() -> None:
    fused = target(latency={**CONSTANT, "draft_forward_ms": 2})
    assert cloud_draft_cost(fused).sequential_s(3, 0) == pytest.approx(0.006)
    draft = cloud_draft_cost(target(draft_model=LLAMA_8B, tensor_parallel=4))
    assert draft.sequential_s(3, 10) == Roofline(H100, LLAMA_8B).sequential_s(3, 10)
    assert cloud_draft_cost(target()) is None


def test_edge_draft_cost(table_path: str) -> None:
    jetson = hardware(name="orin", peak_tflops=42, mem_bw_gbps=204.8)
    group = DeviceGroup(name="d", hardware=jetson, draft_model=SMALL, link=LINK)
    assert edge_draft_cost(group).sequential_s(4, 50) == Roofline(jetson, SMALL).sequential_s(4, 50)
    measured = DeviceGroup(
        name="d",
        hardware=jetson,
        draft_model=SMALL,
        link=LINK,
        latency={"kind": "lookup", "path": table_path},
    )
    assert edge_draft_cost(measured).sequential_s(4, 50) == pytest.approx(0.040)
    fixed = DeviceGroup(name="d", hardware=jetson, draft_model=SMALL, link=LINK, latency=CONSTANT)
    assert edge_draft_cost(fixed).prefill_s(10) == pytest.approx(0.040)
