"""The cloud: targets with an iteration-level batcher, background load, failures, and a router.

A target runs Orca-style iterations: when one ends it takes queued jobs in arrival order up to
``max_batch_size`` sequences and ``max_batch_tokens`` new tokens; a prefill larger than the budget
(or than ``prefill_chunk_tokens``) runs in chunks over several iterations (Sarathi/vLLM chunked
prefill). The iteration's time comes from the latency model over the batch's sufficient statistics;
fused-mode jobs add the cloud draft's γ sequential passes, batched across fused jobs.

Background load from a stochastic stream is merged into the queue lazily, by arrival time, when a
batch is formed: it costs no simulation event while the target is busy.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from enum import IntEnum
from heapq import heappop, heappush
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from dsd_gym.sim.distributions import sample_many
from dsd_gym.sim.schedule import Call, call_later

if TYPE_CHECKING:
    from dsd_gym.sim.metrics import Metrics


class JobKind(IntEnum):
    VERIFY = 0  # distributed round: γ draft tokens + 1 position
    FUSED = 1  # fused round: cloud draft γ tokens, then verify γ + 1 positions
    DECODE = 2  # autoregressive: one new token
    PREFILL = 3  # a prompt (or a context re-prefill after a failure)
    BACKGROUND_VERIFY = 4
    BACKGROUND_PREFILL = 5


# Bound once: in Python 3.11 reading an attribute of an Enum class costs about ten global reads, and
# the batcher compares job kinds for every job of every batch.
_FUSED = JobKind.FUSED
_CHUNKED = frozenset((JobKind.PREFILL, JobKind.BACKGROUND_PREFILL))  # kinds whose tokens may span iterations
_INF = float("inf")


class Job:
    """One unit of work at a target. ``tokens`` counts new tokens still to process.

    A job on its way to its target is its own scheduled action (``schedule.deliver_later``): hence
    ``callbacks`` and ``_ok``, all that ``Environment.step`` reads of it.
    """

    __slots__ = (
        "callbacks",
        "_ok",
        "kind",
        "tokens",
        "context",
        "gamma",
        "owner",
        "epoch",
        "arrived_s",
        "started_s",
        "done_s",
        "queue_depth",
        "batch_size",
        "response_bytes",
        "sent_s",
    )

    def __init__(
        self,
        kind: JobKind,
        tokens: int,
        context: int,
        gamma: int = 0,
        owner: Any = None,
        epoch: int = 0,
        sent_s: float = 0.0,
    ) -> None:
        self.kind = kind
        self.owner = owner
        self.renew(tokens, context, gamma, epoch)
        self.sent_s = sent_s

    def renew(self, tokens: int, context: int, gamma: int, epoch: int) -> None:
        """Make this job a new one of its kind and owner, as if just built.

        A session has one round in flight at a time: it renews one verify job every round instead of
        building one (an object per round is a measurable share of it). Only a job the target is done
        with (completed or dropped) may be renewed.
        """
        self.tokens = tokens
        self.context = context
        self.gamma = gamma
        self.epoch = epoch
        self.sent_s = 0.0
        self.arrived_s = 0.0
        self.started_s = -1.0
        self.done_s = 0.0
        self.queue_depth = 0
        self.batch_size = 0
        self.response_bytes = 0


class BackgroundStream:
    """Poisson verify and prefill jobs from other tenants, drawn in blocks from its own stream.

    Arrivals live in plain lists read through ``head``; a verify job never becomes an object (it
    only takes a batch slot and tokens), which keeps heavy background load cheap to simulate.
    """

    BLOCK = 2048

    def __init__(self, spec: Any, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self.verify_tokens = spec.verify_tokens
        self.rate = spec.verify_rate_per_s + spec.prefill_rate_per_s
        self.p_prefill = spec.prefill_rate_per_s / self.rate if self.rate > 0 else 0.0
        self.times: list[float] = []
        self.prefill: list[bool] = []
        self.sizes: list[int] = []  # context tokens of a verify, prompt tokens of a prefill
        # Running sums of ``sizes`` (sum of sizes[i:j] = _cum[j] - _cum[i]) and the indices of the
        # prefill arrivals: ``take_verifies`` runs once per background batch and needs both.
        self._cum: list[int] = [0]
        self._prefills: list[int] = []
        self.head = 0
        self._clock = 0.0
        self._extend()

    def _extend(self) -> None:
        """Append a block of arrivals (an infinite arrival time when the rate is zero)."""
        head = self.head
        if head >= self.BLOCK:  # forget what has been served
            del self.times[:head], self.prefill[:head], self.sizes[:head], self._cum[:head]
            self._prefills = [i - head for i in self._prefills if i >= head]
            self.head = 0
        if self.rate == 0:
            self.times.append(float("inf"))
            self.prefill.append(False)
            self.sizes.append(0)
            self._cum.append(self._cum[-1])
            return
        n, rng, spec = self.BLOCK, self.rng, self.spec
        times = self._clock + np.cumsum(rng.exponential(1.0 / self.rate, n))
        prefill = rng.random(n) < self.p_prefill
        context = np.maximum(1, np.rint(sample_many(spec.context_tokens, rng, n)))
        prompt = np.maximum(1, np.rint(sample_many(spec.prefill_tokens, rng, n)))
        sizes = np.where(prefill, prompt, context).astype(np.int64)
        self._prefills.extend((np.flatnonzero(prefill) + len(self.times)).tolist())
        self.times.extend(times.tolist())
        self.prefill.extend(prefill.tolist())
        self.sizes.extend(sizes.tolist())
        self._cum.extend((self._cum[-1] + np.cumsum(sizes)).tolist())
        self._clock = self.times[-1]

    def next_s(self) -> float:
        """Arrival time of the next unserved job."""
        if self.head + 1 >= len(self.times):
            self._extend()
        return self.times[self.head]

    def take_verifies(
        self, now: float, before_s: float, most: int, unless_prefill: bool = False
    ) -> tuple[int, int]:
        """Serve up to ``most`` due verify arrivals in a row (those before ``before_s``).

        Returns (jobs taken, their summed context tokens); stops at a prefill arrival. With
        ``unless_prefill``, takes nothing when it would stop at a due prefill short of ``most``
        (that prefill belongs in the same batch).
        """
        times = self.times
        while times[-1] <= now:
            self._extend()
            times = self.times
        head = self.head
        end = bisect_right(times, now, head, min(head + most, len(times)))
        if before_s <= now:  # else every arrival up to now is before before_s
            end = bisect_left(times, before_s, head, end)
        prefills = self._prefills
        i = bisect_left(prefills, head)
        if i < len(prefills) and prefills[i] < end:
            end = prefills[i]
            if unless_prefill and end < head + most and times[end] <= now:
                return 0, 0
        self.head = end
        cum = self._cum
        return end - head, cum[end] - cum[head]

    def skip_until(self, now: float) -> None:
        """Refuse every arrival up to ``now`` (the target was down)."""
        while self.next_s() <= now:
            self.head += 1

    def prefill_job(self) -> Job:
        """Turn the head arrival (a prefill) into a job: prefills may take several iterations."""
        i = self.head
        job = Job(JobKind.BACKGROUND_PREFILL, self.sizes[i], 0)
        job.arrived_s = self.times[i]
        self.head = i + 1
        return job


def fused_drafts(batch: list[tuple[Job, int]]) -> list[tuple[int, int]]:
    """(γ, context) of each fused job of a batch, what :func:`draft_passes` takes."""
    return [(job.gamma, job.context) for job, _ in batch if job.kind == _FUSED]


def draft_passes(draft_cost: Any, drafts: Sequence[tuple[int, int]]) -> list[tuple[float, int]]:
    """(duration, jobs drafting in it) of each fused-draft pass for fused jobs of (γ, context)
    ``drafts``: pass k batches every job with γ > k. Empty without fused jobs. The target's iteration
    (:meth:`Target._cloud_draft_s`), the oracle's projection and the env's externality all use it."""
    iteration_s = draft_cost.iteration_s
    passes = []
    for k in range(max((gamma for gamma, _ in drafts), default=0)):
        live = context = 0
        for gamma, job_context in drafts:
            if gamma > k:
                live += 1
                context += job_context + k
        passes.append((iteration_s(live, live, context, context + live), live))
    return passes


class Target:
    """One cloud target: a tensor-parallel GPU group running the target model.

    While no session's job is queued, the target only serves background load, and nobody waits on
    those iterations: it then plays them lazily (``_catch_up``), without simulation events, up to the
    moment a session's job arrives, a failure strikes, or the run ends. The iteration sequence is
    exactly the one event-driven batching would produce; it just costs no event per iteration.
    """

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        group: Any,
        cost: Any,
        draft_cost: Any,
        metrics: Metrics,
        background: BackgroundStream | None = None,
        failure_rng: np.random.Generator | None = None,
    ) -> None:
        self.env = env
        self.index = index
        self.name = f"{group.name}[{index}]"
        self.group = group
        self.cost = cost
        self.draft_cost = draft_cost
        self.metrics = metrics
        self._metered = metrics.enabled  # fixed for the run: a NoMetrics is never replaced
        self.background = background
        self.max_batch_size = group.max_batch_size
        self.max_batch_tokens = group.max_batch_tokens
        self.chunk = group.prefill_chunk_tokens
        self.queue: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self.arrival_callbacks = [self.submit]  # what a job delivered here runs (schedule.deliver_later)
        self.batch: list[tuple[Job, int]] = []
        self.busy = False  # an event-driven iteration is running (or a lazy one a job waits for)
        self.up = True
        self.epoch = 0
        self._busy_until = 0.0  # planned end of the running iteration
        self._owned = 0  # queued jobs that belong to sessions
        self._lazy = background is not None  # playing background-only iterations lazily
        self._clock = 0.0  # lazy mode: when the next background-only batch is formed
        # Called as on_batch(target, batch, size, n_tokens, context_sum, attention) for every iteration
        # that holds session jobs (the env's externality accounting, dsd_gym.envs.externality).
        self.on_batch: Any = None
        if failure_rng is not None and group.mtbf_s is not None:
            env.process(self._failures(failure_rng))

    def load(self) -> int:
        """Jobs queued or running: what join-shortest-queue compares."""
        return len(self.queue) + len(self.batch)

    def submit(self, job: Job) -> None:
        """A job arrives now. A down target, or one that lost the job's KV cache, drops it."""
        if not self.up or job.epoch != self.epoch:
            self._drop(job)
            return
        now = self.env._now  # the clock without the property call (a submit per round)
        if self._lazy:
            self._catch_up(now)
        job.arrived_s = now
        job.queue_depth = len(self.queue)
        heappush(self.queue, (now, next(self._seq), job))
        self._owned += 1
        if self._lazy:
            self._lazy = False
            if self._clock > now:  # a background iteration is running: the job joins the next one
                self.busy = True
                epoch = self.epoch
                call_later(self.env, self._clock - now, self._resume, epoch)
                return
        if not self.busy:
            self._start(now)

    def settle(self, now: float) -> None:
        """Account for background-only iterations up to ``now`` (before metrics are read)."""
        if self._lazy and self.up:
            self._catch_up(now)

    # -- the batcher ---------------------------------------------------------------------------

    def _form(self, now: float) -> tuple[list[tuple[Job, int]], int, int, float]:
        """The next batch at ``now``: queued jobs and due background arrivals, oldest first.

        Returns (queued jobs with the tokens each processes, batch size, new tokens, duration).
        """
        queue, background = self.queue, self.background
        inf = _INF
        budget, slots = self.max_batch_tokens, self.max_batch_size
        batch: list[tuple[Job, int]] = []
        background_verifies = n_tokens = context_sum = owned = 0  # owned: session jobs taken
        attention = 0.0
        fused = False
        arrival = None  # the next background arrival, asked again only once background work is taken
        while slots > 0 and budget > 0:
            queued_s = queue[0][0] if queue else inf
            if background is not None:
                if arrival is None:
                    arrival = background.next_s()
                if arrival <= now and arrival < queued_s:
                    arrival = None
                    if background.prefill[background.head]:
                        job = background.prefill_job()
                        heappush(queue, (job.arrived_s, next(self._seq), job))
                        continue
                    take = background.verify_tokens
                    k, context = background.take_verifies(now, queued_s, min(slots, budget // take))
                    if k == 0:
                        break
                    background_verifies += k
                    slots -= k
                    budget -= k * take
                    n_tokens += k * take
                    context_sum += context
                    attention += take * (context + k * (take + 1) / 2)
                    continue
            if not queue:
                break
            job = queue[0][2]
            kind = job.kind
            if kind in _CHUNKED:
                take = min(job.tokens, budget, self.chunk)
            elif job.tokens <= budget:
                take = job.tokens
            else:
                break
            heappop(queue)
            if job.owner is not None:
                owned += 1
            if job.started_s < 0.0:
                job.started_s = now
            batch.append((job, take))
            slots -= 1
            budget -= take
            n_tokens += take
            context = job.context
            context_sum += context
            attention += take * (context + (take + 1) / 2)
            if kind is _FUSED:  # job kinds are JobKind members: identity, not IntEnum's generic ==
                fused = True
        self._owned -= owned
        size = len(batch) + background_verifies
        if size == 0:
            return batch, 0, 0, 0.0
        duration = self.cost.iteration_s(size, n_tokens, context_sum, attention)
        if fused:
            duration += self._cloud_draft_s(batch)
        if self.on_batch is not None and batch:
            self.on_batch(self, batch, size, n_tokens, context_sum, attention)
        if self._metered:
            self.metrics.on_iteration(self, now, duration, size, n_tokens, background_verifies)
        return batch, size, n_tokens, duration

    def _start(self, now: float) -> None:
        """Start an event-driven iteration now, or go lazy when only background work is left."""
        if self._owned == 0 and self.background is not None:
            self._lazy = True
            self._clock = self._busy_until = now  # no iteration running yet
            self.busy = False
            return
        batch, size, _, duration = self._form(now)
        if size == 0:
            self.busy = False
            return
        self.batch = batch
        self.busy = True
        self._busy_until = now + duration
        epoch = self.epoch
        # The end as SimPy's clock will read it (now + delay), so _finish need not ask the clock.
        call_later(self.env, duration, self._finish, (epoch, size, now + duration))

    def _catch_up(self, t: float) -> None:
        """Play the background-only iterations that start by ``t``; nobody observes their jobs.

        The common lazy iteration, a batch of background verifies alone, is played here in one bulk
        step (inline: it runs several times per round of a session). It gives up, leaving the stream
        as it was, when a due prefill would join the batch; ``_form`` handles that case. The batch is
        the one ``_form`` would build.
        """
        background, cost, metrics = self.background, self.cost, self.metrics
        take = background.verify_tokens
        most = min(self.max_batch_size, self.max_batch_tokens // take)
        clock = self._clock
        while clock <= t:
            if not self.queue:
                arrival = background.next_s()
                if arrival > t:
                    break  # idle until after t
                if arrival > clock:
                    clock = arrival
                if not background.prefill[background.head]:
                    # k = 0 when a due prefill would join this batch: ``_form`` builds that one.
                    k, context = background.take_verifies(clock, _INF, most, unless_prefill=True)
                    if k:
                        n_tokens = k * take
                        attention = take * (context + k * (take + 1) / 2)
                        duration = cost.iteration_s(k, n_tokens, context, attention)
                        if self._metered:
                            metrics.on_iteration(self, clock, duration, k, n_tokens, k)
                        self._busy_until = clock = clock + duration
                        continue
            self._clock = clock
            batch, size, _, duration = self._form(clock)
            if size == 0:
                return
            self._busy_until = clock = self._clock = clock + duration
            self._complete(batch, size, clock)
        self._clock = clock

    def _resume(self, call: Call) -> None:
        """The background iteration a session's job waited for has ended (``call.value``: the epoch)."""
        if call.value == self.epoch:
            self.busy = False
            self._start(self.env.now)

    def _cloud_draft_s(self, batch: list[tuple[Job, int]]) -> float:
        """The fused jobs' draft passes (:func:`draft_passes`)."""
        return sum(duration for duration, _ in draft_passes(self.draft_cost, fused_drafts(batch)))

    def _complete(self, batch: list[tuple[Job, int]], size: int, now: float) -> None:
        """Jobs of an iteration ending at ``now``: unfinished prefills queue again, the rest are done."""
        for job, take in batch:
            job.tokens -= take
            owner = job.owner
            if job.tokens > 0:
                heappush(self.queue, (job.arrived_s, next(self._seq), job))
                if owner is not None:
                    self._owned += 1
                continue
            job.done_s = now
            job.batch_size = size
            if owner is not None:
                owner.on_job_done(job)

    def _finish(self, call: Call) -> None:
        """An event-driven iteration ends now (``call.value``: its epoch, batch size and end time)."""
        epoch, size, now = call.value
        if epoch != self.epoch:
            return  # the target failed during this iteration; its jobs are already dropped
        batch, self.batch = self.batch, []
        self._complete(batch, size, now)
        self._start(now)

    # -- failures ------------------------------------------------------------------------------

    def _drop(self, job: Job) -> None:
        if job.owner is not None:
            job.owner.on_job_lost(job)

    def _failures(self, rng: np.random.Generator):
        """Alternate up and down times: exponential with means MTBF and MTTR."""
        group, env = self.group, self.env
        while True:
            yield env.timeout(float(rng.exponential(group.mtbf_s)))
            now = env.now
            if self._lazy:
                self._catch_up(now)
            running = self.busy or (self._lazy and self._busy_until > now)
            self.up = False
            self.epoch += 1  # the KV cache and every job in flight are gone
            lost = [job for job, _ in self.batch] + [job for _, _, job in self.queue]
            self.batch, self.queue, self.busy, self._lazy, self._owned = [], [], False, False, 0
            # The running iteration dies now: it is not busy time beyond the failure.
            self.metrics.on_failure(self, now, self._busy_until if running else now)
            self._busy_until = now
            for job in lost:
                self._drop(job)
            yield env.timeout(float(rng.exponential(group.mttr_s)))
            self.up = True
            if self.background is not None:
                self.background.skip_until(env.now)  # arrivals while down were refused
            self._start(env.now)


class Router:
    """Picks a healthy target for a new (or re-routed) request."""

    def __init__(self, kind: str, targets: list[Target], rng: np.random.Generator) -> None:
        self.kind = kind
        self.targets = targets
        self.rng = rng
        self._next = 0

    def pick(self) -> Target | None:
        healthy = [t for t in self.targets if t.up]
        if not healthy:
            return None
        if self.kind == "jsq":
            return min(healthy, key=Target.load)
        if self.kind == "round_robin":
            target = healthy[self._next % len(healthy)]
            self._next += 1
            return target
        return healthy[int(self.rng.integers(len(healthy)))]
