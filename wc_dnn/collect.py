"""Collect the WC-DNN dataset: randomised scenarios under a behaviour policy, labelled by the oracle.

**Tasks.** Each scenario of ``collect.scenarios`` gives ``variants`` scenario variants — the first
the scenario as shipped (``include_base``), the others draws of its randomised keys (the scenario's
``randomize`` section plus the config's) from a generator seeded by (``collect.seed``, crc32 of the
scenario's name) — every variant with ``duration_s`` simulated seconds, no warm-up, and the config's
window choices and modes. Each variant runs ``seeds`` simulations; task (scenario, variant v,
replicate s) simulates under seed SeedSequence(collect.seed, spawn_key=(crc32(name), v, s)) mod
2³¹ − 1. One task, one shard. Each entry of ``evaluation_modes`` runs every task: ``fleet`` with the
ids and seeds above, ``ego`` with ids ``<scenario>.ego.v<v>.s<s>`` and spawn keys that end in one more
element (so the ego simulations are other draws).

**Behaviour.** In fleet mode every foreground session runs a behaviour; in ego mode the first
foreground session does and the others run the scenario's ``control.policy``, as in ``dsd-gym
evaluate --mode ego``. Behaviour session k of a simulation (k counts them as they are built) draws its
behaviour from ``behaviour.mix`` with a generator seeded by (simulation seed, k): a policy spec
(``heuristic``, ``analytic``, ``oracle``, ...), ``random`` (a uniformly random allowed decision every
round), ``sticky-random`` (one held for a geometric number of rounds of mean ``sticky_rounds``) or
``random-fixed`` (one for the whole session). With a ``learner`` (DAgger: an exported controller,
``dsd-gym collect --learner PATH``), the session first runs it (behaviour ``learner``) with
probability ``learner_share`` (the share of the task's evaluation mode) and draws from the mix
otherwise. Every round, with probability ``epsilon``, a
uniformly random allowed decision replaces the behaviour's. Background groups keep their own policies.

**Labels.** ``record_sessions`` behaviour sessions are labelled (in ego mode: the ego). In fleet mode
with a closed-loop workload they are spread evenly over the foreground sessions in the order they
are built (sessions ⌊i·n/m⌋, i < m, of n), so every device group of a mixed fleet is labelled, not
only the first (the first four of ``hetero-fleet`` are all phones); otherwise the first are:
before each of their rounds a shadow :class:`~dsd_gym.controllers.oracles.MyopicOracle` of their
own (read-only: the simulation is the same with or without it) gives its decision and every
candidate's objective value (``MyopicOracle.label``), and the row records those, the telemetry
vector the session's controller sees, the decision played and provenance (see
:mod:`wc_dnn.dataset`). In fleet mode every behaviour session is a ``team`` member
(:func:`dsd_gym.controllers.oracles.teammate`): the labels price the time a round costs the rest of
the fleet, as the ``oracle`` policy does in a fleet of oracles; in ego mode nobody else is, as for
an ``oracle`` ego among tenants.

Everything random derives from ``collect.seed``, so a config gives the same arrays on every run, on
either backend and in any number of workers. A rerun into the same folder skips every task whose
shard reads back whole.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dsd_gym.backend import Backend, run
from dsd_gym.config.loader import read_scenario
from dsd_gym.config.schema import RandomRange, Scenario
from dsd_gym.controllers import parse_policy
from dsd_gym.controllers.oracles import MyopicOracle, candidates
from dsd_gym.envs.randomization import ScenarioSampler
from dsd_gym.errors import UserError
from dsd_gym.runner import check_ego, simulation
from dsd_gym.runtime import feature_metadata
from dsd_gym.sim.controller import ControllerFactory, Decision
from dsd_gym.telemetry import FEATURES
from wc_dnn.config import BEHAVIOURS, BehaviourSpec, WCDNNConfig, config_hash
from wc_dnn.dataset import (
    ARRAYS,
    FORMAT,
    FORMAT_VERSION,
    SIDECAR,
    ShardError,
    decision_records,
    read_shard,
    read_sidecar,
    write_json,
    write_shard,
)
from wc_dnn.floor import FLOOR, floor_document, measure_floor, read_floor
from wc_dnn.provenance import code_version

__all__ = ["CollectTask", "Plan", "collect", "done_tasks", "make_plan", "run_task", "sidecar"]

_VARIANT_KEY = 0xDA7A  # spawn keys that keep the variant draws and the behaviours apart from the rest
_BEHAVIOUR_KEY = 0xBE4A
_EGO_KEY = 0xE60
_FLOOR_KEY = 0xF100  # the floor's seeds (wc_dnn.floor): other draws than the dataset's simulations
LEARNER = "learner"  # the behaviour name of the --learner policy


def _crc(name: str) -> int:
    return zlib.crc32(name.encode())


def _simulation_seed(root: int, key: tuple[int, ...]) -> int:
    """A simulation seed: SeedSequence(root, spawn_key=key)'s first word mod 2³¹ − 1."""
    return int(np.random.SeedSequence(root, spawn_key=key).generate_state(1)[0]) % (2**31 - 1)


