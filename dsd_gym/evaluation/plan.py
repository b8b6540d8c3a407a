"""What an evaluation runs: scenario variants × policies × seeds, checked before anything runs.

Every input is checked here — scenarios, ``--set`` overrides, the sweep, every policy spec against
every variant, ego mode's needs — so a bad one fails with one line before the first simulation.
Besides the requested policies, a plan simulates the references its rows are compared with:
``fixed:4`` (when the variant allows it), ``oracle`` (when registered and wanted) and, for
``best-fixed``, every fixed decision the variant allows (``fixed:G``, ``fused:G``, ``autoregressive``).
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from typing import Any

from dsd_gym.config.loader import list_scenarios, parse_override, read_scenario
from dsd_gym.config.schema import Scenario
from dsd_gym.controllers import REGISTRY, fixed_policies, parse_policy
from dsd_gym.errors import UserError
from dsd_gym.runner import MODES, check_ego

BEST_FIXED = "best-fixed"  # the best fixed decision in hindsight, per variant, on the same seeds
REFERENCE = "fixed:4"  # the DSD authors' default window (DESIGN §8)
ORACLE = "oracle"
ALL = "all"  # as a scenario name: every shipped scenario


@dataclasses.dataclass(frozen=True)
class Sweep:
    """``KEY=V1,V2,...``: one scenario variant per value, each an override ``KEY=V``."""

    key: str
    texts: tuple[str, ...]  # the values as written: the variants' labels
    values: tuple[Any, ...]  # the values as YAML reads them

    @property
    def numeric(self) -> bool:
        return all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in self.values)


def parse_sweep(text: str) -> Sweep:
    """``devices.0.link.delay.one_way_ms=2,10,30`` -> Sweep. Values are YAML scalars, split at commas."""
    key, sep, values = text.partition("=")
    key = key.strip()
    texts = tuple(v.strip() for v in values.split(","))
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(
            f"--sweep {text!r}: expected KEY=V1,V2,..., e.g. devices.0.link.delay.one_way_ms=2,10,30"
        )
    if not any(texts):
        raise UserError(f"--sweep {text!r}: no values; expected KEY=V1,V2,... with at least one value")
    if not all(texts):
        raise UserError(f"--sweep {text!r}: an empty value between commas; expected KEY=V1,V2,...")
    if len(set(texts)) != len(texts):
        raise UserError(f"--sweep {text!r}: a value is repeated; give each value once")
    if key == "seed":
        raise UserError(f"--sweep {text!r}: the seeds are set by --seeds and --seed-base, not swept")
    values = tuple(parse_override(f"{key}={t}")[1] for t in texts)
    return Sweep(key, texts, values)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One scenario as run: a shipped or given scenario, with one sweep value applied (or none)."""

    name: str  # the scenario's name
    scenario: Scenario
    label: str | None = None  # "KEY=V" for a sweep variant
    sweep_value: Any = None

    @property
    def title(self) -> str:
        return f"{self.name} {self.label}" if self.label else self.name


@dataclasses.dataclass(frozen=True)
class Task:
    """One simulation: a policy on a variant under a seed. ``trace`` records the γ of one session."""

    variant: int
    policy: str
    seed: int
    mode: str
    trace: bool = False


@dataclasses.dataclass(frozen=True)
class Plan:
    variants: tuple[Variant, ...]
    policies: tuple[str, ...]  # as requested (deduplicated), the rows of the report
    simulated: tuple[tuple[str, ...], ...]  # per variant: every policy spec simulated
    seeds: tuple[int, ...]
    mode: str
    sweep: Sweep | None
    tasks: tuple[Task, ...]
    notes: tuple[str, ...] = ()  # why a reference column is empty


def _allows(spec: str, scenario: Scenario) -> bool:
    try:
        parse_policy(spec, scenario)
    except UserError:
        return False
    return True


