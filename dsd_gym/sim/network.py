"""The access link between an edge device and the cloud (DESIGN §3, Network).

A :class:`DelayProcess` says, for any simulated time t, what the link is like: one-way delay,
loss probability, up/down bandwidth. It is generated from its own random stream in fixed blocks of
cells, strictly in cell order, so its value at t is a pure function of (spec, seed) — whatever was
asked before, and whatever the controller did. That makes the network a common random number.

A :class:`Link` carries messages over that process, FIFO per direction, computed arithmetically
(no SimPy events): transmission, propagation, loss and retransmission after a timeout.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from math import floor
from typing import TYPE_CHECKING

import numpy as np

from dsd_gym.sim.traces import load_network_trace

if TYPE_CHECKING:
    from dsd_gym.config.schema import ConstantDelay, GilbertElliottDelay, LinkSpec

BLOCK = 4096  # cells (or loss draws) generated per numpy call
_CACHED_BLOCKS = 4  # a query at a block edge may flip between neighbours; keep a few
_NEVER = 1 << 40  # sojourn length of a state that is never left (cells)


class DelayProcess:
    """The link's condition as a function of simulated time t (seconds).

    ``max_loss`` bounds ``loss_probability`` over all t, so a lossless link can skip loss draws;
    ``constant_bandwidth`` says the bandwidths do not depend on t, so a link can read them once.
    """

    __slots__ = ("max_loss",)

    max_loss: float
    constant_bandwidth = False

    def one_way_delay_s(self, t: float) -> float:
        raise NotImplementedError

    def loss_probability(self, t: float) -> float:
        raise NotImplementedError

    def uplink_bps(self, t: float) -> float:
        raise NotImplementedError

    def downlink_bps(self, t: float) -> float:
        raise NotImplementedError


def _block_rng(seed: int, block: int) -> np.random.Generator:
    """Block ``block``'s own stream, so any block can be rebuilt without replaying the others."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(block,))))


class _CellProcess(DelayProcess):
    """Piecewise constant on cells of ``step_s``: cell i covers [i·step, (i+1)·step); constant bandwidths.

    Blocks of cells are built on demand; memory stays bounded (a few blocks plus one carry per
    block) however long the simulation runs. A block depends only on its own stream and the carry
    (the Markov state) at its start, and carries are computed strictly in block order.
    """

    __slots__ = (
        "_step_s",
        "_up_bps",
        "_down_bps",
        "_seed",
        "_carry",
        "_cache",
        "_base",
        "_delay",
        "_loss",
    )

    constant_bandwidth = True

    def __init__(self, step_ms: float, up_mbps: float, down_mbps: float, seed: int, carry: object) -> None:
        self._step_s = step_ms * 1e-3
        self._up_bps = up_mbps * 1e6
        self._down_bps = down_mbps * 1e6
        self._seed = seed
        self._carry = [carry]  # state at the start of block b, for b < len(_carry)
        self._cache: dict[int, tuple[list[float], list[float]]] = {}
        self._base = 0
        self._delay, self._loss = self._build(0)

    def _generate(self, rng: np.random.Generator, carry: object) -> tuple[list[float], list[float], object]:
        """One block's delays (s) and loss probabilities, and the carry at the next block."""
        raise NotImplementedError

    def _build(self, block: int) -> tuple[list[float], list[float]]:
        while len(self._carry) <= block:
            self._build(len(self._carry) - 1)
        delay, loss, carry = self._generate(_block_rng(self._seed, block), self._carry[block])
        if block + 1 == len(self._carry):
            self._carry.append(carry)
        self._cache[block] = (delay, loss)
        if len(self._cache) > _CACHED_BLOCKS:
            del self._cache[next(iter(self._cache))]
        return delay, loss

    def _select(self, cell: int) -> int:
        """Make the block holding ``cell`` current; return the cell's index within it."""
        block = cell // BLOCK
        cached = self._cache.get(block)
        self._delay, self._loss = cached if cached is not None else self._build(block)
        self._base = block * BLOCK
        return cell - self._base

    # floor(t / step) is int(t / step) for t >= 0 (simulated time): a builtin function call, cheaper
    # than calling the type int, and the delay is read at least twice per round.

    def one_way_delay_s(self, t: float) -> float:
        i = floor(t / self._step_s) - self._base
        if i < 0 or i >= BLOCK:
            i = self._select(i + self._base)
        return self._delay[i]

    def loss_probability(self, t: float) -> float:
        i = floor(t / self._step_s) - self._base
        if i < 0 or i >= BLOCK:
            i = self._select(i + self._base)
        return self._loss[i]

    def uplink_bps(self, t: float) -> float:
        return self._up_bps

    def downlink_bps(self, t: float) -> float:
        return self._down_bps


