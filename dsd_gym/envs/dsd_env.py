"""The Gymnasium environments: one ``step`` is one verification round (DESIGN §5).

The env is a controller whose decisions come from outside: the decision point of a session
(``Session.serve`` asking its controller) returns a SimPy event, the simulation stops there, and
``step`` answers it and runs to the next decision point.
"""

from __future__ import annotations

import math
import numbers
from collections import deque
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import simpy
from gymnasium import spaces
from pydantic import ValidationError

from dsd_gym.config.loader import RawScenario, explain, read_scenario
from dsd_gym.config.schema import MODES, RandomRange, Scenario
from dsd_gym.controllers import parse_policy
from dsd_gym.envs.externality import batch_externality, batch_self_delay
from dsd_gym.envs.randomization import ScenarioSampler
from dsd_gym.envs.registration import DEFAULT_SCENARIO
from dsd_gym.envs.rewards import CREDITED, StepOutcome, reward_function, round_terms
from dsd_gym.errors import UserError
from dsd_gym.sim import Decision, Mode, RoundRecord, Session, Simulation
from dsd_gym.sim.schedule import Call, Halt, call_now, step_until
from dsd_gym.telemetry import FEATURES, TelemetryTracker, stacked_bounds, table

MAX_EMPTY_DRAWS = 100  # simulation seeds reset tries before a horizon too short for any decision fails
NO_ROUND = {  # the round fields of ``info`` when the step ran no round of the deciding session
    "mode": -1, "gamma": 0, "accepted": 0, "committed": 0, "round_ms": 0.0, "draft_ms": 0.0, "uplink_ms": 0.0,
    "queue_ms": 0.0, "verify_ms": 0.0, "downlink_ms": 0.0, "queue_depth": 0, "batch_size": 0,
}  # fmt: skip
INFO_KEYS = (
    "sim_time_s", "session", "tokens", "rounds", "requests_completed", "mode", "gamma", "accepted",
    "committed", "round_ms", "draft_ms", "uplink_ms", "queue_ms", "verify_ms", "downlink_ms",
    "queue_depth", "batch_size",
)  # fmt: skip


class _External:
    """The controller of the sessions the agent drives: its decisions are the env's decision points."""

    __slots__ = ("decide",)
    observes = True

    def __init__(self, owner: _DSDBase) -> None:
        self.decide = owner._decision_point


class _RoundCredit:
    """``round_rate``'s bookkeeping over an episode: who decided each round, its X, ρ̄ (``rewards``);
    under ``round_self`` (``self_weight`` > 0) also each round's self-delay S = w·Δ."""

    def __init__(self, self_weight: float = 0.0) -> None:
        self.deciders: list[int] = []  # the step that decided each round of the current step
        self.extra: list[float] = []  # ... and what its job cost its teammates (X)
        self.extra_s: dict[int, float] = {}  # session id -> X of its current round so far
        self.self_weight = self_weight  # w of round_self; 0: no self-delay is booked
        self.own: list[float] = []  # S of each round of the current step (round_self)
        self.own_s: dict[int, float] = {}  # session id -> Δ of its current round so far
        self.decided_at: dict[int, int] = {}  # session id -> the step that decided its current round
        self.flying: set[int] = set()  # driven sessions with a round in flight
        self.busy_tokens = 0  # committed by the driven sessions' completed rounds ...
        self.busy_s = 0.0  # ... and those rounds' time (ρ̄ = busy_tokens / busy_s)

    def decided(self, sid: int, step: int) -> None:
        self.decided_at[sid] = step
        self.flying.add(sid)

    def on_round(self, record: RoundRecord) -> None:
        self.deciders.append(self.decided_at.get(record.session, -1))
        self.extra.append(self.extra_s.pop(record.session, 0.0))
        self.flying.discard(record.session)
        if self.self_weight:
            self.own.append(self.self_weight * self.own_s.pop(record.session, 0.0))

    def on_batch(self, team: set[Session], weight: float, *batch: Any) -> None:
        for session, extra_s in batch_externality(*batch, team, len(self.flying), weight):
            self.extra_s[session.sid] = self.extra_s.get(session.sid, 0.0) + extra_s
        if self.self_weight:
            for session, delta_s in batch_self_delay(*batch, team):
                self.own_s[session.sid] = self.own_s.get(session.sid, 0.0) + delta_s

    def busy_rate_tok_s(self) -> float:
        return self.busy_tokens / self.busy_s if self.busy_s > 0 else 0.0

    def book(self, rounds: list[RoundRecord]) -> None:
        """The step's rounds are over: they count in ρ̄ from the next step on."""
        for record, extra_s in zip(rounds, self.extra, strict=True):
            self.busy_tokens += record.committed
            self.busy_s += record.end_s - record.start_s + extra_s


