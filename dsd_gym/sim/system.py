"""The whole simulated system, built from a scenario: devices, links, targets, router, workload.

>>> from dsd_gym.config import load_scenario
>>> from dsd_gym.controllers import FixedController
>>> from dsd_gym.sim import Decision, Simulation
>>> sim = Simulation(load_scenario("ideal"), lambda group: FixedController(Decision(4)))
>>> summary = sim.run()
>>> round(summary["tokens_per_round"], 1)  # (1 − 0.7^5) / (1 − 0.7) = 2.77 at α = 0.7
2.8
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import simpy

from dsd_gym.sim.acceptance import acceptance_path
from dsd_gym.sim.cloud import BackgroundStream, Router, Target
from dsd_gym.sim.controller import Controller
from dsd_gym.sim.distributions import sample, sample_tokens
from dsd_gym.sim.latency import cloud_draft_cost, edge_draft_cost, target_cost
from dsd_gym.sim.metrics import Metrics, NoMetrics, Tee
from dsd_gym.sim.network import Link, delay_process
from dsd_gym.sim.records import Request, RoundRecord
from dsd_gym.sim.session import Session
from dsd_gym.sim.streams import Stream, Streams
from dsd_gym.sim.traces import load_workload_trace

if TYPE_CHECKING:
    from dsd_gym.config.schema import DeviceGroup, Scenario


class EdgeDevice:
    """One edge device: its draft model is a FIFO server shared by the device's sessions."""

    __slots__ = ("index", "name", "group", "cost", "link", "busy_until", "exclusive")

    def __init__(self, index: int, group: DeviceGroup, cost: Any, link: Link) -> None:
        self.index = index
        self.name = f"{group.name}[{index}]"
        self.group = group
        self.cost = cost
        self.link = link
        self.busy_until = 0.0
        self.exclusive = False  # hosts exactly one session for the whole run


