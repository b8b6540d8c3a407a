"""Policy specs: ``name`` or ``name:argument``, each name registered by the module that defines it.

A builder takes the argument (the text after the first ``:``, or ``""``) and the scenario, checks
them, and returns a controller factory (one controller per session). Bad specs raise ``UserError``
with one line naming the spec and what is allowed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from dsd_gym.errors import UserError
from dsd_gym.sim.controller import ControllerFactory

if TYPE_CHECKING:
    from dsd_gym.config.schema import Scenario

Builder = Callable[[str, "Scenario"], ControllerFactory]
T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    builder: Builder
    usage: str  # e.g. "fixed:G"
    summary: str  # one line for listings


REGISTRY: dict[str, Entry] = {}


def register(name: str, usage: str, summary: str) -> Callable[[Builder], Builder]:
    """Decorator: make ``name`` a policy spec handled by the decorated builder."""

    def add(builder: Builder) -> Builder:
        if name in REGISTRY:
            raise RuntimeError(f"policy name {name!r} registered twice")
        REGISTRY[name] = Entry(builder, usage, summary)
        return builder

    return add


def usages() -> str:
    return ", ".join(entry.usage for entry in REGISTRY.values())


def parse_policy(spec: str, scenario: Scenario) -> ControllerFactory:
    """A factory of controllers for ``spec``, checked against what ``scenario`` allows."""
    name, _, arg = spec.strip().partition(":")
    entry = REGISTRY.get(name)
    if entry is None:
        raise UserError(f"unknown policy {spec!r}; allowed: {usages()}")
    return entry.builder(arg.strip(), scenario)


def file_cache(load: Callable[[str], T], file_of: Callable[[str], str] = os.fspath) -> Callable[[str], T]:
    """``load(path)`` called once per version (modification time, size) of the file ``file_of(path)``
    names: a spec parsed twice (checked, then run) reads its file once, an edited file again."""

    @functools.lru_cache(maxsize=16)
    def cached(path: str, mtime_ns: int, size: int) -> T:
        return load(path)

    def get(path: str) -> T:
        try:
            stat = os.stat(file_of(path))
        except OSError:
            return load(path)  # the loader's own one-line error for a missing file
        return cached(os.path.abspath(path), stat.st_mtime_ns, stat.st_size)

    return get


def load_spec_file(name: str, arg: str, missing: str, load: Callable[[str], T]) -> T:
    """What the file of the spec ``name:arg`` holds, by ``load`` (which raises one-line ``UserError``s):
    its errors name the spec; ``missing`` says what to give when there is no ``arg``."""
    if not arg:
        raise UserError(f"policy {name!r}: {missing}")
    try:
        return load(arg)
    except UserError as exc:
        raise UserError(f"policy '{name}:{arg}': {exc}") from None
