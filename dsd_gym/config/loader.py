"""Load scenarios and profiles from YAML, apply ``--set`` overrides, validate, explain errors.

A scenario is named (``configs/scenarios/<name>.yaml``) or given by path. Overrides are applied to the
raw mapping before validation, so an override is checked exactly like the file it changes. Every
failure is a :class:`~dsd_gym.errors.UserError` with one line naming the key, the value and what is
allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from dsd_gym.config import schema
from dsd_gym.errors import UserError

PROFILE_TABLES: dict[str, type[BaseModel]] = {
    "hardware": schema.HardwareProfile,
    "models": schema.ModelProfile,
    "acceptance": schema.AcceptanceProfile,
    "tasks": schema.TaskProfile,
}


def configs_dir() -> Path:
    """The data folder: ``$DSD_GYM_CONFIGS`` or the repository's ``configs/``."""
    env = os.environ.get("DSD_GYM_CONFIGS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "configs"


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UserError(f"{path}{where}: {problem}; the file must be valid YAML") from None


@functools.lru_cache(maxsize=4)
def load_profiles(root: Path) -> dict[str, dict[str, BaseModel]]:
    """Every profile table in ``root/profiles``, validated. Profiles carry their name."""
    tables: dict[str, dict[str, BaseModel]] = {}
    for table, cls in PROFILE_TABLES.items():
        path = root / "profiles" / f"{table}.yaml"
        raw = _read_yaml(path) or {}
        if not isinstance(raw, dict):
            raise UserError(f"{path}: expected a mapping of profile name to fields")
        entries: dict[str, BaseModel] = {}
        for name, fields in raw.items():
            if not isinstance(fields, dict):
                raise UserError(f"{path}: profile {name!r} must be a mapping of fields")
            try:
                entries[name] = cls.model_validate({"name": name, **fields})
            except ValidationError as exc:
                raise UserError(f"{path}: profile {name!r}: {explain(exc, cls)}") from None
        tables[table] = entries
    return tables


def profile_contexts(root: Path) -> dict[str, dict[str, Any]]:
    """The validation context: profile tables as the values a name resolves to."""
    tables = load_profiles(root)
    context: dict[str, dict[str, Any]] = {
        table: {name: p for name, p in entries.items()} for table, entries in tables.items()
    }
    context["acceptance"] = {name: p.process for name, p in tables["acceptance"].items()}
    return context


def list_scenarios(root: Path | None = None) -> list[tuple[str, str]]:
    """(name, one-line description) of every shipped scenario, sorted by name."""
    root = root or configs_dir()
    rows = []
    for path in sorted((root / "scenarios").glob("*.yaml")):
        raw = _read_yaml(path) or {}
        description = str(raw.get("description", "")).strip().splitlines()
        rows.append((path.stem, description[0] if description else ""))
    return rows


# --------------------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.0.c=value`` -> (["a", "b", "0", "c"], parsed YAML value)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"override {text!r}: expected dotted.key=value, e.g. cloud.router=jsq")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        raise UserError(f"override {text!r}: the value is not valid YAML") from None
    return key.split("."), parsed


def apply_override(raw: dict[str, Any], text: str) -> None:
    """Set one dotted key in the raw scenario mapping (lists are indexed by number)."""
    path, value = parse_override(text)
    set_key(raw, path, value, f"override {text!r}")


def set_key(raw: dict[str, Any], path: list[str], value: Any, what: str) -> None:
    """Set ``value`` at ``path`` (mapping keys and list indices); ``what`` names it in errors."""
    node: Any = raw
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        where = ".".join(path[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise UserError(
                    f"{what}: {where} is not an item of a list of {len(node)}; "
                    f"allowed indices 0..{len(node) - 1}"
                )
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            parent = ".".join(path[:depth])
            raise UserError(f"{what}: {parent} is a value ({node!r}), not a mapping or list")


# --------------------------------------------------------------------------- validation errors

_TAGS = {"kind", "dist"}


def _union_members(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _union_members(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(tp) for m in _union_members(arg)]
    return [tp]


def _tag_values(member: Any) -> tuple[str, ...]:
    """The discriminator values that select ``member`` in a tagged union (none if it has no tag)."""
    if not (isinstance(member, type) and issubclass(member, BaseModel)):
        return ()
    tag = next((t for t in _TAGS if t in member.model_fields), None)
    return typing.get_args(member.model_fields[tag].annotation) if tag else ()


def _walk(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[list[Any], list[Any]]:
    """Follow a pydantic error location through the schema.

    Returns the location as the user writes it (pydantic inserts the tag of a tagged union, e.g.
    ``delay.constant.one_way_ms``; the user's key is ``delay.one_way_ms``) and the union members
    the location ends on.
    """
    key: list[Any] = []
    candidates: list[Any] = [root]
    for part in loc:
        members = [m for tp in candidates for m in _union_members(tp)]
        tagged = [m for m in members if _tag_values(m)]
        if isinstance(part, int):
            candidates = [a for m in members if typing.get_origin(m) is list for a in typing.get_args(m)]
        elif _branch_label(part, members):
            continue  # pydantic names the branch of an untagged union it tried; the user writes no such key
        elif len(tagged) > 1:
            candidates = [m for m in tagged if part in _tag_values(m)]
            continue
        else:
            candidates = [
                m.model_fields[part].annotation
                for m in members
                if isinstance(m, type) and issubclass(m, BaseModel) and part in m.model_fields
            ]
        key.append(part)
    return key, [m for tp in candidates for m in _union_members(tp)]


def _branch_label(part: Any, members: list[Any]) -> bool:
    """Whether ``part`` of an error location is the label pydantic gives an untagged union's branch
    (``constrained-int``, ``dict[...]``) rather than a key: the location is on a union of several
    members and no model among them has a field of that name."""
    if not isinstance(part, str) or len(members) < 2 or any(_tag_values(m) for m in members):
        return False
    return not any(
        isinstance(m, type) and issubclass(m, BaseModel) and part in m.model_fields for m in members
    )


def _allowed_keys(members: list[Any]) -> list[str] | None:
    """The field names of the (first) model among ``members``."""
    for member in members:
        if isinstance(member, type) and issubclass(member, BaseModel):
            return sorted(member.model_fields)
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def explain(exc: ValidationError, root: type[BaseModel]) -> str:
    """One line from the first validation error: key, value, what is allowed."""
    errors = exc.errors(include_url=False)
    # An untagged union reports one error per branch, the first one first; the branch that got the
    # furthest into the value is the one the user meant (a mapping given for `int | dict[...]`).
    where = _walk(root, tuple(errors[0]["loc"]))[0]
    same = [e for e in errors if _walk(root, tuple(e["loc"]))[0][: len(where)] == where]
    err = max(same, key=lambda e: len(e["loc"]))  # ties: the first
    path, members = _walk(root, tuple(err["loc"]))
    if path and path[-1] == "[key]":
        key = ".".join(str(p) for p in path[:-2])
        return f"{key}: key {_short(err.get('input'))} is invalid: {err['msg']}"
    key = ".".join(str(p) for p in path)
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(_walk(root, tuple(err["loc"])[:-1])[1])
        hint = f"allowed keys: {', '.join(allowed)}" if allowed else "check the spelling"
        return f"{key}: unknown key (value {_short(value)}); {hint}"
    if kind == "missing":
        return f"{key}: required key is missing"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = err["ctx"]["discriminator"].strip("'")
        allowed = ", ".join(t for m in members for t in _tag_values(m))
        if kind == "union_tag_not_found":
            return f"{key}.{tag}: required key is missing; allowed: {allowed}"
        return f"{key}.{tag}: unknown {tag} {_short(err['ctx']['tag'])}; allowed: {allowed}"
    msg = err["msg"].removeprefix("Value error, ")
    if isinstance(value, dict):  # a check across several keys of one mapping: its message names them
        return f"{key}: {msg}" if key else msg
    return f"{key}: value {_short(value)} is invalid: {msg}"


# --------------------------------------------------------------------------- scenarios


def _resolve_paths(node: Any, bases: list[Path]) -> None:
    """Make every relative ``path`` value absolute: next to the scenario first, then configs/."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "path" and isinstance(value, str) and not Path(value).is_absolute():
                found = next((b / value for b in bases if (b / value).exists()), bases[-1] / value)
                node[key] = str(found)
            else:
                _resolve_paths(value, bases)
    elif isinstance(node, list):
        for item in node:
            _resolve_paths(item, bases)


def scenario_path(name_or_path: str, root: Path | None = None) -> Path:
    root = root or configs_dir()
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.exists():
            raise UserError(f"scenario file {name_or_path!r}: no such file")
        return candidate
    named = root / "scenarios" / f"{name_or_path}.yaml"
    if not named.exists():
        names = ", ".join(n for n, _ in list_scenarios(root))
        raise UserError(f"unknown scenario {name_or_path!r}; allowed: {names}, or a path to a .yaml file")
    return named


@dataclasses.dataclass(frozen=True)
class RawScenario:
    """A scenario as read, before validation: what overrides and domain randomisation change."""

    data: dict[str, Any]
    bases: tuple[Path, ...]  # where relative paths are looked up, in order
    root: Path

    def with_overrides(self, overrides: typing.Iterable[str]) -> RawScenario:
        data = copy.deepcopy(self.data)
        for text in overrides:
            apply_override(data, text)
        return dataclasses.replace(self, data=data)

    def with_values(self, values: dict[str, Any]) -> RawScenario:
        """Set dotted keys to already-parsed values (no YAML parsing of the value)."""
        data = copy.deepcopy(self.data)
        for key, value in values.items():
            set_key(data, key.split("."), value, key)
        return dataclasses.replace(self, data=data)

    def validate(self) -> schema.Scenario:
        """Validate and cross-check. Raises UserError on any problem."""
        data = copy.deepcopy(self.data)
        _resolve_paths(data, list(self.bases))
        try:
            scenario = schema.Scenario.model_validate(data, context={"profiles": profile_contexts(self.root)})
        except ValidationError as exc:
            raise UserError(f"scenario {data.get('name')!r}: {explain(exc, schema.Scenario)}") from None
        _check_files(scenario, self.root)
        _check_policies(scenario)
        return scenario


def read_scenario(
    name_or_path: str, overrides: typing.Sequence[str] = (), root: Path | None = None
) -> RawScenario:
    """Read a scenario file and apply ``--set`` overrides, without validating."""
    root = root or configs_dir()
    path = scenario_path(name_or_path, root)
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a scenario must be a mapping of keys to values")
    raw.setdefault("name", path.stem)
    return RawScenario(raw, (path.parent.resolve(), root.resolve()), root).with_overrides(overrides)


def load_scenario(
    name_or_path: str, overrides: typing.Sequence[str] = (), root: Path | None = None
) -> schema.Scenario:
    """Read, override, validate and cross-check a scenario. Raises UserError on any problem."""
    return read_scenario(name_or_path, overrides, root).validate()


def _check_policies(scenario: schema.Scenario) -> None:
    """Parse the background groups' policy specs now, so the error names the key that holds a bad one.

    ``control.policy`` is only a default (a run may name its own), so it is checked where it is used.
    """
    from dsd_gym.controllers import parse_policy

    for i, group in enumerate(scenario.devices):
        if group.policy is not None:
            try:
                parse_policy(group.policy, scenario)
            except UserError as exc:
                raise UserError(f"scenario {scenario.name!r}: devices.{i}.policy: {exc}") from None


def _check_files(scenario: schema.Scenario, root: Path) -> None:
    """Parse every referenced data file now, so a bad file fails at load, not mid-run."""
    from dsd_gym.sim import traces

    def load(key: str, parse: typing.Callable[[str], Any], path: str) -> Any:
        where = f"scenario {scenario.name!r}: {key}"
        if not Path(path).is_file():
            raise UserError(
                f"{where}: no such file {path!r}; a relative path is looked up next to the "
                f"scenario file, then in {root}"
            )
        try:
            return parse(path)
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None

    for prefix, groups in (("devices", scenario.devices), ("cloud.targets", scenario.cloud.targets)):
        for i, group in enumerate(groups):
            if isinstance(group.latency, schema.LookupLatency):
                load(f"{prefix}.{i}.latency.path", traces.load_latency_table, group.latency.path)
    for i, device in enumerate(scenario.devices):
        if isinstance(device.link.delay, schema.TraceDelay):
            load(f"devices.{i}.link.delay.path", traces.load_network_trace, device.link.delay.path)
    if isinstance(scenario.workload, schema.TraceWorkload):
        path = scenario.workload.path
        requests = load("workload.path", traces.load_workload_trace, path)
        devices = {d.name for d in scenario.devices if d.policy is None}
        profiles = load_profiles(root)["acceptance"]
        where = f"scenario {scenario.name!r}: workload.path: {path}"
        for i, req in enumerate(requests):
            if req.device is not None and req.device not in devices:
                raise UserError(
                    f"{where}: request {i}: unknown device {req.device!r}; "
                    f"allowed: {', '.join(sorted(devices))}"
                )
            if req.acceptance is not None and req.acceptance not in profiles:
                raise UserError(
                    f"{where}: request {i}: unknown acceptance profile "
                    f"{req.acceptance!r}; allowed: {', '.join(sorted(profiles))}"
                )