class ConstantProcess(_CellProcess):
    """one_way_ms + |N(0, jitter_ms)|, the jitter redrawn every cell; constant loss."""

    __slots__ = ("_one_way_s", "_jitter_s", "_loss_block")

    def __init__(
        self, spec: ConstantDelay, up_mbps: float, down_mbps: float, rng: np.random.Generator
    ) -> None:
        self._one_way_s = spec.one_way_ms * 1e-3
        self._jitter_s = spec.jitter_ms * 1e-3
        self._loss_block = [float(spec.loss)] * BLOCK
        self.max_loss = float(spec.loss)
        super().__init__(spec.step_ms, up_mbps, down_mbps, int(rng.integers(2**63)), None)

    def _generate(self, rng: np.random.Generator, carry: object) -> tuple[list[float], list[float], object]:
        if self._jitter_s == 0.0:
            return [self._one_way_s] * BLOCK, self._loss_block, None
        jitter = np.abs(rng.standard_normal(BLOCK)) * self._jitter_s
        return (self._one_way_s + jitter).tolist(), self._loss_block, None


class GilbertElliottProcess(_CellProcess):
    """A good/bad Markov chain stepped once per cell, started in its stationary distribution.

    Generated by sojourns: a stay in a state lasts Geometric(p_leave) cells, so a block is a few
    vectorised draws instead of a loop over cells. The carry is (in bad state, cells left in the
    current stay).
    """

    __slots__ = (
        "_p_good_to_bad",
        "_p_bad_to_good",
        "_good_s",
        "_bad_s",
        "_jitter_s",
        "_loss_good",
        "_loss_bad",
    )

    def __init__(
        self, spec: GilbertElliottDelay, up_mbps: float, down_mbps: float, rng: np.random.Generator
    ) -> None:
        self._p_good_to_bad = spec.p_good_to_bad
        self._p_bad_to_good = spec.p_bad_to_good
        self._good_s = spec.good_ms * 1e-3
        self._bad_s = spec.bad_ms * 1e-3
        self._jitter_s = spec.jitter_ms * 1e-3
        self._loss_good = float(spec.loss_good)
        self._loss_bad = float(spec.loss_bad)
        self.max_loss = max(self._loss_good, self._loss_bad)
        seed = int(rng.integers(2**63))
        bad = bool(rng.random() < spec.p_good_to_bad / (spec.p_good_to_bad + spec.p_bad_to_good))
        # Memoryless: the rest of a stationary stay is a whole stay's length.
        first_stay = int(self._stays(rng, bad, 1)[0])
        super().__init__(spec.step_ms, up_mbps, down_mbps, seed, (bad, first_stay))

    def _stays(self, rng: np.random.Generator, bad: bool, n: int) -> np.ndarray:
        p_leave = self._p_bad_to_good if bad else self._p_good_to_bad
        if p_leave == 0.0:
            return np.full(n, _NEVER, dtype=np.int64)
        return rng.geometric(p_leave, size=n)

    def _generate(self, rng: np.random.Generator, carry: object) -> tuple[list[float], list[float], object]:
        bad, left = carry  # type: ignore[misc]
        if left >= BLOCK:
            bad_cells = np.full(BLOCK, bad)
            carry_out: tuple[bool, int] = (bad, left - BLOCK)
        else:
            # Alternate stays after the current one: (not bad), bad, (not bad), ... Each stay is
            # at least one cell, so this many pairs always reach the end of the block.
            pairs = (BLOCK - left) // 2 + 1
            lengths = np.empty(2 * pairs, dtype=np.int64)
            lengths[0::2] = self._stays(rng, not bad, pairs)
            lengths[1::2] = self._stays(rng, bad, pairs)
            states = np.empty(2 * pairs, dtype=bool)
            states[0::2] = not bad
            states[1::2] = bad
            ends = left + np.cumsum(lengths)
            last = int(np.searchsorted(ends, BLOCK))  # the stay that crosses the block's end
            bad_cells = np.empty(BLOCK, dtype=bool)
            bad_cells[:left] = bad
            bad_cells[left:] = np.repeat(states[: last + 1], lengths[: last + 1])[: BLOCK - left]
            carry_out = (bool(states[last]), int(ends[last]) - BLOCK)
        delay = np.where(bad_cells, self._bad_s, self._good_s)
        if self._jitter_s > 0.0:
            delay = delay + np.abs(rng.standard_normal(BLOCK)) * self._jitter_s
        loss = np.where(bad_cells, self._loss_bad, self._loss_good)
        return delay.tolist(), loss.tolist(), carry_out