@dataclass(frozen=True)
class CollectTask:
    """One simulation: a variant of a scenario under a seed in an evaluation mode (fleet or ego);
    its shard is ``<id>.npz``."""

    id: str
    scenario: str
    variant: int
    replicate: int
    seed: int
    values: dict[str, Any]
    mode: str = "fleet"

    @property
    def file(self) -> str:
        return f"{self.id}.npz"

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id, "file": self.file, "scenario": self.scenario, "variant": self.variant,
            "replicate": self.replicate, "seed": self.seed, "values": self.values, "mode": self.mode,
        }  # fmt: skip


@dataclass(frozen=True)
class Plan:
    tasks: tuple[CollectTask, ...]
    scenarios: dict[str, Scenario]  # by task id
    candidates: list[Decision]
    behaviours: list[str]
    learner: str | None = None  # the --learner policy spec, torchscript:PATH


def _ranges(raw_ranges: Any, extra: dict[str, RandomRange], where: str) -> dict[str, RandomRange]:
    ranges = {}
    for key, value in (raw_ranges or {}).items():
        try:
            ranges[key] = RandomRange.model_validate(value)
        except ValueError as exc:
            raise UserError(f"{where}: randomize.{key}: {str(exc).splitlines()[-1].strip()}") from None
    ranges.update(extra)
    return ranges


def make_plan(config: WCDNNConfig, learner: str | os.PathLike[str] | None = None) -> Plan:
    """Every task, its scenario validated, and the dataset's candidates; bad input is one line.

    ``learner``: an exported controller to mix into the behaviour (DAgger)."""
    collect = config.collect
    tasks: list[CollectTask] = []
    by_task: dict[str, Scenario] = {}
    dataset_candidates: list[Decision] | None = None
    first = ""
    behaviours = list(collect.behaviour.mix)
    learner_spec = None if learner is None else f"torchscript:{os.fspath(learner)}"
    if learner_spec is not None:
        behaviours.append(LEARNER)
    for i, spec in enumerate(collect.scenarios):
        where = f"collect.scenarios.{i} ({spec.scenario})"
        try:
            raw = read_scenario(spec.scenario)
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
        values: dict[str, Any] = {"duration_s": collect.duration_s, "warmup_s": 0.0}
        if collect.window_choices is not None:
            values["control.window_choices"] = list(collect.window_choices)
        if collect.modes is not None:
            values["control.modes"] = list(collect.modes)
        raw = raw.with_values(values)
        try:
            sampler = ScenarioSampler(raw, _ranges(raw.data.get("randomize"), spec.randomize, where))
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
        name = sampler.base.name
        slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        if any(t.id.startswith(f"{slug}.") for t in tasks):
            raise UserError(f"{where}: scenario name {name!r} is already in collect.scenarios")
        rng = np.random.default_rng(
            np.random.SeedSequence(collect.seed, spawn_key=(_crc(name), _VARIANT_KEY))
        )
        for v in range(spec.variants):
            drawn = {} if (v == 0 and spec.include_base) else sampler.draw(rng)
            try:
                scenario = sampler.scenario(drawn)
            except UserError as exc:
                raise UserError(f"{where}: variant {v} {drawn}: {exc}") from None
            offered = candidates(scenario)
            if dataset_candidates is None:
                dataset_candidates, first = offered, name
            elif offered != dataset_candidates:
                raise UserError(
                    f"{where}: offers other decisions than {first} (window choices "
                    f"{scenario.control.window_choices}, modes {scenario.control.modes}); set "
                    "collect.window_choices and collect.modes so every scenario offers the same"
                )
            for spec_name in collect.behaviour.mix:
                if spec_name in BEHAVIOURS:
                    continue
                try:
                    parse_policy(spec_name, scenario)
                except UserError as exc:
                    raise UserError(f"collect.behaviour.mix: {spec_name!r} on {name}: {exc}") from None
            if learner_spec is not None:
                try:
                    parse_policy(learner_spec, scenario)
                except UserError as exc:
                    raise UserError(f"--learner on {name}: {exc}") from None
            if "ego" in collect.evaluation_modes:
                check_ego(scenario, where, "drop ego from collect.evaluation_modes")
            for mode in collect.evaluation_modes:
                ego = (_EGO_KEY,) if mode == "ego" else ()
                prefix = f"{slug}.ego" if mode == "ego" else slug
                for s in range(collect.seeds):
                    seed = _simulation_seed(collect.seed, (_crc(name), v, s, *ego))
                    task = CollectTask(f"{prefix}.v{v:03d}.s{s:03d}", name, v, s, seed, drawn, mode)
                    tasks.append(task)
                    by_task[task.id] = scenario
    assert dataset_candidates is not None
    if any(collect.floor(m) for m in collect.evaluation_modes) and len(collect.evaluation_modes) != 1:
        raise UserError(
            f"collect.floor_seeds: the floor is measured in one evaluation mode, and the config has "
            f"{collect.evaluation_modes}; pass --mode fleet or --mode ego"
        )
    return Plan(tuple(tasks), by_task, dataset_candidates, behaviours, learner_spec)


