"""Privileged oracles (DESIGN §4): ``oracle`` (myopic, exact expectation) and ``oracle-rollout``.

Upper bounds for evaluation and label sources for WC-DNN; not deployable. Both read state no edge
can measure and change none of it — no message is sent, no job is built, no simulation stream is
drawn from — so a run with an oracle consulted on the side is identical to one without:

- the request's true latent acceptance path α ahead (not the per-token uniforms: a round's outcome
  stays random) and the tokens it still has to generate;
- the edge device's draft queue, the link's transmitter queues, and the delay process's delay,
  bandwidth and loss at the send times;
- the target: its running iteration, its queue, the stochastic background arrivals already drawn,
  and the jobs other sessions have in flight to it (:class:`TargetProjection` replays the
  target's batcher forward on copies).

**Objective.** Before each round the oracle scores every decision the scenario allows (each window
in distributed mode, each fused window, autoregressive) by

    E[committed | d] − ρ·(E[round time | d] + X_d)

Dinkelbach's form of a long-run rate (tokens per second of a renewal-reward process): a round
is worth its expected tokens less what its time could have earned at the rate ρ the session
achieves. ρ is the oracle's own long-run rate so far, Σ E[committed] / Σ (E[round time] + X) over
the decisions it took (before the first, the best ratio at that decision). A round that is good
for its own ratio but long — a big window when α is about to drop, a fused window that holds a
whole batch — is charged for the rounds it displaces; maximising each round's own ratio instead
(ρ re-solved at every decision) measured 1–2 % below the best fixed decision on ``hetero-fleet``
and ``regime-shift`` in ego mode, the long-run ρ at or above it.

X_d prices, at the same rate, the time the round's job costs its *teammates'* jobs on a shared
target (:meth:`RoundModel.evaluate`): the sessions that run an oracle too (:func:`teammate`: a
controller whose ``team`` is set). The oracle maximises the throughput of the sessions that run it
— the whole fleet in fleet mode, its own session in ego mode (X = 0: the others are a fixed
policy's tenants, and their time is not what it is judged on). Without X, oracles that all run in
a fleet pick windows whose verify tokens and cloud-draft passes slow everyone else down (a busy
target loses ~10 % of its throughput that way); with X in ego mode the oracle yielded time to
tenants it is not measured on.

>>> from dsd_gym.config import load_scenario
>>> from dsd_gym.runner import simulate
>>> scenario = load_scenario("ideal", ["duration_s=5", "control.modes=[distributed]"])
>>> round(simulate(scenario, "oracle")["round_breakdown_ms"]["draft"], 6)  # ms: γ = 6 drafts of 1 ms
6.0
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from typing import TYPE_CHECKING

import numpy as np

from dsd_gym.controllers.registry import register, usages
from dsd_gym.errors import UserError
from dsd_gym.sim.cloud import JobKind, draft_passes
from dsd_gym.sim.controller import ControllerFactory, Decision, Mode

if TYPE_CHECKING:
    from dsd_gym.config.schema import Scenario
    from dsd_gym.sim.cloud import Target
    from dsd_gym.sim.network import LinkDirection
    from dsd_gym.sim.session import Session

__all__ = [
    "MyopicOracle",
    "RolloutOracle",
    "RoundModel",
    "TargetProjection",
    "candidates",
    "expected_committed",
]

ROLLOUT_SAMPLES = 64
_INF = float("inf")
_MAX_ITERATIONS = 4096  # projected target iterations per decision before the projection gives up
_CLOUD_KINDS = (JobKind.FUSED, JobKind.DECODE)
_TINY_S = 1e-12  # keeps a round that costs nothing measurable finite


def candidates(scenario: Scenario) -> list[Decision]:
    """Every decision the scenario allows: distributed windows, fused windows, autoregressive."""
    modes, windows = scenario.control.modes, scenario.control.window_choices
    out: list[Decision] = []
    if "distributed" in modes:
        out += [Decision(g, Mode.DISTRIBUTED) for g in windows]
    if "fused" in modes:
        out += [Decision(g, Mode.FUSED) for g in windows]
    if "autoregressive" in modes:
        out.append(Decision(0, Mode.AUTOREGRESSIVE))
    return out


def expected_committed(alpha: np.ndarray, position: int, remaining: int, gamma_max: int) -> np.ndarray:
    """E[min(A + 1, remaining)] for γ = 0..gamma_max, on the latent path ``alpha`` from ``position``.

    P(A ≥ k | γ) = Π_{i<k} α[position + i] for k ≤ γ, and min(A + 1, R) = Σ_{k<R} 1[A ≥ k], so
    E = Σ_{k=0}^{min(γ, R−1)} Π_{i<k} α[position + i].

    >>> expected_committed(np.full(10, 0.5), 0, 100, 3).tolist()
    [1.0, 1.5, 1.75, 1.875]
    >>> expected_committed(np.full(10, 0.5), 0, 2, 3).tolist()  # two tokens left
    [1.0, 1.5, 1.5, 1.5]
    """
    survive = np.zeros(gamma_max + 1)
    survive[0] = 1.0
    ahead = alpha[position : position + gamma_max]
    survive[1 : len(ahead) + 1] = np.cumprod(ahead)
    survive[max(remaining, 1) :] = 0.0
    return np.cumsum(survive)


def _send_estimate(direction: LinkDirection, now: float, nbytes: float) -> float:
    """When a message sent at ``now`` would arrive: ``LinkDirection.send`` without its side effects.

    Losses count in expectation: a lost attempt costs max(timeout, transmission), and the number of
    retries is geometric, p / (1 − p) on average.
    """
    process = direction._process
    start = now if now > direction._busy_until else direction._busy_until
    tx = 8.0 * nbytes / direction._bandwidth_bps(start)
    end = start + tx
    if process.max_loss > 0.0:
        p = process.loss_probability(start)
        end += p / (1.0 - p) * max(direction._rto_s, tx)
    arrival = end + process.one_way_delay_s(end)
    return arrival if arrival > direction._last_arrival else direction._last_arrival


# -- the target, projected forward --------------------------------------------------------------


class _Unknown(Exception):
    """The projection reached background arrivals not drawn yet (drawing them is not allowed)."""


class _Work:
    """A job in the projection: a copy, never the target's own object.

    ``resubmit``: for a session's fused or autoregressive job, the (kind, γ, context) of the job its
    session submits the moment this one is done (such a session decides again at once).
    """

    __slots__ = ("arrival", "seq", "tokens", "context", "kind", "gamma", "owned", "resubmit")

    def __init__(
        self, arrival: float, seq: int, tokens: int, context: int, kind: int, gamma: int, owned: bool,
        resubmit: tuple[int, int, int] | None = None,
    ) -> None:  # fmt: skip
        self.arrival, self.seq, self.tokens, self.context = arrival, seq, tokens, context
        self.kind, self.gamma, self.owned, self.resubmit = kind, gamma, owned, resubmit


def _order(work: _Work) -> tuple[float, int]:
    return work.arrival, work.seq


def _cloud_work(arrival: float, seq: int, kind: int, gamma: int, context: int, owned: bool) -> _Work:
    """A session's fused or autoregressive job; its session resubmits when it is done."""
    tokens = gamma + 1 if kind == JobKind.FUSED else 1
    return _Work(arrival, seq, tokens, context, kind, gamma, owned, (kind, gamma, context + tokens))


