"""A session: one user on an edge device, serving its requests one at a time (DESIGN §3).

A request's life: arrival -> prompt upload -> target prefill (the edge prefills its draft in
parallel) -> first token at the edge (TTFT) -> decode rounds until its output length is committed.
Before each round the session asks its controller for a decision; every round commits A + 1 tokens.

The prefill and the end of a request run as a SimPy process; the decode rounds in between are a
chain of plain event callbacks (decide -> draft done -> uplink delivered -> reply delivered ->
decide ...), which costs two or three events per round and no process switch. On a device with one
session the uplink is booked at decision time. The link and the edge device are FIFO servers
computed arithmetically.
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import TYPE_CHECKING, Any

import simpy

from dsd_gym.sim.cloud import Job, JobKind
from dsd_gym.sim.controller import Decision, Mode
from dsd_gym.sim.records import Request, RoundRecord
from dsd_gym.sim.schedule import Call, call_later, deliver_later, succeed_later

if TYPE_CHECKING:
    from dsd_gym.sim.system import EdgeDevice, Simulation

LOST = object()  # the value a session wakes with when its job was lost (timed out)

# Enum members bound once: in Python 3.11 reading an attribute of an Enum class costs about ten
# global reads, and the round path compares modes and job kinds several times per round.
DISTRIBUTED, FUSED = Mode.DISTRIBUTED, Mode.FUSED
VERIFY, PREFILL = JobKind.VERIFY, JobKind.PREFILL
# A round in flight keeps its mode as a plain int, the value its record and the metrics take.
DISTRIBUTED_ROUND = int(Mode.DISTRIBUTED)


class Session:
    """One user. ``telemetry`` is the edge-observable feature tracker (or None when unused);
    ``round_hook(record, session)`` sees each of this session's rounds (the simulation's
    ``round_hook`` unless replaced: the env hooks only the sessions it drives)."""

    def __init__(
        self,
        sim: Simulation,
        sid: int,
        device: EdgeDevice,
        controller: Any,
        telemetry: Any,
        acceptance: Any,
        background: bool,
    ) -> None:
        self.sim = sim
        self.env = sim.env
        self.sid = sid
        self.device = device
        self.link = device.link
        self.controller = controller
        self.telemetry = telemetry
        self.round_hook = sim.round_hook
        self.acceptance = acceptance
        self.background = background
        self.request: Request | None = None
        self._pending: simpy.Event | None = None  # the prefill's reply
        self._pending_job: Job | None = None
        self._verify_job = Job(VERIFY, 0, 0, owner=self)  # renewed every distributed round (Job.renew)
        self._reply_callbacks = [self._round_done]  # what a reply runs (schedule.deliver_later)
        self._decoding: simpy.Event | None = None  # succeeds when the decode rounds end (or LOST)
        self._round: tuple = ()  # the round in flight: mode, γ, A, position, context, start, draft end
        self.rounds = 0
        self.tokens = 0  # output tokens committed over the session's life
        self.completed = 0  # requests completed
        self.last_decision: Decision | None = None
        self._checked: Decision | None = None  # the last decision found allowed (decisions are frozen)
        payload = sim.scenario.payload
        self._header = payload.header_bytes
        self._token_bytes = payload.token_bytes
        self._draft_bytes = payload.draft_token_bytes
        self._reply_bytes = payload.header_bytes + payload.server_telemetry_bytes
        self._timeout_s = sim.scenario.cloud.request_timeout_ms / 1e3
        self._choices = frozenset(sim.scenario.control.window_choices)
        self._modes = frozenset(Mode.parse(m) for m in sim.scenario.control.modes)
        # That is 29 attributes, the most CPython 3.11 keeps in an instance's shared dict keys: a 30th
        # despecialises every attribute read of every session (+1 % instructions with 32 sessions).

    # -- callbacks from the target ---------------------------------------------------------------

    def on_job_done(self, job: Job) -> None:
        """The target finished our job: its response travels down the link (if the edge waits)."""
        if job is not self._pending_job:
            return
        env = self.env
        now = job.done_s  # the target calls back as the job is done
        kind = job.kind
        # The job itself carries the reply back: it is the action that runs _round_done.
        if kind is VERIFY:  # job kinds are JobKind members: identity, not IntEnum's generic ==
            delay = self.link.send_down(now, job.response_bytes) - now
            deliver_later(env, delay, job, self._reply_callbacks)
        elif kind is PREFILL:
            succeed_later(env, self._pending, self.link.send_down(now, job.response_bytes) - now, job)
        else:  # fused, autoregressive: the next round starts at the cloud; tokens stream down
            deliver_later(env, 0.0, job, self._reply_callbacks)

    def on_job_lost(self, job: Job) -> None:
        """Our job died with its target: the edge notices when its request times out."""
        if job is not self._pending_job:
            return
        delay = max(0.0, job.sent_s + self._timeout_s - self.env.now)
        succeed_later(self.env, self._pending if job.kind == JobKind.PREFILL else self._decoding, delay, LOST)

    def _wait(self, job: Job) -> simpy.Event:
        self._pending = self.env.event()
        self._pending_job = job
        return self._pending

    # -- a request's life ----------------------------------------------------------------------

    def serve(self, req: Request) -> Generator[simpy.Event, Any, None]:
        """The request as a process: prefill, the decode rounds (a chain of callbacks), the end."""
        self.request = req
        sim = self.sim
        sim.active += 1
        yield from self._prefill(req)
        while True:
            self._decoding = self.env.event()
            self._next_round()
            if (yield self._decoding) is not LOST:
                break
            req.reprefills += 1
            yield from self._prefill(req)
        if req.last_token_s > self.env.now:  # streamed tokens (fused, autoregressive) still on the way
            yield self.env.timeout(req.last_token_s - self.env.now)
        req.done_s = req.last_token_s
        sim.active -= 1
        self.completed += 1
        sim.metrics.on_request_done(req, self)
        self.request = None

    def _prefill(self, req: Request) -> Generator[simpy.Event, Any, None]:
        """Upload the context and prefill it on a healthy target (again, after a failure)."""
        env, sim = self.env, self.sim
        device = self.device
        context = req.prompt_tokens + req.committed
        if req.committed == 0:
            start = max(env.now, device.busy_until)
            device.busy_until = start + device.cost.prefill_s(req.prompt_tokens)
            req.draft_pos = 0
        while True:
            target = sim.router.pick()
            if target is None:
                yield env.timeout(self._timeout_s)
                continue
            sent = env.now
            arrive = self.link.send_up(sent, self._header + context * self._token_bytes)
            yield env.timeout(arrive - sent)
            job = Job(JobKind.PREFILL, context, 0, owner=self, epoch=target.epoch, sent_s=sent)
            job.response_bytes = self._reply_bytes + self._token_bytes
            waiting = self._wait(job)
            target.submit(job)
            result = yield waiting
            if result is not LOST:
                break
        telemetry = self.telemetry
        if telemetry is not None:  # the prefill's exchange measures the link, whatever mode follows
            network_s = (env.now - sent) - (job.done_s - job.arrived_s)
            telemetry.prefill(1e3 * network_s, 1e3 * device.cost.sequential_s(1, context), context)
        req.target = target
        req.kv_epoch = job.epoch
        if req.committed == 0:
            req.committed = 1  # the prefill's own output token
            req.first_token_s = env.now
            req.last_token_s = env.now
            self.tokens += 1
            sim.metrics.on_tokens(self, env.now, 1)

    # -- decode rounds: decide, play, complete, repeat ------------------------------------------

    def _next_round(self, decision: Decision | None = None) -> None:
        """Ask the controller for the next round's decision (unless it came from outside) and play it."""
        if decision is None:
            req = self.request
            if req.committed >= req.output_tokens:
                succeed_later(self.env, self._decoding, 0.0, None)
                return
            decision = self.controller.decide(self)
            if decision.__class__ is not Decision:  # an event: the decision comes from outside (the env)
                decision.callbacks.append(self._decided)
                return
        if decision is not self._checked:  # most controllers repeat one decision object: check it once
            self._check(decision)
        self.last_decision = decision
        if decision.mode == DISTRIBUTED:
            self._distributed(decision.gamma)
        else:
            self._cloud(decision)

    def _decided(self, event: simpy.Event) -> None:
        self._next_round(event.value)

    def _check(self, decision: Decision) -> None:
        if decision.mode not in self._modes or (
            decision.mode != Mode.AUTOREGRESSIVE and decision.gamma not in self._choices
        ):
            raise ValueError(
                f"controller decided {decision}; allowed modes {sorted(m.name for m in self._modes)} "
                f"and windows {sorted(self._choices)}"
            )
        self._checked = decision

    def _distributed(self, gamma: int, _call: Call | None = None) -> None:
        """Draft γ tokens on the edge, send them up; the target verifies; the reply comes down."""
        env, req = self.env, self.request
        start = env._now  # the clock without the property call (a round each)
        if req.last_token_s > start:  # the edge has not yet received streamed tokens
            call_later(env, req.last_token_s - start, partial(self._distributed, gamma))
            return
        device = self.device
        position = req.committed
        context = req.prompt_tokens + position
        draft_s = device.cost.sequential_s(gamma, context)
        behind = position - req.draft_pos
        if behind > 1:  # tokens committed by the cloud since the draft last ran
            draft_s += device.cost.prefill_s(behind - 1, context - behind)
        draft_end = (start if start > device.busy_until else device.busy_until) + draft_s
        device.busy_until = draft_end
        accepted = req.path.accepted_count(position, gamma)
        job = self._verify_job
        job.renew(gamma + 1, context, gamma, req.kv_epoch)
        job.response_bytes = self._reply_bytes + (accepted + 1) * self._token_bytes
        self._pending_job = job
        self._round = (DISTRIBUTED_ROUND, gamma, accepted, position, context, start, draft_end)
        nbytes = self._header + gamma * self._draft_bytes
        if device.exclusive:  # nobody else sends on this uplink: book the send now (as _send_now would)
            job.sent_s = draft_end
            arrive = self.link.send_up(draft_end, nbytes)
            deliver_later(env, arrive - start, job, req.target.arrival_callbacks)
        else:
            call_later(env, draft_end - start, partial(self._send_now, job, nbytes, req.target))

    def _send_now(self, job: Job, nbytes: int, target: Any, _call: Call) -> None:
        """The draft tokens leave the edge now; the job reaches the target on arrival."""
        now = self.env.now
        job.sent_s = now
        arrive = self.link.send_up(now, nbytes)
        deliver_later(self.env, arrive - now, job, target.arrival_callbacks)

    def _cloud(self, decision: Decision) -> None:
        """Fused or autoregressive: the round runs at the cloud; tokens stream to the edge."""
        req = self.request
        start = self.env.now
        position = req.committed
        context = req.prompt_tokens + position
        if decision.mode == FUSED:
            gamma = decision.gamma
            accepted = req.path.accepted_count(position, gamma)
            job = Job(JobKind.FUSED, gamma + 1, context, gamma, self, req.kv_epoch, start)
        else:
            gamma = accepted = 0
            job = Job(JobKind.DECODE, 1, context, 0, self, req.kv_epoch, start)
        self._pending_job = job
        self._round = (int(decision.mode), gamma, accepted, position, context, start, start)
        req.target.submit(job)

    def _round_done(self, job: Job) -> None:
        """The reply to ``job`` is at the edge (or, cloud-side, the round is over) now: commit A + 1
        tokens."""
        req = self.request
        mode, gamma, accepted, position, context, start, draft_end = self._round
        end = self.env._now  # the clock without the property call
        left = req.output_tokens - position
        committed = left if left < accepted + 1 else accepted + 1
        req.committed += committed
        if mode == DISTRIBUTED_ROUND:
            req.draft_pos = req.committed
            req.last_token_s = end
            # Split at job.arrived_s (the clock when the job reached the target), not at the computed
            # arrival: the clock gets there as now + (arrival - now), which can be an ulp short.
            draft_s = draft_end - start
            uplink_s = job.arrived_s - job.sent_s
            queue_s = job.started_s - job.arrived_s
            verify_s = job.done_s - job.started_s
            downlink_s = end - job.done_s
        else:
            req.last_token_s = self.link.send_down(end, self._header + committed * self._token_bytes)
            draft_s = uplink_s = downlink_s = 0.0
            queue_s = job.started_s - start
            verify_s = job.done_s - job.started_s
        req.rounds += 1
        self.tokens += committed
        self.rounds += 1
        metrics = self.sim.metrics  # read each round: meter() may have put a Tee in its place
        if metrics.enabled:
            metrics.on_round(
                self, req.last_token_s, mode, gamma, accepted, committed, start, end,
                draft_s, uplink_s, queue_s, verify_s, downlink_s,
            )  # fmt: skip
        # The record is built only for a reader: most other sessions have neither (a fixed window
        # needs no telemetry), and building it is a measurable share of a round.
        if self.telemetry is not None or self.round_hook is not None:
            record = RoundRecord(
                self.sid, req.rid, mode, gamma, accepted, committed, position, start, end, draft_s,
                uplink_s, queue_s, verify_s, downlink_s, job.queue_depth, job.batch_size, context,
            )  # fmt: skip
            if self.telemetry is not None:
                self.telemetry.update(record)
            if self.round_hook is not None:
                self.round_hook(record, self)
        self._next_round()