# -- behaviours ---------------------------------------------------------------------------------


class RandomDecisions:
    """A uniformly random allowed decision, redrawn each round with probability ``switch``: 1 every
    round (``random``), 1 / mean rounds (``sticky-random``), 0 never after the first
    (``random-fixed``)."""

    observes = False

    def __init__(self, decisions: list[Decision], rng: np.random.Generator, switch: float) -> None:
        self.decisions, self.rng, self.switch = decisions, rng, switch
        self.current: Decision | None = None

    def decide(self, session: Any) -> Decision:
        if self.current is None or (self.switch > 0 and self.rng.random() < self.switch):
            self.current = self.decisions[int(self.rng.integers(len(self.decisions)))]
        return self.current


class Behaviour:
    """A session's behaviour policy with ε-exploration; with ``oracle`` it also labels every round
    into ``rows`` (the oracle's index and values, features, decision played, behaviour code).
    ``team``: whether oracles count the session's jobs as a teammate's (fleet mode)."""

    def __init__(
        self, base: Any, code: int, decisions: list[Decision], epsilon: float, rng: np.random.Generator,
        oracle: MyopicOracle | None, rows: list[tuple] | None, team: bool,
    ) -> None:  # fmt: skip
        self.base, self.code, self.decisions, self.epsilon, self.rng = base, code, decisions, epsilon, rng
        self.index = {d: j for j, d in enumerate(decisions)}
        self.oracle, self.rows, self.team = oracle, rows, team
        self.observes = oracle is not None or getattr(base, "observes", True)

    def decide(self, session: Any) -> Decision:
        if self.oracle is not None:
            features = session.telemetry.vector()
            label, values = self.oracle.label(session)
        decision = self.base.decide(session)
        if self.epsilon > 0 and self.rng.random() < self.epsilon:
            decision = self.decisions[int(self.rng.integers(len(self.decisions)))]
        if self.rows is not None:
            self.rows.append(
                (features, label, values, self.index[decision], self.code, session.sid, session.env.now)
            )
        return decision


def labelled_sessions(scenario: Scenario, mode: str, record: int) -> frozenset[int]:
    """The behaviour sessions (numbered as they are built) whose rounds are labelled: ``record`` of
    them, spread evenly over a closed-loop fleet's foreground sessions, else the first."""
    if mode == "fleet" and scenario.workload.kind == "closed_loop":
        n = sum(g.count * g.sessions for g in scenario.devices if g.policy is None)
        if n > record:
            return frozenset(i * n // record for i in range(record))
    return frozenset(range(record))


def _behaviour_factory(
    scenario: Scenario, seed: int, decisions: list[Decision], spec: BehaviourSpec, record: int,
    rows: list[tuple], mode: str, learner: str | None,
) -> ControllerFactory:  # fmt: skip
    names = list(spec.mix)
    weights = np.array([spec.mix[n] for n in names], dtype=np.float64)
    weights /= weights.sum()
    policies = {n: parse_policy(n, scenario) for n in names if n not in BEHAVIOURS}
    background = {g.name: parse_policy(g.policy, scenario) for g in scenario.devices if g.policy is not None}
    tenants = parse_policy(scenario.control.policy, scenario) if mode == "ego" else None
    learned = parse_policy(learner, scenario) if learner is not None else None
    switch = {"random": 1.0, "sticky-random": 1.0 / max(spec.sticky_rounds, 1.0), "random-fixed": 0.0}
    chosen = labelled_sessions(scenario, mode, record)
    built = 0

    def build(group: Any) -> Any:
        nonlocal built
        if group.policy is not None:
            return background[group.name](group)
        if tenants is not None and built > 0:
            return tenants(group)  # ego mode: every foreground session after the ego
        k, built = built, built + 1
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_BEHAVIOUR_KEY, k)))
        if learned is not None and rng.random() < spec.share(mode):
            code, base = len(names), learned(group)
        else:
            code = int(rng.choice(len(names), p=weights))
            name = names[code]
            if name in BEHAVIOURS:
                base = RandomDecisions(decisions, rng, switch[name])
            else:
                base = policies[name](group)
        labelled = k in chosen
        oracle = MyopicOracle(decisions) if labelled else None
        rows_k = rows if labelled else None
        return Behaviour(base, code, decisions, spec.epsilon, rng, oracle, rows_k, team=mode == "fleet")

    return build