def _after(t: float) -> float:
    """Just after ``t``: a job resubmitted as an iteration ends misses the batch formed then."""
    return math.nextafter(t, _INF)


class _Iteration:
    """A projected iteration: span, batch statistics (B, N, C, NC), fused (γ, context) pairs and
    how many of its jobs are teammates' (``owned``)."""

    __slots__ = ("start", "end", "B", "N", "C", "NC", "fused", "draft_s", "owned")

    def __init__(
        self, start: float, end: float, B: int, N: int, C: float, NC: float, fused: tuple, draft_s: float,
        owned: int,
    ) -> None:  # fmt: skip
        self.start, self.end = start, end
        self.B, self.N, self.C, self.NC = B, N, C, NC
        self.fused, self.draft_s, self.owned = fused, draft_s, owned


_EMPTY = _Iteration(0.0, 0.0, 0, 0, 0.0, 0.0, (), 0.0, 0)


class Slot:
    """Where a job would run and what it would cost the others there.

    ``start``/``duration``: its iteration. ``verify_share_s``: what its tokens add to the
    iteration's forward pass. ``draft_share_s``: its share of the iteration's fused-draft passes
    (each pass split evenly among the jobs it drafts for); ``draft_own_s``: the passes it needs.
    ``batch_others``: other sessions' jobs in its batch; ``waiting``: other sessions' jobs that
    reach the target while it runs and wait for it.
    """

    __slots__ = (
        "start",
        "duration",
        "verify_share_s",
        "draft_share_s",
        "draft_own_s",
        "batch_others",
        "waiting",
    )

    def __init__(
        self, start: float, duration: float, verify_share_s: float, draft_share_s: float,
        draft_own_s: float, batch_others: int, waiting: int,
    ) -> None:  # fmt: skip
        self.start, self.duration = start, duration
        self.verify_share_s, self.draft_share_s, self.draft_own_s = verify_share_s, draft_share_s, draft_own_s
        self.batch_others, self.waiting = batch_others, waiting