class TraceProcess(DelayProcess):
    """Piecewise-constant replay of a network trace, looping with its period.

    Each device starts at its own random ``offset_s`` into the trace, so devices sharing a trace
    do not see the same conditions at the same time.
    """

    __slots__ = ("offset_s", "_times", "_period_s", "_delay", "_up", "_down", "_loss")

    def __init__(self, path: str, delay_scale: float, loss: float, rng: np.random.Generator) -> None:
        trace = load_network_trace(path)
        self._times: list[float] = trace.time_s.tolist()
        self._period_s = trace.period_s
        self.offset_s = float(rng.uniform(0.0, trace.period_s))
        self._delay: list[float] = (trace.one_way_ms * (delay_scale * 1e-3)).tolist()
        self._up: list[float] = (trace.uplink_mbps * 1e6).tolist()
        self._down: list[float] = (trace.downlink_mbps * 1e6).tolist()
        self._loss = float(loss)
        self.max_loss = self._loss

    def one_way_delay_s(self, t: float) -> float:
        return self._delay[bisect_right(self._times, (t + self.offset_s) % self._period_s) - 1]

    def loss_probability(self, t: float) -> float:
        return self._loss

    def uplink_bps(self, t: float) -> float:
        return self._up[bisect_right(self._times, (t + self.offset_s) % self._period_s) - 1]

    def downlink_bps(self, t: float) -> float:
        return self._down[bisect_right(self._times, (t + self.offset_s) % self._period_s) - 1]


def delay_process(link: LinkSpec, rng: np.random.Generator) -> DelayProcess:
    """The delay process of ``link.delay``, drawing only from ``rng`` (the link's own stream)."""
    spec = link.delay
    if spec.kind == "constant":
        return ConstantProcess(spec, link.uplink_mbps, link.downlink_mbps, rng)
    if spec.kind == "gilbert_elliott":
        return GilbertElliottProcess(spec, link.uplink_mbps, link.downlink_mbps, rng)
    return TraceProcess(spec.path, spec.delay_scale, spec.loss, rng)