class _DSDBase(gym.Env):
    """What the ego env and the fleet env share: construction, reset, the run loop, pickling."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}
    fleet = False

    def __init__(
        self,
        scenario: str | Scenario = DEFAULT_SCENARIO,
        reward: str = "throughput",
        reward_kwargs: dict[str, float] | None = None,
        window_choices: Sequence[int] | None = None,
        modes: Sequence[str] | None = None,
        history: int = 0,
        horizon_s: float = 60.0,
        others: str | None = None,
        randomize: bool | dict[str, Any] = True,
        overrides: Sequence[str] = (),
        render_mode: str | None = None,
    ) -> None:
        self._kwargs = dict(
            scenario=scenario, reward=reward, reward_kwargs=reward_kwargs, window_choices=window_choices,
            modes=modes, history=history, horizon_s=horizon_s, others=others, randomize=randomize,
            overrides=tuple(overrides), render_mode=render_mode,
        )  # fmt: skip
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise UserError(f"render_mode {render_mode!r} is unknown; allowed: ansi or None")
        self.render_mode = render_mode
        if isinstance(history, bool) or not isinstance(history, numbers.Integral) or history < 0:
            raise UserError(f"history: value {history!r} is invalid; allowed: an integer >= 0")
        if (
            isinstance(horizon_s, bool)
            or not isinstance(horizon_s, numbers.Real)
            or not 0 < horizon_s < math.inf
        ):
            raise UserError(
                f"horizon_s: value {horizon_s!r} is invalid; allowed: a finite number of seconds > 0"
            )
        self.history = int(history)
        self.horizon_s = float(horizon_s)
        raw = self._raw(scenario, overrides, window_choices, modes)
        ranges = self._ranges(raw, randomize)
        self.sampler = ScenarioSampler(raw, ranges)
        base = self.sampler.base
        if base.workload.kind != "closed_loop":
            raise UserError(
                f"scenario {base.name!r}: workload.kind {base.workload.kind!r}: the env needs a closed_loop "
                "workload (the agent drives persistent sessions)"
            )
        self.others = others
        if self.fleet and others is not None:
            raise UserError(
                f"others: value {others!r} does not apply: the fleet variant drives every foreground "
                "session; allowed: None"
            )
        if not self.fleet:
            try:
                parse_policy(others or base.control.policy, base)
            except UserError as exc:
                raise UserError(f"others: {exc}") from None
        self._reward, self._reward_params = reward_function(reward, reward_kwargs, base.slo.tpot_ms / 1e3)
        self.decisions = self._action_table(base)
        self.action_space = spaces.Discrete(len(self.decisions))
        low, high = stacked_bounds(history + 1)
        self.observation_space = spaces.Box(low=low, high=high, dtype=np.float32)
        self._sim: Simulation | None = None
        self._episode: tuple[int, dict[str, Any]] | None = None
        self._actions: list[int] = []
        self.deciding: Session | None = None  # the session whose decision the next step applies
        self.credit: tuple[int, int, tuple[tuple[int, float], ...]] | None = None

    # -- construction helpers ------------------------------------------------------------------

    @staticmethod
    def _raw(
        scenario: str | Scenario,
        overrides: Sequence[str],
        window_choices: Sequence[int] | None,
        modes: Sequence[str] | None,
    ) -> RawScenario:
        if isinstance(scenario, Scenario):
            from dsd_gym.config import configs_dir

            raw = RawScenario(scenario.model_dump(), (configs_dir(),), configs_dir()).with_overrides(
                overrides
            )
        elif isinstance(scenario, str):
            raw = read_scenario(scenario, overrides)
        else:
            raise UserError(
                f"scenario: value {scenario!r} is invalid; allowed: a name, a YAML path or a Scenario"
            )
        values: dict[str, Any] = {}
        if window_choices is not None:
            choices = list(window_choices)
            if not choices or any(
                isinstance(g, bool) or not isinstance(g, numbers.Integral) or g < 1 for g in choices
            ):
                raise UserError(
                    f"window_choices: value {window_choices!r} is invalid; allowed: a non-empty list of "
                    "integers >= 1"
                )
            values["control.window_choices"] = [int(g) for g in choices]
        if modes is not None:
            unknown = [m for m in modes if m not in MODES]
            if unknown or not modes:
                raise UserError(
                    f"modes: value {modes!r} is invalid; allowed: a non-empty subset of {list(MODES)}"
                )
            values["control.modes"] = list(modes)
        return raw.with_values(values) if values else raw

    @staticmethod
    def _ranges(raw: RawScenario, randomize: bool | dict[str, Any]) -> dict[str, RandomRange]:
        if randomize is True:
            spec = raw.data.get("randomize") or {}
        elif randomize is False:
            spec = {}
        elif isinstance(randomize, dict):
            spec = randomize
        else:
            raise UserError(f"randomize: value {randomize!r} is invalid; allowed: True, False or a mapping")
        ranges = {}
        for key, value in spec.items():
            try:
                ranges[key] = value if isinstance(value, RandomRange) else RandomRange.model_validate(value)
            except ValidationError as exc:
                raise UserError(f"randomize.{key}: {explain(exc, RandomRange)}") from None
        return ranges

    @staticmethod
    def _action_table(scenario: Scenario) -> list[Decision]:
        """Action index -> decision: every window distributed, then fused, then autoregressive."""
        choices, modes = scenario.control.window_choices, scenario.control.modes
        table = []
        if "distributed" in modes:
            table += [Decision(g, Mode.DISTRIBUTED) for g in choices]
        if "fused" in modes:
            table += [Decision(g, Mode.FUSED) for g in choices]
        if "autoregressive" in modes:
            table.append(Decision(0, Mode.AUTOREGRESSIVE))
        return table

    def action_to_decision(self, action: int) -> Decision:
        return self.decisions[int(action)]

    # -- the episode ---------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"values"}
        if unknown:
            raise UserError(f"reset options {sorted(unknown)} are unknown; allowed: values")
        sim_seed = int(self.np_random.integers(2**31 - 1))
        values = options["values"] if "values" in options else self.sampler.draw(self.np_random)
        # Gymnasium's reset cannot end an episode: when the horizon passes before the first decision
        # (a late first request), that draw has no episode and the next simulation seed is drawn.
        for _ in range(MAX_EMPTY_DRAWS):
            self._start(sim_seed, dict(values))
            obs, truncated = self._advance()
            if not truncated:
                return obs, self._info(self._env.now, 0, [])
            sim_seed = int(self.np_random.integers(2**31 - 1))
        raise UserError(
            f"horizon_s: value {self.horizon_s!r} ends the episode before the first decision of scenario "
            f"{self.scenario.name!r} in {MAX_EMPTY_DRAWS} draws; allowed: a horizon longer than the time "
            "to its first request"
        )

    def _start(self, sim_seed: int, values: dict[str, Any]) -> None:
        scenario = self.sampler.scenario(values)
        scenario = scenario.model_copy(update={"duration_s": self.horizon_s, "warmup_s": 0.0})
        self.scenario = scenario
        self._episode = (sim_seed, values)
        self._actions = []
        external = _External(self)
        others = None if self.fleet else parse_policy(self.others or scenario.control.policy, scenario)
        background = {
            g.name: parse_policy(g.policy, scenario) for g in scenario.devices if g.policy is not None
        }
        history = self.history + 1 if self.history else 0
        self._driven: list[Session] = []
        self._step_rounds: list[RoundRecord] = []
        # Only under round_rate and round_self. The episode's state stays in few attributes: past 29,
        # CPython 3.11 stops sharing an instance's dict keys, and every self.x read in step gets
        # several times slower.
        reward = self._kwargs["reward"]
        self._credit_book = (
            _RoundCredit(self._reward_params.get("self_weight", 0.0)) if reward in CREDITED else None
        )
        self._pending: deque[tuple[Session, Call]] = deque()  # decision points waiting for an action

        def controllers(group: Any) -> Any:
            if group.policy is not None:
                return background[group.name](group)
            if self.fleet or not claimed:
                claimed.append(True)
                return external
            return others(group)

        claimed: list[bool] = []
        sim = Simulation(
            scenario, controllers, seed=sim_seed,
            telemetry=lambda sc: TelemetryTracker(sc.telemetry.smoothing, history),
            metrics=False,  # rewards and info come from the sessions and their rounds, not the report
        )  # fmt: skip
        self._sim = sim
        self._env = sim.env
        self._driven = [s for s in sim.sessions if s.controller is external]
        book = self._credit_book
        if book is not None:
            team, weight = set(self._driven), self._reward_params["flight_weight"]
            for target in sim.targets:
                target.on_batch = lambda *batch: book.on_batch(team, weight, *batch)
        # Only their rounds make a step's outcome; round_rate also books who decided each and its X
        # (round_self also its Δ).
        hook = self._on_round if book is None else self._on_credited_round
        for session in self._driven:
            session.round_hook = hook
        self._tokens = 0
        self._stop = Halt()  # requested when a driven session decides (or the horizon passes)
        self._expired = False
        sim.env.timeout(self.horizon_s).callbacks.append(self._horizon)
        self.deciding = None

    def _on_round(self, record: RoundRecord, session: Session) -> None:
        self._step_rounds.append(record)

    def _on_credited_round(self, record: RoundRecord, session: Session) -> None:
        self._step_rounds.append(record)
        self._credit_book.on_round(record)

    def _decision_point(self, session: Session) -> Call:
        answer = Call()  # what ``step`` runs with the decision: the session adds its callback
        answer.callbacks = []
        self._pending.append((session, answer))
        self._stop.request(self._env)
        return answer

    def _horizon(self, _event: simpy.Event) -> None:
        self._expired = True
        self._stop.request(self._env)

    def _advance(self) -> tuple[np.ndarray, bool]:
        """Run to the next decision point of a driven session (or the horizon)."""
        if not self._pending and not self._expired:
            # Step until halted: what ``env.run(until=...)`` does, without the StopSimulation exception
            # (and the empty event it reschedules) of every step.
            step_until(self._env, self._stop)
            self._stop.clear()
        truncated = self._expired
        self.deciding = None if truncated else self._pending[0][0]
        return self._observation(), truncated

    def _observation(self) -> np.ndarray:
        # The kept rows (one per decision that found the vector changed) newest first, then zeros.
        return (self.deciding or self._driven[0]).telemetry.stacked(self.history + 1)

    def step(self, action: int):
        if self.deciding is None:
            raise RuntimeError("call reset() before step(), and again after an episode ends")
        action = int(action)
        decision = self.decisions[action]
        self._actions.append(action)
        session, answer = self._pending.popleft()
        book = self._credit_book
        if book is not None:
            book.decided(session.sid, len(self._actions) - 1)
        env = self._env
        # Another decision is due first (fleet): the answer waits its turn in the queue.
        call_now(env, answer, decision, wait=bool(self._pending))
        before_s = env.now
        self._step_rounds = rounds = []
        if book is not None:
            book.deciders = []
            book.extra = []
            book.own = []
        obs, truncated = self._advance()
        now_s = env.now
        # Against the tokens already rewarded, not those at the step's start: the first step then also
        # counts what reset's run committed (the first prefill's token), so the return is every token
        # the driven sessions committed within the horizon.
        after = sum(s.tokens for s in self._driven) if self.fleet else self._driven[0].tokens
        rate_tok_s = self._tokens / before_s if before_s > 0.0 else 0.0
        outcome = StepOutcome(after - self._tokens, now_s - before_s, rounds, rate_tok_s)
        if book is not None:
            outcome.busy_rate_tok_s = book.busy_rate_tok_s()
            outcome.extra_s = book.extra
            outcome.self_s = book.own
        self._tokens = after
        reward = self._reward(outcome, self._reward_params)
        if book is not None:
            terms = zip(book.deciders, round_terms(outcome), strict=True)
            self.credit = (len(self._actions) - 1, session.sid, tuple(terms))
            book.book(rounds)
        return obs, reward, False, truncated, self._info(now_s, outcome.tokens, rounds)

    def _info(self, sim_time_s: float, tokens: int, rounds: list[RoundRecord]) -> dict[str, Any]:
        """``info`` of a step that committed ``tokens`` and completed ``rounds`` (of driven sessions)."""
        session = self.deciding or self._driven[0]
        completed = sum(s.completed for s in self._driven) if self.fleet else session.completed
        if not rounds:
            return {
                "sim_time_s": sim_time_s, "session": session.sid, "tokens": tokens, "rounds": session.rounds,
                "requests_completed": completed, **NO_ROUND,
            }  # fmt: skip
        last = rounds[-1]
        # One literal in INFO_KEYS order (built once per step: cheaper than updating a dict).
        return {
            "sim_time_s": sim_time_s, "session": session.sid, "tokens": tokens, "rounds": session.rounds,
            "requests_completed": completed, "mode": last.mode, "gamma": last.gamma,
            "accepted": last.accepted, "committed": last.committed,
            "round_ms": 1e3 * (last.end_s - last.start_s), "draft_ms": 1e3 * last.draft_s,
            "uplink_ms": 1e3 * last.uplink_s, "queue_ms": 1e3 * last.queue_s,
            "verify_ms": 1e3 * last.verify_s, "downlink_ms": 1e3 * last.downlink_s,
            "queue_depth": last.queue_depth, "batch_size": last.batch_size,
        }  # fmt: skip

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._sim is None:
            return None
        session = self.deciding or self._driven[0]
        t = session.telemetry
        return (
            f"t={self._sim.env.now:8.3f}s session {session.sid} γ={t['last_gamma']:.0f} "
            f"A={t['accepted']:.0f} round={t['round_ms']:.1f}ms rtt={t['rtt_ms']:.1f}ms "
            f"queue={t['queue_depth']:.0f} tokens={session.tokens}"
        )

    # -- pickling: an episode is a value (seed, randomised values, actions) and is replayed -----

    def __getstate__(self) -> dict[str, Any]:
        rng = self._np_random.bit_generator.state if self._np_random is not None else None
        return {
            "kwargs": self._kwargs, "rng": rng, "seed": self._np_random_seed, "spec": self.spec,
            "episode": self._episode, "actions": list(self._actions),
        }  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state["kwargs"])
        self.spec = state["spec"]
        if state["episode"] is not None:
            self._start(*state["episode"])
            self._advance()
            for action in state["actions"]:
                self.step(action)
        if state["rng"] is not None:
            self._np_random = np.random.Generator(np.random.PCG64())
            self._np_random.bit_generator.state = state["rng"]
            # Without it, reading np_random_seed would reseed the generator the replay just restored.
            self._np_random_seed = state["seed"]


_DOC = """{summary}

