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

import heapq
import itertools
from enum import IntEnum
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from dsd_gym.sim.distributions import sample_many

if TYPE_CHECKING:
    from dsd_gym.sim.metrics import Metrics


class JobKind(IntEnum):
    VERIFY = 0  # distributed round: γ draft tokens + 1 position
    FUSED = 1  # fused round: cloud draft γ tokens, then verify γ + 1 positions
    DECODE = 2  # autoregressive: one new token
    PREFILL = 3  # a prompt (or a context re-prefill after a failure)
    BACKGROUND_VERIFY = 4
    BACKGROUND_PREFILL = 5


class Job:
    """One unit of work at a target. ``tokens`` counts new tokens still to process."""

    __slots__ = (
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
        self.tokens = tokens
        self.context = context
        self.gamma = gamma
        self.owner = owner
        self.epoch = epoch
        self.sent_s = sent_s
        self.arrived_s = 0.0
        self.started_s = -1.0
        self.done_s = 0.0
        self.queue_depth = 0
        self.batch_size = 0
        self.response_bytes = 0


class BackgroundStream:
    """Poisson verify and prefill jobs from other tenants, drawn in blocks from its own stream."""

    BLOCK = 2048

    def __init__(self, spec: Any, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self.rate = spec.verify_rate_per_s + spec.prefill_rate_per_s
        self.p_prefill = spec.prefill_rate_per_s / self.rate if self.rate > 0 else 0.0
        self._times: list[float] = []
        self._kinds: list[bool] = []
        self._sizes: list[int] = []
        self._i = 0
        self._clock = 0.0
        self.next_s = float("inf")
        if self.rate > 0:
            self._refill()

    def _refill(self) -> None:
        n, rng, spec = self.BLOCK, self.rng, self.spec
        times = self._clock + np.cumsum(rng.exponential(1.0 / self.rate, n))
        prefill = rng.random(n) < self.p_prefill
        context = np.maximum(1, np.rint(sample_many(spec.context_tokens, rng, n)))
        prompt = np.maximum(1, np.rint(sample_many(spec.prefill_tokens, rng, n)))
        self._times = times.tolist()
        self._kinds = prefill.tolist()
        self._sizes = np.where(prefill, prompt, context).astype(int).tolist()
        self._clock = self._times[-1]
        self._i = 0
        self.next_s = self._times[0]

    def pop_due(self, now: float) -> list[Job]:
        """Every background job that has arrived by ``now``, in arrival order."""
        jobs = []
        while self.next_s <= now:
            i = self._i
            if self._kinds[i]:
                job = Job(JobKind.BACKGROUND_PREFILL, self._sizes[i], 0)
            else:
                job = Job(JobKind.BACKGROUND_VERIFY, self.spec.verify_tokens, self._sizes[i])
            job.arrived_s = self._times[i]
            jobs.append(job)
            self._i = i + 1
            if self._i == len(self._times):
                self._refill()
            else:
                self.next_s = self._times[self._i]
        return jobs


class Target:
    """One cloud target: a tensor-parallel GPU group running the target model."""

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
        self.background = background
        self.max_batch_size = group.max_batch_size
        self.max_batch_tokens = group.max_batch_tokens
        self.chunk = group.prefill_chunk_tokens
        self.queue: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self.batch: list[tuple[Job, int]] = []
        self.busy = False
        self.up = True
        self.epoch = 0
        self._wake_at = -1.0
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
        now = self.env.now
        job.arrived_s = now
        job.queue_depth = len(self.queue)
        heapq.heappush(self.queue, (now, next(self._seq), job))
        if not self.busy:
            self._start()

    # -- the batcher ---------------------------------------------------------------------------

    def _start(self) -> None:
        env, queue = self.env, self.queue
        now = env.now
        if self.background is not None and self.background.next_s <= now:
            for job in self.background.pop_due(now):
                heapq.heappush(queue, (job.arrived_s, next(self._seq), job))
        if not queue:
            self.busy = False
            self._schedule_wake()
            return
        budget, slots = self.max_batch_tokens, self.max_batch_size
        batch: list[tuple[Job, int]] = []
        n_tokens = context_sum = 0
        attention = 0.0
        fused = False
        while queue and slots > 0 and budget > 0:
            job = queue[0][2]
            if job.kind == JobKind.PREFILL or job.kind == JobKind.BACKGROUND_PREFILL:
                take = min(job.tokens, budget, self.chunk)
            elif job.tokens <= budget:
                take = job.tokens
            else:
                break
            heapq.heappop(queue)
            if job.started_s < 0:
                job.started_s = now
            batch.append((job, take))
            slots -= 1
            budget -= take
            n_tokens += take
            context_sum += job.context
            attention += take * (job.context + (take + 1) / 2)
            fused = fused or job.kind == JobKind.FUSED
        duration = self.cost.iteration_s(len(batch), n_tokens, context_sum, attention)
        if fused:
            duration += self._cloud_draft_s(batch)
        self.batch = batch
        self.busy = True
        self.metrics.on_iteration(self, now, duration, len(batch), n_tokens)
        epoch = self.epoch
        env.timeout(duration).callbacks.append(lambda _e: self._finish(epoch))

    def _cloud_draft_s(self, batch: list[tuple[Job, int]]) -> float:
        """The fused jobs' draft passes: pass k batches every fused job with γ >= k."""
        drafts = [job for job, _ in batch if job.kind == JobKind.FUSED]
        total = 0.0
        for k in range(max(job.gamma for job in drafts)):
            live = [job for job in drafts if job.gamma > k]
            context = sum(job.context + k for job in live)
            total += self.draft_cost.iteration_s(len(live), len(live), context, context + len(live))
        return total

    def _finish(self, epoch: int) -> None:
        if epoch != self.epoch:
            return  # the target failed during this iteration; its jobs are already dropped
        now = self.env.now
        batch, self.batch = self.batch, []
        size = len(batch)
        for job, take in batch:
            job.tokens -= take
            if job.tokens > 0:
                heapq.heappush(self.queue, (job.arrived_s, next(self._seq), job))
                continue
            job.done_s = now
            job.batch_size = size
            if job.owner is not None:
                job.owner.on_job_done(job)
            else:
                self.metrics.on_background_job(job)
        self._start()

    def _schedule_wake(self) -> None:
        """While idle, the next background arrival must start an iteration by itself."""
        if self.background is None or not self.up:
            return
        at = self.background.next_s
        if at == self._wake_at or at == float("inf"):
            return
        self._wake_at = at
        self.env.timeout(at - self.env.now).callbacks.append(self._wake)

    def _wake(self, _event: simpy.Event) -> None:
        if not self.busy and self.up:
            self._start()

    # -- failures ------------------------------------------------------------------------------

    def _drop(self, job: Job) -> None:
        if job.owner is not None:
            job.owner.on_job_lost(job)

    def _failures(self, rng: np.random.Generator):
        """Alternate up and down times: exponential with means MTBF and MTTR."""
        group = self.group
        while True:
            yield self.env.timeout(float(rng.exponential(group.mtbf_s)))
            self.up = False
            self.epoch += 1  # the KV cache and every job in flight are gone
            lost = [job for job, _ in self.batch] + [job for _, _, job in self.queue]
            self.batch, self.queue, self.busy = [], [], False
            self.metrics.on_failure(self, self.env.now)
            for job in lost:
                self._drop(job)
            yield self.env.timeout(float(rng.exponential(group.mttr_s)))
            self.up = True
            if self.background is not None:
                self.background.pop_due(self.env.now)  # arrivals while down were refused
            self._start()


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