class LinkDirection:
    """One direction of a link: a FIFO transmitter with loss and timeout retransmission.

    Counters: ``messages`` delivered, ``retransmissions`` (lost attempts), ``bytes`` put on the
    wire (every attempt, retransmissions included).
    """

    __slots__ = (
        "messages",
        "retransmissions",
        "bytes",
        "_bandwidth_bps",
        "_process",
        "_lossy",
        "_loss_probability",
        "_one_way_delay_s",
        "_rto_s",
        "_constant_bps",
        "_rng",
        "_u",
        "_k",
        "_busy_until",
        "_last_arrival",
    )

    def __init__(
        self,
        bandwidth_bps: Callable[[float], float],
        process: DelayProcess,
        rto_s: float,
        rng: np.random.Generator,
    ) -> None:
        self.messages = 0
        self.retransmissions = 0
        self.bytes = 0
        self._bandwidth_bps = bandwidth_bps  # process.uplink_bps or process.downlink_bps
        # Read once when the process allows it: a call per message is measurable in the round path.
        self._constant_bps = bandwidth_bps(0.0) if process.constant_bandwidth else None
        self._process = process
        # The process's samplers bound once: resolving them on the process costs a lookup per message.
        self._lossy = process.max_loss > 0.0
        self._loss_probability = process.loss_probability
        self._one_way_delay_s = process.one_way_delay_s
        self._rto_s = rto_s
        self._rng = rng
        self._u: list[float] = rng.random(BLOCK).tolist()
        self._k = 0
        self._busy_until = 0.0
        self._last_arrival = 0.0

    def send(self, now: float, nbytes: int) -> float:
        """Send ``nbytes`` at ``now``; return when the message arrives at the other end.

        A lost attempt still occupies the transmitter; the retry starts at the attempt's start
        plus the timeout (or when the transmitter frees up). Deliveries never overtake each
        other, as on one TCP connection.
        """
        bits = 8.0 * nbytes
        busy_until = self._busy_until
        start = now if now > busy_until else busy_until
        bps = self._constant_bps
        end = start + bits / (bps if bps is not None else self._bandwidth_bps(start))
        if self._lossy:
            end, attempts = self._attempts(start, end, bits)
            self.retransmissions += attempts - 1
            self.bytes += nbytes * attempts
        else:
            self.bytes += nbytes
        self._busy_until = end
        arrival = end + self._one_way_delay_s(end)
        last = self._last_arrival
        if arrival < last:
            arrival = last
        self._last_arrival = arrival
        self.messages += 1
        return arrival

    def _attempts(self, start: float, end: float, bits: float) -> tuple[float, int]:
        """Draw losses for the attempt over [start, end] and its retries: (delivery's end, attempts)."""
        loss_probability = self._loss_probability
        attempts = 1
        while True:
            k = self._k
            if k == BLOCK:
                self._u = self._rng.random(BLOCK).tolist()
                k = 0
            self._k = k + 1
            if self._u[k] >= loss_probability(start):
                return end, attempts
            retry = start + self._rto_s
            start = retry if retry > end else end
            end = start + bits / self._bandwidth_bps(start)
            attempts += 1


class Link:
    """One edge device's access link; up and down share the delay process, not the transmitter.

    ``send_up(now, nbytes)`` / ``send_down(now, nbytes)`` return the arrival time (bound to the
    directions' ``send`` to save a call per message); ``one_way_delay_s(t)`` is the delay alone,
    for streamed tokens of the fused and autoregressive modes. Counters live on ``up``/``down``.
    """

    __slots__ = ("up", "down", "send_up", "send_down", "one_way_delay_s")

    def __init__(
        self,
        spec: LinkSpec,
        delay: DelayProcess,
        rng_up: np.random.Generator,
        rng_down: np.random.Generator,
    ) -> None:
        rto_s = spec.retransmit_timeout_ms * 1e-3
        self.up = LinkDirection(delay.uplink_bps, delay, rto_s, rng_up)
        self.down = LinkDirection(delay.downlink_bps, delay, rto_s, rng_down)
        self.send_up = self.up.send
        self.send_down = self.down.send
        self.one_way_delay_s = delay.one_way_delay_s
