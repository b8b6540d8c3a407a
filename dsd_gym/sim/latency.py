"""Forward-pass cost models: how long one batched iteration of a model takes (DESIGN §3).

A batch is described by four sufficient statistics, so the batcher can keep running sums instead
of lists:

- ``B``: number of sequences in the batch;
- ``N``: total new tokens (Σ n_j);
- ``C``: total cached context tokens read (Σ c_j);
- ``NC``: attention work of the new tokens, Σ n_j · (c_j + (n_j + 1) / 2) — new token i of
  sequence j attends to c_j cached tokens plus the i new tokens up to itself.

Every cost model has the same three methods (:class:`ForwardCost`); times are in seconds.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

from dsd_gym.sim.traces import LatencyTable, load_latency_table

if TYPE_CHECKING:
    from dsd_gym.config.schema import DeviceGroup, HardwareProfile, LatencySpec, ModelProfile, TargetGroup

ACTIVATION_BYTES = 2.0  # 16-bit activations in the tensor-parallel all-reduce


class ForwardCost(Protocol):
    def iteration_s(self, B: int, N: int, C: float, NC: float) -> float:
        """One batched forward pass over the batch (B, N, C, NC)."""
        ...

    def sequential_s(self, steps: int, context: int) -> float:
        """``steps`` batch-1 single-token forwards, the k-th on ``context + k`` cached tokens."""
        ...

    def prefill_s(self, tokens: int, context: int = 0) -> float:
        """One batch-1 forward of ``tokens`` new tokens on ``context`` cached tokens."""
        ...


class Roofline:
    """Compute/memory roofline: overhead + max(FLOPs / achieved FLOP/s, bytes / achieved B/s).

    FLOPs = 2·P·N + 4·layers·heads·head_dim·NC (weight matmuls, then QKᵀ and AV);
    bytes = P·bytes_per_weight (weights read once per iteration, shared by the whole batch)
    + kv_bytes_per_token·(C + N) (KV cache read, new entries written). Tensor parallelism over
    ``tp`` GPUs divides both and adds two all-reduces per layer (ring: 2·(tp-1)/tp of the
    activations over the interconnect, plus a fixed latency). ``B`` does not appear: per-sequence
    costs are all in ``C`` and ``NC``.
    """

    __slots__ = (
        "_fixed",
        "_per_token_s",
        "_per_attn_s",
        "_weights_s",
        "_per_kv_s",
        "_ar_token_s",
        "_sequential",
    )

    def __init__(self, hardware: HardwareProfile, model: ModelProfile, tensor_parallel: int = 1) -> None:
        tp = tensor_parallel
        if tp < 1:
            raise ValueError(f"tensor_parallel must be >= 1; got {tp}")
        flop_s = hardware.peak_tflops * 1e12 * hardware.mfu * tp
        byte_s = hardware.mem_bw_gbps * 1e9 * hardware.mbu * tp
        params = model.params_b * 1e9
        kv_bytes_per_token = 2 * model.layers * model.kv_heads * model.head_dim * model.bytes_per_kv
        ar_fixed_s = 0.0
        self._ar_token_s = 0.0
        if tp > 1:
            if hardware.interconnect_gbps is None:
                raise ValueError(
                    f"hardware {hardware.name!r}: tensor_parallel={tp} needs interconnect_gbps "
                    "(the all-reduce bandwidth) in its profile"
                )
            ring = 2.0 * (tp - 1) / tp
            ar_fixed_s = 2 * model.layers * hardware.allreduce_latency_us * 1e-6
            activation_bytes = model.hidden * ACTIVATION_BYTES
            self._ar_token_s = 2 * model.layers * ring * activation_bytes / (hardware.interconnect_gbps * 1e9)
        self._fixed = hardware.overhead_ms * 1e-3 + ar_fixed_s
        self._per_token_s = 2.0 * params / flop_s
        self._per_attn_s = 4.0 * model.layers * model.heads * model.head_dim / flop_s
        self._weights_s = params * model.bytes_per_weight / byte_s
        self._per_kv_s = kv_bytes_per_token / byte_s
        # sequential_s by steps, then context: an edge drafts every round, and the contexts of a device
        # group's requests repeat (bounded by the longest prompt + output). Two int-keyed lookups are
        # cheaper than building and hashing a (steps, context) tuple.
        self._sequential: dict[int, dict[int, float]] = {}

    def iteration_s(self, B: int, N: int, C: float, NC: float) -> float:
        compute = self._per_token_s * N + self._per_attn_s * NC
        memory = self._weights_s + self._per_kv_s * (C + N)
        return self._fixed + self._ar_token_s * N + (compute if compute > memory else memory)

    def sequential_s(self, steps: int, context: int) -> float:
        """Sum over k < steps of iteration_s(1, 1, context + k, context + k + 1) (memoised)."""
        by_context = self._sequential.get(steps)
        if by_context is None:
            by_context = self._sequential[steps] = {}
        total = by_context.get(context)
        if total is None:
            total = by_context[context] = self._sequential_sum(steps, context)
        return total

    def _sequential_sum(self, steps: int, context: int) -> float:
        """Exact sum over k of iteration_s(1, 1, context + k, context + k + 1), without a loop.

        Each regime is linear in k, so the sum splits at the roofline crossover into two
        arithmetic series.
        """
        if steps <= 0:
            return 0.0
        a = self._per_attn_s
        m = self._per_kv_s
        c0 = self._per_token_s + a * (context + 1)  # compute time of step k: c0 + a·k
        m0 = self._weights_s + m * (context + 1)  # memory time of step k: m0 + m·k
        # d(k) = compute - memory = (c0 - m0) + (a - m)·k; compute-bound where d(k) > 0.
        d0, slope = c0 - m0, a - m
        if slope > 0.0:  # memory-bound first, compute-bound from step `split` on
            x = -d0 / slope
            split = 0 if x <= 0.0 else (steps if x >= steps else math.ceil(x))
            first0, first_slope, second0, second_slope = m0, m, c0, a
        elif slope < 0.0:  # compute-bound first, memory-bound from step `split` on
            x = d0 / -slope
            split = 0 if x < 0.0 else (steps if x >= steps else math.floor(x) + 1)
            first0, first_slope, second0, second_slope = c0, a, m0, m
        else:
            split = steps if d0 <= 0.0 else 0
            first0, first_slope, second0, second_slope = m0, m, c0, a
        rest = steps - split
        return (
            steps * (self._fixed + self._ar_token_s)
            + split * first0
            + first_slope * (split * (split - 1) / 2)
            + rest * second0
            + second_slope * ((steps * (steps - 1) - split * (split - 1)) / 2)
        )

    def prefill_s(self, tokens: int, context: int = 0) -> float:
        return self.iteration_s(1, tokens, context, tokens * (context + (tokens + 1) / 2))


class ConstantCost:
    """``forward_ms`` per iteration plus ``per_token_ms`` per new token: the theory case."""

    __slots__ = ("_forward_s", "_per_token_s")

    def __init__(self, forward_ms: float, per_token_ms: float = 0.0) -> None:
        self._forward_s = forward_ms * 1e-3
        self._per_token_s = per_token_ms * 1e-3

    def iteration_s(self, B: int, N: int, C: float, NC: float) -> float:
        return self._forward_s + self._per_token_s * N

    def sequential_s(self, steps: int, context: int) -> float:
        return steps * (self._forward_s + self._per_token_s) if steps > 0 else 0.0

    def prefill_s(self, tokens: int, context: int = 0) -> float:
        return self._forward_s + self._per_token_s * tokens


class LookupCost:
    """Measured iteration times from a (batch_size, num_tokens) table.

    Context length is ignored: the table is assumed measured at the context lengths the scenario
    runs at. Use the roofline where context growth matters.
    """

    __slots__ = ("_table", "_single_s")

    def __init__(self, table: LatencyTable) -> None:
        self._table = table
        self._single_s = table.ms(1, 1) * 1e-3

    def iteration_s(self, B: int, N: int, C: float, NC: float) -> float:
        return self._table.ms(B, N) * 1e-3

    def sequential_s(self, steps: int, context: int) -> float:
        return steps * self._single_s if steps > 0 else 0.0

    def prefill_s(self, tokens: int, context: int = 0) -> float:
        return self._table.ms(1, tokens) * 1e-3


def _cost(
    spec: LatencySpec, hardware: HardwareProfile, model: ModelProfile, tensor_parallel: int = 1
) -> ForwardCost:
    """A cost model by latency kind: constant, lookup table, or the roofline of model on hardware."""
    if spec.kind == "constant":
        return ConstantCost(spec.forward_ms, spec.per_token_ms)
    if spec.kind == "lookup":
        return LookupCost(load_latency_table(spec.path))
    return Roofline(hardware, model, tensor_parallel)


def target_cost(group: TargetGroup) -> ForwardCost:
    """The target model's cost on its GPUs, by the group's latency kind."""
    return _cost(group.latency, group.hardware, group.model, group.tensor_parallel)


def cloud_draft_cost(group: TargetGroup) -> ForwardCost | None:
    """The fused-mode draft on the target's hardware (one GPU), or None if none is configured."""
    spec = group.latency
    if spec.kind == "constant" and spec.draft_forward_ms is not None:
        return ConstantCost(spec.draft_forward_ms)
    if group.draft_model is not None:
        return Roofline(group.hardware, group.draft_model)
    return None


def edge_draft_cost(group: DeviceGroup) -> ForwardCost:
    """The draft model's cost on the device (a lookup table on a device group is the draft's)."""
    return _cost(group.latency, group.hardware, group.draft_model)