def run_task(
    task: CollectTask, scenario: Scenario, decisions: list[Decision], spec: BehaviourSpec, record: int,
    learner: str | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Simulate one task and return its arrays (``wc_dnn.dataset.ARRAYS``); ``learner``: the
    ``torchscript:PATH`` spec of a DAgger learner to mix into the behaviour."""
    rows: list[tuple] = []
    factory = _behaviour_factory(scenario, task.seed, decisions, spec, record, rows, task.mode, learner)
    simulation(scenario, factory, task.seed).run()
    n = len(rows)
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(ARRAYS)
    return {
        "features": np.array(columns[0], dtype=np.float32).reshape(n, len(FEATURES)),
        "label": np.array(columns[1], dtype=np.int16),
        "values": np.array(columns[2], dtype=np.float32).reshape(n, len(decisions)),
        "behaviour": np.array(columns[3], dtype=np.int16),
        "policy": np.array(columns[4], dtype=np.int16),
        "session": np.array(columns[5], dtype=np.int32),
        "time_s": np.array(columns[6], dtype=np.float64),
    }


def _work(
    task: CollectTask, scenario: Scenario, decisions: list[Decision], spec: BehaviourSpec, record: int,
    out: Path, version: str, learner: str | None,
) -> int:  # fmt: skip
    """A worker's job: run the task and write its shard atomically; returns its rows."""
    if learner is not None:
        import torch  # lazy: only a learner needs torch

        torch.set_num_threads(1)  # the workers are the parallelism; batch-1 decisions gain nothing
    arrays = run_task(task, scenario, decisions, spec, record, learner)
    meta = {**task.record(), "task": task.id, "rows": len(arrays["label"]), "code_version": version}
    write_shard(out / task.file, arrays, meta)
    return len(arrays["label"])


def _learner_record(spec: str | None) -> dict[str, str] | None:
    if spec is None:
        return None
    path = spec.removeprefix("torchscript:")
    return {"path": os.path.abspath(path), "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}


def sidecar(config: WCDNNConfig, plan: Plan) -> dict[str, Any]:
    """The dataset's description (see :mod:`wc_dnn.dataset`). ``config_hash`` covers the collect
    section and, with a learner, the learner file's sha256: a new learner makes a new dataset."""
    learner = _learner_record(plan.learner)
    digest = config_hash(config.collect)
    if learner is not None:
        digest = hashlib.sha256(f"{digest}+learner:{learner['sha256']}".encode()).hexdigest()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "features": feature_metadata(),
        "candidates": decision_records(plan.candidates),
        "arrays": {
            name: {"dtype": d, "shape": shape, "meaning": m} for name, (d, shape, m) in ARRAYS.items()
        },
        "behaviours": plan.behaviours,
        "name": config.name,
        "collect": config.collect.model_dump(mode="json"),
        "learner": learner,
        "config_hash": digest,
        "code_version": code_version(),
        "objective": "MyopicOracle.label: E[committed] − ρ·(E[round time] + X) per candidate, in tokens; "
        "ρ the oracle's rate (tokens/s); value[label] is the largest",
        "tasks": [t.record() for t in plan.tasks],
    }


def done_tasks(out: Path, plan: Plan) -> set[str]:
    """The tasks whose shard in ``out`` reads back whole (a corrupt or partial one is redone)."""
    done = set()
    for task in plan.tasks:
        try:
            read_shard(out / task.file, task.id, len(plan.candidates))
        except ShardError:
            continue
        done.add(task.id)
    return done


def collect(
    config: WCDNNConfig, out: str | Path, jobs: int | None = None, progress: bool = False,
    learner: str | os.PathLike[str] | None = None, backend: str = "processes", address: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Collect (or finish collecting) ``config``'s dataset into ``out``; returns a summary.

    ``jobs``, ``backend``, ``address``: where the shards are simulated (:class:`dsd_gym.backend.Backend`:
    worker processes, default one per CPU, 1 runs here; or Ray tasks). ``learner``: an exported
    controller (``dsd-gym export``) that behaviour sessions run with probability
    ``behaviour.learner_share`` (DAgger: the states the learner visits, labelled by the oracle). A
    folder holding another config's dataset is refused; one holding this config's is resumed:
    complete shards are kept, missing or unreadable ones (and temporary files of a killed run) are
    redone. One collector per folder at a time. A task that fails leaves no shard and is named in the
    summary's ``failed`` (task id -> error); the shards of the others are kept, and a rerun redoes it.
    """
    runner = Backend(backend, jobs, address)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    plan = make_plan(config, learner)
    described = sidecar(config, plan)
    if (out / SIDECAR).exists():
        existing = read_sidecar(out)
        if existing["config_hash"] != described["config_hash"]:
            raise UserError(
                f"--out {out}: holds a dataset of another collect config (config_hash "
                f"{existing['config_hash'][:12]}, this one {described['config_hash'][:12]}); give a new --out"
            )
    elif out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out}: not empty and not a dataset folder; give a new or empty directory")
    else:
        write_json(out / SIDECAR, described)
    for stale in out.glob(".*.npz.*.tmp"):  # a shard being written when a run was killed
        stale.unlink()
    done = done_tasks(out, plan)
    todo = [t for t in plan.tasks if t.id not in done]
    spec = config.collect
    version = described["code_version"]
    shared = (plan.candidates, spec.behaviour, spec.record_sessions, out, version, plan.learner)
    rows = 0
    failed: dict[str, str] = {}
    start = time.perf_counter()
    bar = tqdm(total=len(plan.tasks), initial=len(done), desc="collect", unit="shard", file=sys.stderr,
               disable=not progress, leave=False)  # fmt: skip
    with bar:
        for outcome in run(_work, [(t.id, (t, plan.scenarios[t.id], *shared)) for t in todo], runner):
            if outcome.ok:
                rows += outcome.value
            else:
                failed[outcome.key] = outcome.error
            bar.update()
    seconds = time.perf_counter() - start
    ran = len(todo) - len(failed)
    floor = None
    if spec.floor(spec.evaluation_modes[0]):  # make_plan saw to one evaluation mode
        floor = _floor(config, plan, out, described, runner, progress)
        failed.update(floor.pop("failed"))
    return {
        "out": str(out), "tasks": len(plan.tasks), "skipped": len(done), "ran": ran,
        "rows": rows, "seconds": seconds, "rows_per_s": rows / seconds if seconds > 0 else None,
        "failed": dict(sorted(failed.items())), "floor": floor,
    }  # fmt: skip


def _floor(
    config: WCDNNConfig, plan: Plan, out: Path, described: dict[str, Any], runner: Backend, progress: bool
) -> dict[str, Any]:
    """Measure the fixed-decision floor (or, with a learner, the learner) on every variant into
    ``out/floor.json`` unless it is there already (:mod:`wc_dnn.floor`); a summary of what ran."""
    existing = read_floor(out)
    if existing is not None and existing["config_hash"] == described["config_hash"]:
        return {"sims": 0, "seconds": 0.0, "failed": {}}
    spec = config.collect
    mode = spec.evaluation_modes[0]
    groups: dict[str, tuple[Scenario, list[int]]] = {}
    for task in plan.tasks:
        key = f"{task.scenario}/v{task.variant}"
        if key not in groups:
            root, tail = (_crc(task.scenario), task.variant, _FLOOR_KEY), (1,) if mode == "ego" else ()
            seeds = [_simulation_seed(spec.seed, (*root, s, *tail)) for s in range(spec.floor(mode))]
            groups[key] = (plan.scenarios[task.id], seeds)
    start = time.perf_counter()
    measured, failures = measure_floor(groups, mode, plan.learner, runner, progress)
    sims = sum(len(seeds) for _, seeds in groups.values()) * (1 if plan.learner else len(plan.candidates))
    if not failures:
        seeds = {key: seeds for key, (_, seeds) in groups.items()}
        document = floor_document(mode, described["config_hash"], described["learner"], seeds, measured)
        write_json(out / FLOOR, document)
    return {
        "sims": sims, "seconds": time.perf_counter() - start,
        "failed": failures,
    }  # fmt: skip