class TargetProjection:
    """A target's coming iterations without the deciding session's job: ``Target`` replayed on copies.

    Mirrors ``Target._form``, ``_catch_up`` and ``_start`` on copies of the queue and of the jobs
    other sessions have in flight (``future``), with a cursor into the background stream's
    already-drawn arrivals — so the lazy background-only iterations the target has not played yet
    are known too. Not known: requests that start later, and decisions other sessions have not
    taken yet (a cloud-mode session is assumed to repeat its last one). A job of the deciding
    session then :meth:`join` s the iteration after the one running when it arrives.
    """

    def __init__(self, target: Target, now: float, future: list[_Work]) -> None:
        self.target = target
        bg = target.background
        self.background = bg if bg is not None and bg.rate > 0 else None
        self.head = bg.head if bg is not None else 0
        self._seq = 1 << 62  # the projection's own jobs order after the target's at equal times
        self.queue: list[_Work] = []
        for t, seq, job in target.queue:
            owned = job.owner is not None and teammate(job.owner)
            if job.owner is not None and job.kind in _CLOUD_KINDS:
                self.queue.append(_cloud_work(t, seq, job.kind, job.gamma, job.context, owned))
            else:
                self.queue.append(_Work(t, seq, job.tokens, job.context, job.kind, job.gamma, owned))
        self.queue.sort(key=_order)
        self.future = sorted(future, key=_order)
        self.iterations: list[_Iteration] = []
        self.starts: list[float] = []
        self.open = True  # more iterations may follow the last one
        self._drafts: dict[tuple[int, int], list[tuple[float, float, float]]] = {}
        if target._lazy or target.busy:
            # The iteration running now (event-driven) or played last (lazy) ends at _busy_until.
            end = target._busy_until
            self._append(_Iteration(-_INF, end, 0, 0, 0.0, 0.0, (), 0.0, 0))
            self.clock = target._clock if target._lazy else end
            for job, take in target.batch:
                if job.owner is not None and job.kind in _CLOUD_KINDS and job.tokens == take:
                    context = job.context + take
                    owned = teammate(job.owner)
                    self._push(
                        _cloud_work(_after(end), self._next_seq(), job.kind, job.gamma, context, owned)
                    )
        else:
            self.clock = now

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _push(self, work: _Work) -> None:
        insort(self.future, work, key=_order)

    def _append(self, iteration: _Iteration) -> None:
        self.iterations.append(iteration)
        self.starts.append(iteration.start)

    def _next_arrival(self) -> float:
        nxt = self.future[0].arrival if self.future else _INF
        bg = self.background
        if bg is None:
            return nxt
        if self.head + 1 >= len(bg.times):
            raise _Unknown
        return min(nxt, bg.times[self.head])

    def _advance(self) -> None:
        """Project the next iteration, or close the projection (idle for good, or unknown)."""
        if len(self.iterations) > _MAX_ITERATIONS:
            self.open = False
            return
        try:
            clock = self.clock
            if not self.queue:
                arrival = self._next_arrival()
                if arrival == _INF:
                    self.open = False
                    return
                if arrival > clock:
                    clock = arrival
            iteration = self._form(clock)
        except _Unknown:
            self.open = False
            return
        if iteration.B == 0:
            self.open = False
            return
        self._append(iteration)
        self.clock = iteration.end

    def _form(self, clock: float) -> _Iteration:
        """``Target._form`` on the copies: the iteration formed at ``clock``."""
        target, queue, future, bg = self.target, self.queue, self.future, self.background
        while future and future[0].arrival <= clock:
            insort(queue, future.pop(0), key=_order)
        budget, slots = target.max_batch_tokens, target.max_batch_size
        B = N = owned = 0
        C = NC = 0.0
        fused: list[tuple[int, int]] = []
        taken: list[tuple[_Work, int]] = []
        while slots > 0 and budget > 0:
            queued_s = queue[0].arrival if queue else _INF
            if bg is not None:
                head, times = self.head, bg.times
                if times[-1] <= clock or head + 1 >= len(times):
                    raise _Unknown
                arrival = times[head]
                if arrival <= clock and arrival < queued_s:
                    if bg.prefill[head]:
                        prefill = _Work(
                            arrival, self._next_seq(), bg.sizes[head], 0, JobKind.BACKGROUND_PREFILL, 0, False
                        )
                        insort(queue, prefill, key=_order)
                        self.head = head + 1
                        continue
                    take = bg.verify_tokens
                    end = min(
                        bisect_right(times, clock, head),
                        bisect_left(times, queued_s, head),
                        head + min(slots, budget // take),
                    )
                    try:
                        end = bg.prefill.index(True, head, end)
                    except ValueError:
                        pass
                    k = end - head
                    if k == 0:
                        break
                    context = sum(bg.sizes[head:end])
                    self.head = end
                    B += k
                    slots -= k
                    budget -= k * take
                    N += k * take
                    C += context
                    NC += take * (context + k * (take + 1) / 2)
                    continue
            if not queue:
                break
            work = queue[0]
            if work.kind == JobKind.PREFILL or work.kind == JobKind.BACKGROUND_PREFILL:
                take = min(work.tokens, budget, target.chunk)
            elif work.tokens <= budget:
                take = work.tokens
            else:
                break
            queue.pop(0)
            taken.append((work, take))
            B += 1
            slots -= 1
            budget -= take
            N += take
            C += work.context
            NC += take * (work.context + (take + 1) / 2)
            owned += work.owned
            if work.kind == JobKind.FUSED:
                fused.append((work.gamma, work.context))
        if B == 0:
            return _EMPTY
        draft_s = sum(d for d, _ in draft_passes(target.draft_cost, fused)) if fused else 0.0
        end_s = clock + target.cost.iteration_s(B, N, C, NC) + draft_s
        for work, take in taken:  # unfinished prefill chunks queue again; cloud sessions go on
            work.tokens -= take
            if work.tokens > 0:
                insort(queue, work, key=_order)
            elif work.resubmit is not None:
                kind, gamma, context = work.resubmit
                self._push(_cloud_work(_after(end_s), self._next_seq(), kind, gamma, context, work.owned))
        return _Iteration(clock, end_s, B, N, C, NC, tuple(fused), draft_s, owned)

    def join(self, arrival: float, tokens: int, context: int, fused_gamma: int = 0) -> Slot:
        """The slot of a job arriving at ``arrival``: it waits for the iteration running then and
        joins the next batch (the one projected there, plus itself); on an idle target it starts at
        once, alone. A full batch is assumed to make room (a later arrival gives up its place)."""
        while self.open and (not self.iterations or self.iterations[-1].start <= arrival):
            self._advance()
        i = bisect_right(self.starts, arrival) - 1
        batch = _EMPTY
        if i < 0 or self.iterations[i].end <= arrival:
            start = arrival
        else:
            start = self.iterations[i].end
            if i + 1 < len(self.iterations) and self.iterations[i + 1].start == start:
                i += 1
                batch = self.iterations[i]
        target = self.target
        cost = target.cost
        duration = cost.iteration_s(
            min(batch.B + 1, target.max_batch_size),
            batch.N + tokens,
            batch.C + context,
            batch.NC + tokens * (context + (tokens + 1) / 2),
        )
        alone = cost.iteration_s(batch.B, batch.N, batch.C, batch.NC) if batch.B else 0.0
        verify_share = max(0.0, duration - alone)
        draft_share = draft_own = 0.0
        if fused_gamma:
            key = (i, context)  # the fused candidates of a decision share a batch
            options = self._drafts.get(key)
            if options is None or len(options) <= fused_gamma:
                options = self._drafts[key] = _fused_options(
                    target, batch.fused, context, max(fused_gamma, 8)
                )
            draft_s, draft_share, draft_own = options[fused_gamma]
            duration += draft_s
        else:
            duration += batch.draft_s
        end = start + duration
        while self.open and self.iterations[-1].start <= end:
            self._advance()
        waiting = 0
        for later in self.iterations[i + 1 :]:
            if later.start > end:
                break
            waiting += later.owned
        for work in self.future:
            if work.arrival >= end:
                break
            waiting += work.owned
        return Slot(start, duration, verify_share, draft_share, draft_own, batch.owned, waiting)


def _fused_options(
    target: Target, fused: tuple, context: int, gamma_max: int
) -> list[tuple[float, float, float]]:
    """The draft passes of a batch holding the fused jobs ``fused`` (γ, context) and one more, of
    window γ on ``context``, for γ = 0..gamma_max (index γ; 0: no more job): (passes' time, the
    job's share of them — each pass split evenly among the jobs it drafts for —, the time of the
    passes it needs itself)."""
    jobs = sorted(fused)
    passes = max(jobs[-1][0] if jobs else 0, gamma_max)
    iteration_s = target.draft_cost.iteration_s
    live, others_context, first = len(jobs), sum(c for _, c in jobs), 0
    with_me: list[float] = []
    without: list[float] = []
    shared_by: list[int] = []
    for k in range(passes):
        while first < len(jobs) and jobs[first][0] <= k:  # jobs[first:] still draft at pass k
            others_context -= jobs[first][1]
            live -= 1
            first += 1
        base = others_context + k * live
        without.append(iteration_s(live, live, base, base + live) if live else 0.0)
        mine = base + context + k
        with_me.append(iteration_s(live + 1, live + 1, mine, mine + live + 1))
        shared_by.append(live + 1)
    rest = sum(without)
    out = [(rest, 0.0, 0.0)]
    own = share = 0.0
    for k in range(gamma_max):
        rest -= without[k]
        own += with_me[k]
        share += with_me[k] / shared_by[k]
        out.append((own + rest, share, own))
    return out


def teammate(session: Session) -> bool:
    """Whether ``session``'s jobs count in X: its controller's class attribute ``team`` is true (an
    oracle's is; a controller without one is not a teammate). The oracle maximises the throughput of
    the sessions that run it — the fleet's in fleet mode, its own in ego mode — so the time a round
    costs their jobs is priced, and other tenants' (and stochastic background) is not. Dataset
    collection marks its fleet-mode behaviour sessions ``team`` too, so its labels price the time a
    round costs the rest of the fleet as the oracle does in a fleet of oracles."""
    return getattr(session.controller, "team", False)


def _in_flight(session: Session, target: Target, now: float) -> list[_Work]:
    """Jobs other sessions are about to bring to ``target``: verify jobs on their way up (arrival
    booked on the link, or estimated while the draft still runs), and the next job of a cloud-mode
    session whose job finished just now. Only sessions the simulation lists (closed loop)."""
    out: list[_Work] = []
    payload = session.sim.scenario.payload
    for seq, other in enumerate(session.sim.sessions, start=1 << 61):
        req, job = other.request, other._pending_job
        if other is session or req is None or req.target is not target or job is None:
            continue
        if job.kind == JobKind.VERIFY and job.started_s < 0 and job.arrived_s == 0.0:
            if job.epoch != target.epoch:
                continue  # it will be dropped
            draft_end = other._round[6]
            if other.device.exclusive or now >= draft_end:
                arrival = other.link.up._last_arrival  # booked: the last message on that uplink
            else:
                nbytes = payload.header_bytes + job.gamma * payload.draft_token_bytes
                arrival = _send_estimate(other.link.up, draft_end, nbytes)
            owned = teammate(other)
            out.append(
                _Work(max(arrival, now), seq, job.tokens, job.context, JobKind.VERIFY, job.gamma, owned)
            )
        elif job.kind in _CLOUD_KINDS and job.started_s >= 0 and job.done_s == now:
            last = other.last_decision
            if last is not None and last.mode != Mode.DISTRIBUTED:
                kind = JobKind.FUSED if last.mode == Mode.FUSED else JobKind.DECODE
                out.append(
                    _cloud_work(now, seq, kind, last.gamma, job.context + job.gamma + 1, teammate(other))
                )
    return out


# -- one round of each decision -----------------------------------------------------------------


class RoundModel:
    """What a round of each decision would take from now, projected from the session's state.

    Read-only throughout. Distributed: the edge waits for tokens the cloud is still streaming to
    it, catches its draft up on tokens the cloud committed, drafts γ on its device's FIFO, sends
    (uplink FIFO, bandwidth, delay and loss at the send time), the job joins the target's projected
    iteration, and the reply comes down. Fused and autoregressive: the job joins at once; the round
    ends with its iteration (the tokens stream to the edge meanwhile).
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.now = now = session.env.now
        req = session.request
        self.target = req.target
        self.payload = session.sim.scenario.payload
        self.context = req.prompt_tokens + req.committed
        device = session.device
        ready = req.last_token_s if req.last_token_s > now else now
        behind = req.committed - req.draft_pos
        catch_up_s = device.cost.prefill_s(behind - 1, self.context - behind) if behind > 1 else 0.0
        self.draft_start = (ready if ready > device.busy_until else device.busy_until) + catch_up_s
        self._projection: TargetProjection | None = None

    @property
    def projection(self) -> TargetProjection:
        if self._projection is None:
            self._projection = TargetProjection(
                self.target, self.now, _in_flight(self.session, self.target, self.now)
            )
        return self._projection

    def lost(self) -> bool:
        """A job sent now would be dropped: the target is down or lost the request's KV cache."""
        return not self.target.up or self.session.request.kv_epoch != self.target.epoch

    def arrival(self, decision: Decision) -> float:
        """When the round's job would reach the target."""
        if decision.mode != Mode.DISTRIBUTED:
            return self.now
        session, payload = self.session, self.payload
        draft_end = self.draft_start + session.device.cost.sequential_s(decision.gamma, self.context)
        nbytes = payload.header_bytes + decision.gamma * payload.draft_token_bytes
        return _send_estimate(session.link.up, draft_end, nbytes)

    def lower_bound(self, decision: Decision, arrival: float) -> float:
        """A lower bound on ``sum(evaluate(...))``: from the job's arrival, or the end of the
        iteration running now if that is later, its forward pass alone."""
        gamma, target, context = decision.gamma, self.target, self.context
        tokens = 1 if decision.mode == Mode.AUTOREGRESSIVE else gamma + 1
        alone = target.cost.iteration_s(1, tokens, context, tokens * (context + (tokens + 1) / 2))
        if decision.mode == Mode.FUSED:  # the cloud draft's γ passes for this job alone
            alone += target.draft_cost.sequential_s(gamma, context)
        start = arrival
        if (target.busy or target._lazy) and target._busy_until > start:
            start = target._busy_until  # the iteration running now ends first
        return start - self.now + alone

    def evaluate(
        self, decision: Decision, committed: float, arrival: float | None = None
    ) -> tuple[float, float]:
        """(E[round time] from now, X): X is the time the round's job costs other sessions' jobs.

        X = n·v + (n + 1)·s − o, with n the other sessions' jobs in its batch or waiting for its
        iteration, v what its tokens add to the forward pass, s its share of the fused-draft passes
        (each split evenly among the jobs it drafts for) and o the passes it needs itself (already in
        its own round time). In a fleet of fused sessions this charges each pass the time it costs
        everyone (shared by the jobs that want it); a lone fused job among verify jobs pays the
        whole wait it imposes on them. Stochastic background jobs count as nobody's time.
        """
        if arrival is None:
            arrival = self.arrival(decision)
        gamma, payload = decision.gamma, self.payload
        if decision.mode == Mode.DISTRIBUTED:
            slot = self.projection.join(arrival, gamma + 1, self.context)
            reply = payload.header_bytes + payload.server_telemetry_bytes + committed * payload.token_bytes
            end = _send_estimate(self.session.link.down, slot.start + slot.duration, reply)
        else:
            tokens = gamma + 1 if decision.mode == Mode.FUSED else 1
            slot = self.projection.join(arrival, tokens, self.context, gamma)
            end = slot.start + slot.duration
        others = slot.batch_others + slot.waiting
        extra = others * slot.verify_share_s + (others + 1) * slot.draft_share_s - slot.draft_own_s
        return end - self.now, max(0.0, extra)

    def best(
        self, decisions: list[Decision], committed: np.ndarray, rate: float | None = None
    ) -> tuple[int, float]:
        """(index, E[round time] + X) of the decision with the best E[committed] − ρ·(round time + X).

        ρ = ``rate``; without one, ρ is the Dinkelbach fixed point at this decision — the best
        committed / (round time + X) — which picks that best ratio. Ties go to the first decision.
        Decisions are tried in order of an optimistic score (``lower_bound``, X = 0); once that
        cannot beat the best found, the rest are skipped: the answer is exact, most projections are
        saved.
        """
        arrivals = [self.arrival(d) for d in decisions]
        bounds = [max(self.lower_bound(d, arrivals[j]), _TINY_S) for j, d in enumerate(decisions)]
        if rate is None:
            optimistic = [committed[j] / bounds[j] for j in range(len(decisions))]
        else:
            optimistic = [committed[j] - rate * bounds[j] for j in range(len(decisions))]
        best_j, best_score, best_cost = 0, -_INF, 0.0
        for j in sorted(range(len(decisions)), key=lambda j: -optimistic[j]):
            if optimistic[j] < best_score:
                break
            cost = max(sum(self.evaluate(decisions[j], float(committed[j]), arrivals[j])), _TINY_S)
            score = committed[j] / cost if rate is None else committed[j] - rate * cost
            if score > best_score or (score == best_score and j < best_j):
                best_j, best_score, best_cost = j, score, cost
        return best_j, best_cost


# -- the controllers ----------------------------------------------------------------------------


class MyopicOracle:
    """``oracle``: the privileged myopic oracle of DESIGN §4.

    Knows the request's true latent acceptance path α ahead (not its per-token uniforms), the tokens
    left, and the current state of the edge device, the link, the delay process and the target,
    including jobs other sessions have in flight (:class:`RoundModel`).

    Maximises E[committed | d] − ρ·(E[round time | d] + X_d) over every allowed decision d, with
    E[committed | γ] = Σ_{k=0}^{min(γ, R−1)} Π_{i<k} α[p+i] (p tokens committed, R left; one token
    for autoregressive), the round time projected from now, X_d the time the round costs the other
    sessions' jobs on the target (teammates' only, :func:`teammate`), and ρ the oracle's long-run
    rate Σ E[committed] / Σ (E[round time] + X) over the decisions it took (the best ratio at the
    first). With one session and no network or queueing, ρ converges to the best ratio and the
    rule is Leviathan's argmax. Ties go to the first decision (distributed before fused before
    autoregressive, smaller windows first).
    """

    observes = False  # reads the session's privileged state, not its telemetry
    team = True  # its jobs count in the X of other oracles (:func:`teammate`)

    def __init__(self, decisions: list[Decision]) -> None:
        self.decisions = decisions
        self.gammas = np.array([d.gamma for d in decisions])
        self.gamma_max = int(self.gammas.max())
        # When every job would be dropped: draft the least, so the timeout starts soonest.
        self.fallback = min(decisions, key=lambda d: (d.mode != Mode.DISTRIBUTED, d.gamma))
        # ρ's record: the expected tokens and cost (round time + X) of every decision taken so far.
        self.expected_tokens = 0.0
        self.expected_cost_s = 0.0

    @property
    def rate(self) -> float | None:
        """ρ, the long-run rate: Σ E[committed] / Σ (E[round time] + X) over the decisions taken so
        far; None before the first."""
        return self.expected_tokens / self.expected_cost_s if self.expected_cost_s > 0 else None

    def _take(self, committed: float, cost_s: float) -> None:
        self.expected_tokens += committed
        self.expected_cost_s += cost_s

    def committed(self, session: Session) -> np.ndarray:
        """E[committed] of each decision's round."""
        req = session.request
        by_gamma = expected_committed(
            req.path.alpha, req.committed, req.output_tokens - req.committed, self.gamma_max
        )
        return by_gamma[self.gammas]

    def decide(self, session: Session) -> Decision:
        model = RoundModel(session)
        if model.lost():
            return self.fallback
        committed = self.committed(session)
        j, cost_s = model.best(self.decisions, committed, self.rate)
        self._take(float(committed[j]), cost_s)
        return self.decisions[j]

    def label(self, session: Session) -> tuple[int, np.ndarray]:
        """What the oracle decides here and why, for datasets: (index into ``self.decisions``, the
        objective E[committed] − ρ·(E[round time] + X) of every decision, −inf where a job would be
        dropped). Computes every candidate (no pruning) and updates ρ's record as :meth:`decide`
        does; the index is the one :meth:`decide` would return."""
        model = RoundModel(session)
        values = np.full(len(self.decisions), -_INF)
        if model.lost():
            return self.decisions.index(self.fallback), values
        committed = self.committed(session)
        j, cost_s = model.best(self.decisions, committed, self.rate)
        pairs = zip(self.decisions, committed, strict=True)
        costs = [max(sum(model.evaluate(d, float(c))), _TINY_S) for d, c in pairs]
        rate = self.rate
        if rate is None:  # the fixed point: the best ratio
            rate = max(float(c) / t for c, t in zip(committed, costs, strict=True))
        values[:] = [float(c) - rate * t for c, t in zip(committed, costs, strict=True)]
        self._take(float(committed[j]), cost_s)
        return j, values


class RolloutOracle(MyopicOracle):
    """``oracle-rollout``: the myopic oracle with E[committed] estimated by simulating the round.

    Knows what ``oracle`` knows. For each decision it plays the round's acceptance K = 64 times on
    the true latent α path with fresh per-token uniforms, the same K draws for every decision
    (common random numbers across candidates), from its own generator seeded by (simulation seed,
    session id): runs stay deterministic and the simulation's streams are never touched. The round
    time and X come from the same :class:`RoundModel`; it maximises the same objective with the
    sample mean of committed tokens in place of the exact expectation.
    """

    def __init__(self, decisions: list[Decision], samples: int = ROLLOUT_SAMPLES) -> None:
        super().__init__(decisions)
        self.samples = samples
        self.rng: np.random.Generator | None = None

    def committed(self, session: Session) -> np.ndarray:
        if self.rng is None:
            seed = np.random.SeedSequence(session.sim.seed, spawn_key=(session.sid,))
            self.rng = np.random.default_rng(seed)
        req = session.request
        position, remaining = req.committed, req.output_tokens - req.committed
        alpha = req.path.alpha[position : position + self.gamma_max]
        accepted = self.rng.random((self.samples, len(alpha))) < alpha
        run = np.cumprod(accepted, axis=1).sum(axis=1)  # consecutive acceptances from the position
        tokens = np.minimum(np.minimum(run[:, None], self.gammas[None, :]) + 1, remaining)
        return tokens.mean(axis=0)


def _no_argument(name: str, arg: str) -> None:
    if arg:
        raise UserError(f"policy '{name}:{arg}': {name} takes no argument; allowed: {usages()}")


@register("oracle", "oracle", "privileged myopic oracle: true α path, network and target state")
def _oracle(arg: str, scenario: Scenario) -> ControllerFactory:
    _no_argument("oracle", arg)
    decisions = candidates(scenario)
    return lambda group: MyopicOracle(decisions)


@register("oracle-rollout", "oracle-rollout", "privileged oracle: Monte Carlo rounds on the true α path")
def _oracle_rollout(arg: str, scenario: Scenario) -> ControllerFactory:
    _no_argument("oracle-rollout", arg)
    decisions = candidates(scenario)
    return lambda group: RolloutOracle(decisions)
