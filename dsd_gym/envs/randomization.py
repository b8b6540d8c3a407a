"""Domain randomisation: scenario keys drawn at every reset, and fixed-order evaluation variants.

A scenario's ``randomize`` section (or the env's ``randomize`` kwarg) maps dotted keys to ranges::

    randomize:
      devices.0.link.delay.one_way_ms: {uniform: [2, 60]}
      cloud.background.verify_rate_per_s: {log_uniform: [50, 800]}
      devices.0.count: {integers: [1, 16]}
      acceptance: {choice: [llama-3.2-1b/llama-3.1-70b/chat, prose-code-mix, drifting-chat]}

Training draws from the env's ``np_random`` (the randomised sampler); evaluation uses
:meth:`ScenarioSampler.variants`, a fixed list from its own seed, so every policy is judged on the
same variants in the same order (as in Pensieve/Genet's trace iterators).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dsd_gym.config.loader import RawScenario
from dsd_gym.config.schema import RandomRange, Scenario
from dsd_gym.errors import UserError


def _draw(spec: RandomRange, rng: np.random.Generator) -> Any:
    if spec.uniform is not None:
        return float(rng.uniform(*spec.uniform))
    if spec.log_uniform is not None:
        low, high = spec.log_uniform
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))
    if spec.integers is not None:
        return int(rng.integers(spec.integers[0], spec.integers[1] + 1))
    assert spec.choice is not None
    return spec.choice[int(rng.integers(len(spec.choice)))]


def _extremes(spec: RandomRange) -> list[Any]:
    """The values that bound a range: enough to check that every draw will validate."""
    if spec.choice is not None:
        return list(spec.choice)
    bounds = spec.uniform or spec.log_uniform or spec.integers
    assert bounds is not None
    return list(bounds)


class ScenarioSampler:
    """Draws scenario variants from a raw scenario and a set of ranges (keys in sorted order)."""

    def __init__(self, raw: RawScenario, ranges: dict[str, RandomRange]) -> None:
        self.raw = raw.with_values({"randomize": {}})
        self.ranges = dict(sorted(ranges.items()))
        self.base = self.raw.validate()
        for key, spec in self.ranges.items():
            for value in _extremes(spec):
                try:
                    self.raw.with_values({key: value}).validate()
                except UserError as exc:
                    raise UserError(f"randomize.{key}: value {value!r} makes a bad scenario: {exc}") from None

    @property
    def randomized(self) -> bool:
        return bool(self.ranges)

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        return {key: _draw(spec, rng) for key, spec in self.ranges.items()}

    def scenario(self, values: dict[str, Any]) -> Scenario:
        return self.raw.with_values(values).validate() if values else self.base

    def sample(self, rng: np.random.Generator) -> tuple[Scenario, dict[str, Any]]:
        values = self.draw(rng)
        return self.scenario(values), values

    def variants(self, n: int, seed: int = 0) -> list[tuple[Scenario, dict[str, Any]]]:
        """``n`` variants in a fixed order (the evaluation iterator), independent of training draws."""
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0xE7A1,)))
        return [self.sample(rng) for _ in range(n)]