class Simulation:
    """One run of one scenario under one seed.

    ``controllers(group)`` builds the controller of every new session on a device of ``group``;
    ``telemetry(scenario)`` builds the feature tracker of every session whose controller reads it
    (a controller with ``observes = False``, like a fixed window, gets none: it would be wasted work);
    ``round_hook(record, session)`` sees every round (tests and the env use it);
    ``acceptance_profiles`` maps profile names used by a workload trace to their processes;
    ``metrics=False`` keeps no metrics (:class:`NoMetrics`: a run whose report nobody reads, such as
    the env's; :meth:`summary` and :meth:`meter` then refuse).
    """

    def __init__(
        self,
        scenario: Scenario,
        controllers: Callable[[DeviceGroup], Controller],
        seed: int | None = None,
        telemetry: Callable[[Scenario], Any] | None = None,
        round_hook: Callable[[RoundRecord, Session], None] | None = None,
        acceptance_profiles: dict[str, Any] | None = None,
        metrics: bool = True,
    ) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else int(seed)
        self.controllers = controllers
        self.telemetry = telemetry
        self._round_hook = round_hook
        self.acceptance_profiles = acceptance_profiles or {}
        self.env = simpy.Environment()
        self.streams = Streams(self.seed)
        self.metrics: Metrics | NoMetrics = self._new_metrics() if metrics else NoMetrics()
        self.path_margin = max(scenario.control.window_choices) + 1
        self.sessions: list[Session] = []  # the closed-loop sessions (open-loop ones come and go)
        self.arrived = 0
        self.active = 0  # requests arrived and not yet complete
        self._next_sid = 0
        self._build_cloud()
        self._build_devices()
        self._start_workload()

    # -- construction --------------------------------------------------------------------------

    @property
    def round_hook(self) -> Callable[[RoundRecord, Session], None] | None:
        return self._round_hook

    @round_hook.setter
    def round_hook(self, hook: Callable[[RoundRecord, Session], None] | None) -> None:
        """Every session's hook: those already built take it, and so do those built later."""
        self._round_hook = hook
        for session in self.sessions:
            session.round_hook = hook

    def _new_metrics(self) -> Metrics:
        s = self.scenario
        return Metrics(s.warmup_s, s.duration_s, s.slo.ttft_ms / 1e3, s.slo.tpot_ms / 1e3)

    def _build_cloud(self) -> None:
        cloud, streams = self.scenario.cloud, self.streams
        self.targets: list[Target] = []
        for group in cloud.targets:
            cost, draft = target_cost(group), cloud_draft_cost(group)
            for _ in range(group.count):
                i = len(self.targets)
                background = None
                if cloud.background.kind == "stochastic":
                    background = BackgroundStream(cloud.background, streams.rng(Stream.BACKGROUND, i))
                self.targets.append(
                    Target(
                        self.env,
                        i,
                        group,
                        cost,
                        draft,
                        self.metrics,
                        background,
                        streams.rng(Stream.FAILURES, i),
                    )
                )
        self.router = Router(cloud.router, self.targets, streams.rng(Stream.ROUTER))

    def _build_devices(self) -> None:
        streams = self.streams
        self.devices: list[EdgeDevice] = []
        for group in self.scenario.devices:
            cost = edge_draft_cost(group)
            for _ in range(group.count):
                i = len(self.devices)
                delay = delay_process(group.link, streams.rng(Stream.NETWORK, i))
                link = Link(
                    group.link, delay, streams.rng(Stream.LOSS_UP, i), streams.rng(Stream.LOSS_DOWN, i)
                )
                self.devices.append(EdgeDevice(i, group, cost, link))
        self.foreground_devices = [d for d in self.devices if d.group.policy is None]

    def _new_session(self, device: EdgeDevice, keep: bool = True) -> Session:
        group = device.group
        acceptance = group.acceptance or self.scenario.acceptance
        controller = self.controllers(group)
        observes = getattr(controller, "observes", True)
        telemetry = self.telemetry(self.scenario) if self.telemetry is not None and observes else None
        session = Session(
            self,
            self._next_sid,
            device,
            controller,
            telemetry,
            acceptance,
            background=group.policy is not None,
        )
        self._next_sid += 1
        if keep:
            self.sessions.append(session)
        return session

    def _request(self, session: Session, key: tuple[int, ...], arrival: float, prompt: int, output: int,
                 process: Any = None) -> Request:  # fmt: skip
        self.arrived += 1
        path = acceptance_path(
            process or session.acceptance,
            output + self.path_margin,
            self.streams.rng(Stream.ACCEPTANCE, *key),
        )
        return Request(self.arrived - 1, session.sid, arrival, prompt, output, path)

    # -- workloads -----------------------------------------------------------------------------

    def _start_workload(self) -> None:
        workload = self.scenario.workload
        for device in self.devices:
            background = device.group.policy is not None
            if workload.kind == "closed_loop" or background:
                device.exclusive = device.group.sessions == 1  # open-loop arrivals go elsewhere
                for _ in range(device.group.sessions):
                    self.env.process(self._closed_loop(self._new_session(device)))
        if workload.kind == "poisson":
            self.env.process(self._poisson(workload))
        elif workload.kind == "trace":
            self.env.process(self._trace(workload))

    def _task(self) -> Any:
        """The closed-loop task (the schema refuses background groups beside a trace workload)."""
        return self.scenario.workload.task

    def _think(self) -> Any:
        workload = self.scenario.workload
        return workload.think_time_s if workload.kind == "closed_loop" else None

    def _closed_loop(self, session: Session) -> Generator[simpy.Event, Any, None]:
        """Think, request, wait for the answer, repeat. The first think staggers the start."""
        env, task, think = self.env, self._task(), self._think()
        lengths = self.streams.rng(Stream.LENGTHS, session.sid)
        thinking = self.streams.rng(Stream.THINK, session.sid)
        k = 0
        while True:
            if think is not None:
                yield env.timeout(sample(think, thinking))
            prompt = sample_tokens(task.prompt_tokens, lengths)
            output = sample_tokens(task.output_tokens, lengths)
            req = self._request(session, (session.sid, k), env.now, prompt, output)
            yield from session.serve(req)
            k += 1

    def _poisson(self, workload: Any) -> Generator[simpy.Event, Any, None]:
        """Open loop: each arrival is a new one-request session on a random foreground device."""
        env, rng = self.env, self.streams.rng(Stream.ARRIVALS)
        devices = self.foreground_devices
        i = 0
        while True:
            yield env.timeout(float(rng.exponential(1.0 / workload.rate_per_s)))
            device = devices[int(rng.integers(len(devices)))]
            prompt = sample_tokens(workload.task.prompt_tokens, rng)
            output = sample_tokens(workload.task.output_tokens, rng)
            session = self._new_session(device, keep=False)
            env.process(session.serve(self._request(session, (i,), env.now, prompt, output)))
            i += 1

    def _trace(self, workload: Any) -> Generator[simpy.Event, Any, None]:
        env, rng = self.env, self.streams.rng(Stream.ARRIVALS)
        by_group: dict[str, list[EdgeDevice]] = {}
        for device in self.foreground_devices:
            by_group.setdefault(device.group.name, []).append(device)
        turn = {name: 0 for name in by_group}
        for i, row in enumerate(load_workload_trace(workload.path)):
            at = row.arrival_s * workload.time_scale
            if at >= self.scenario.duration_s:
                return
            if at > env.now:
                yield env.timeout(at - env.now)
            if row.device is None:
                device = self.foreground_devices[int(rng.integers(len(self.foreground_devices)))]
            else:
                pool = by_group[row.device]
                device = pool[turn[row.device] % len(pool)]
                turn[row.device] += 1
            process = self.acceptance_profiles.get(row.acceptance) if row.acceptance else None
            session = self._new_session(device, keep=False)
            req = self._request(session, (i,), env.now, row.prompt_tokens, row.output_tokens, process)
            env.process(session.serve(req))

    def meter(self, select: Callable[[Session], bool]) -> Metrics:
        """The metrics of the sessions ``select`` picks, by the same definitions and window.

        Call before :meth:`run`; the system's own figures are unchanged. The returned
        :class:`Metrics` counts what the system's counts, restricted to those sessions: tokens at
        their edge-visible time in the window, their rounds, their completed requests (TTFT, TPOT,
        goodput). Its cloud-side figures (utilisation, batch size) stay zero: they are the system's.
        """
        self._need_metrics("meter")
        chosen = self._new_metrics()
        self.metrics = Tee(self.metrics, chosen, select)  # type: ignore[assignment]
        return chosen

    # -- running -------------------------------------------------------------------------------

    def run(self, until: float | None = None) -> dict[str, Any]:
        """Run to ``until`` (default: the scenario's duration) and return the summary (empty when
        the simulation keeps no metrics)."""
        self.env.run(until=self.scenario.duration_s if until is None else until)
        return {} if isinstance(self.metrics, NoMetrics) else self.summary()

    def _need_metrics(self, what: str) -> None:
        if isinstance(self.metrics, NoMetrics):
            raise RuntimeError(f"{what}: this simulation was built with metrics=False and keeps none")

    def summary(self) -> dict[str, Any]:
        self._need_metrics("summary")
        for target in self.targets:
            target.settle(min(self.env.now, self.scenario.duration_s))
        up = sum(d.link.up.bytes for d in self.devices)
        down = sum(d.link.down.bytes for d in self.devices)
        retransmissions = sum(d.link.up.retransmissions + d.link.down.retransmissions for d in self.devices)
        return self.metrics.summary(
            len(self.targets),
            {
                "scenario": self.scenario.name,
                "seed": self.seed,
                "arrived_requests": self.arrived,
                "in_flight_requests": self.active,
                "uplink_bytes": up,
                "downlink_bytes": down,
                "retransmissions": retransmissions,
            },
        )