## Description

{description} The simulated system is the scenario's edge-cloud DSD deployment (DESIGN §3):
edge devices drafting γ tokens, access links, cloud targets with iteration-level batching, other
tenants and background load. ``step(action)`` applies the window (and mode) to {who} and runs the
simulation to the next decision point — one verification round.

## Action Space

``Discrete(n)``: index ``i < len(window_choices)`` is distributed mode with window
``window_choices[i]``; then (if the scenario enables them) fused mode with each window, then
autoregressive. ``env.unwrapped.decisions[i]`` gives the ``Decision`` of action ``i``.

## Observation Space

``Box(float32)`` of shape ``((history + 1) * {n_features},)``: the telemetry vector of
``dsd_gym/telemetry.py`` in raw units, clipped to its bounds, now first, then as of the ``history``
previous decisions that found it changed (after a round or a request's prefill; zeros before the
first). Features:

{table}

## Rewards

See ``dsd_gym.envs.rewards``: ``throughput`` (default; tokens committed in the step, so the return
is throughput × horizon), ``time_penalty`` (tokens − ρ·Δt), ``rate`` (tokens − ρ̂·Δt, ρ̂ the
episode's own rate so far), ``round_rate`` (Σ over the step's rounds of tokens − ρ̄·round time, ρ̄
the tokens per second of round time so far), ``round_self`` (``round_rate`` with each round also
charged, at ρ̄, ``self_weight`` × the time its job added to its target iteration: what it costs the
session's own later rounds on a busy target), ``slo_goodput`` (tokens of rounds within the TPOT SLO),
``cloud_cost`` (tokens − β·positions the cloud computes).

Under ``round_rate`` and ``round_self``, ``env.unwrapped.credit`` after a step is
``(k, session, ((j, term), ...))``: the step's index ``k`` in the episode, the session whose decision
it applied, and each round completed during the step with the index ``j`` of the step that decided it
and its reward term — what a learner needs to credit each round to its own decision
(``agents.credit``). ``reset`` leaves it as it is: a vectorised env resets as soon as an episode
ends, before a learner reads its last step's credit.

## Starting State

``reset`` draws the simulation seed and the randomised scenario keys from ``np_random``, builds
the system at time 0 and runs it to the first decision point (after the first request's think
time and prefill): no round has been measured yet, so the observation is all zeros.

## Episode End

Never terminates. Truncates when simulated time reaches ``horizon_s`` (the step that crosses it).
A draw whose first decision would fall after ``horizon_s`` is no episode: ``reset`` draws the next
simulation seed.

## Arguments

| kwarg | default | meaning |
|---|---|---|
| ``scenario`` | ``"metro-5g"`` | a shipped name, a YAML path, or a ``Scenario`` object |
| ``reward`` | ``"throughput"`` | a name of ``dsd_gym.envs.rewards.REWARDS`` (see Rewards) |
| ``reward_kwargs`` | ``None`` | ``rate_tok_s``, ``beta``, ``flight_weight``, ``self_weight`` (see Rewards) |
| ``window_choices`` | scenario's | the windows an action may pick |
| ``modes`` | scenario's | subset of ``distributed``, ``fused``, ``autoregressive`` |
| ``history`` | ``0`` | past telemetry vectors stacked in the observation (one per changed decision) |
| ``horizon_s`` | ``60.0`` | simulated seconds per episode |
| ``others`` | scenario's ``control.policy`` | policy spec of the other foreground sessions |
| ``randomize`` | ``True`` | the scenario's ``randomize`` ranges; ``False``: none; or a mapping key -> range |
| ``overrides`` | ``()`` | ``dotted.key=value`` overrides applied to the scenario |
| ``render_mode`` | ``None`` | ``"ansi"`` |

``reset(options={{"values": {{key: value}}}})`` runs a given variant (e.g. one of
``env.unwrapped.sampler.variants(n)``, the fixed-order evaluation iterator) instead of a random draw.

## Version History

- v0: initial version.
"""


class DSDEnv(_DSDBase):
    fleet = False


class DSDFleetEnv(_DSDBase):
    fleet = True


DSDEnv.__doc__ = _DOC.format(
    summary="Adaptive window control of one ego session in edge-cloud distributed speculative decoding.",
    description="The agent is the window controller of one *ego* session among the scenario's other "
    "sessions (which run ``others``) and background load.",
    who="the ego session",
    n_features=len(FEATURES),
    table=table(),
)
DSDFleetEnv.__doc__ = _DOC.format(
    summary="Adaptive window control as a policy every tenant runs (fleet variant).",
    description="Every foreground session's decisions come from the agent: each step serves whichever "
    "session reaches its decision point next, the observation is that session's telemetry, and the reward "
    "counts the tokens all foreground sessions committed during the step (so the return is fleet "
    "throughput × horizon). ``info['session']`` names the deciding session.",
    who="the deciding session",
    n_features=len(FEATURES),
    table=table(),
)