def _variants(scenarios: Sequence[str], overrides: Sequence[str], sweep: Sweep | None) -> list[Variant]:
    variants = []
    names = [
        shipped
        for name in scenarios
        for shipped in ([n for n, _ in list_scenarios()] if name == ALL else [name])
    ]
    for name in dict.fromkeys(names):
        raw = read_scenario(name, overrides)
        if sweep is None:
            scenario = raw.validate()
            variants.append(Variant(scenario.name, scenario))
            continue
        for text, value in zip(sweep.texts, sweep.values, strict=True):
            label = f"{sweep.key}={text}"
            try:
                scenario = raw.with_overrides([label]).validate()
            except UserError as exc:
                raise UserError(f"--sweep {label}: {exc}") from None
            variants.append(Variant(scenario.name, scenario, label, value))
    return variants


def _check(spec: str, variant: Variant, mode: str) -> None:
    scenario = variant.scenario
    where = f"--policy {spec!r} on {variant.title}"
    if spec == BEST_FIXED:
        return  # every scenario allows at least one mode, hence one fixed decision
    try:
        parse_policy(spec, scenario)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None


def make_plan(
    scenarios: Sequence[str],
    policies: Sequence[str],
    seeds: int = 5,
    seed_base: int = 0,
    mode: str = "fleet",
    sweep: str | Sweep | None = None,
    overrides: Sequence[str] = (),
    oracle: bool = True,
    trace: bool = False,
) -> Plan:
    """Check everything and list the simulations. ``oracle``: simulate the oracle as a reference
    when it is registered; ``trace``: record γ over time on the first variant's first seed."""
    if not scenarios:
        raise UserError("no scenario; give --scenario NAME|PATH at least once")
    if not policies:
        raise UserError(
            f"no policy; give --policy at least once; allowed: {BEST_FIXED}, "
            + ", ".join(e.usage for e in REGISTRY.values())
        )
    if mode not in MODES:
        raise UserError(f"mode {mode!r} is unknown; allowed: {', '.join(MODES)}")
    if seeds < 1 or seed_base < 0:
        raise UserError(f"seeds {seeds} from {seed_base}: allowed: at least 1 seed, from a base >= 0")
    if isinstance(sweep, str):
        sweep = parse_sweep(sweep)
    requested = tuple(dict.fromkeys(p.strip() for p in policies))
    variants = _variants(scenarios, overrides, sweep)
    simulated = []
    for variant in variants:
        scenario = variant.scenario
        if mode == "ego":
            check_ego(scenario, variant.title, "use --mode fleet")
        for spec in requested:
            _check(spec, variant, mode)
        specs = [p for p in requested if p != BEST_FIXED]
        if BEST_FIXED in requested:
            specs += fixed_policies(scenario)
        if _allows(REFERENCE, scenario):
            specs.append(REFERENCE)
        if oracle and ORACLE in REGISTRY and _allows(ORACLE, scenario):
            specs.append(ORACLE)
        simulated.append(tuple(dict.fromkeys(specs)))
    notes = []
    missing = [v.title for v, specs in zip(variants, simulated, strict=True) if REFERENCE not in specs]
    if missing:
        notes.append(f"× fixed:4 is '-' on {', '.join(missing)}: fixed:4 is not allowed there")
    if ORACLE not in REGISTRY:
        notes.append("× oracle is '-': no policy named 'oracle' is registered")
    elif not oracle and ORACLE not in requested:
        notes.append("× oracle is '-': the oracle reference was left out")
    elif missing := [v.title for v, specs in zip(variants, simulated, strict=True) if ORACLE not in specs]:
        notes.append(f"× oracle is '-' on {', '.join(missing)}: the oracle is not allowed there")
    seed_list = tuple(range(seed_base, seed_base + seeds))
    tasks = tuple(
        Task(v, spec, seed, mode, trace and v == 0 and seed == seed_list[0])
        for v, specs in enumerate(simulated)
        for spec in specs
        for seed in seed_list
    )
    return Plan(tuple(variants), requested, tuple(simulated), seed_list, mode, sweep, tasks, tuple(notes))
