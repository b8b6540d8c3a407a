"""Domain randomisation: every reset draws the scenario's ``randomize`` keys from ``np_random``.

Training draws differ from reset to reset and repeat under the same seed; ``randomize=False`` draws
nothing; the evaluation variants (``sampler.variants``) are a fixed list, whatever training did,
and ``reset(options={"values": v})`` runs exactly that variant.
"""

from __future__ import annotations

import gymnasium as gym
import pytest
import yaml

import dsd_gym  # noqa: F401  (registers the ids)
from dsd_gym.config import configs_dir
from dsd_gym.envs.registration import scenario_names

ID = "dsd_gym/DSD-v0"  # metro-5g, which has a randomize section
HORIZON_S = 5.0


def _section(name: str) -> dict:
    return yaml.safe_load((configs_dir() / "scenarios" / f"{name}.yaml").read_text()).get("randomize") or {}


def _draws(env: gym.Env, n: int, seed: int | None) -> list[dict]:
    out = []
    for i in range(n):
        env.reset(seed=seed if i == 0 else None)
        out.append(dict(env.unwrapped._episode[1]))
    return out


def test_successive_resets_draw_different_values_within_the_ranges() -> None:
    env = gym.make(ID, horizon_s=HORIZON_S)
    draws = _draws(env, 6, seed=0)
    section = _section("metro-5g")
    assert all(set(d) == set(section) for d in draws)
    for key in ("devices.0.link.delay.one_way_ms", "cloud.background.verify_rate_per_s"):
        values = [d[key] for d in draws]
        assert len(set(values)) == len(values), key
        low, high = section[key]["uniform"]
        assert all(low <= v <= high for v in values)
    assert {d["acceptance"] for d in draws} <= set(section["acceptance"]["choice"])
    # the drawn values are what the episode runs
    scenario = env.unwrapped.scenario
    assert scenario.devices[0].link.delay.one_way_ms == draws[-1]["devices.0.link.delay.one_way_ms"]
    assert scenario.cloud.background.verify_rate_per_s == draws[-1]["cloud.background.verify_rate_per_s"]


def test_same_seed_same_values() -> None:
    one, two = gym.make(ID, horizon_s=HORIZON_S), gym.make(ID, horizon_s=HORIZON_S)
    assert _draws(one, 4, seed=9) == _draws(two, 4, seed=9)
    assert _draws(one, 1, seed=9) == _draws(two, 1, seed=9)[:1]
    assert _draws(one, 1, seed=10) != _draws(two, 1, seed=9)


def test_randomize_false_draws_nothing() -> None:
    env = gym.make(ID, horizon_s=HORIZON_S, randomize=False)
    assert not env.unwrapped.sampler.randomized
    for values in _draws(env, 3, seed=0):
        assert values == {}
    assert env.unwrapped.scenario.devices[0].link.delay.one_way_ms == 10  # the file's value


@pytest.mark.parametrize("name", scenario_names())
def test_every_shipped_randomize_section_is_used(name: str) -> None:
    env = gym.make(f"dsd_gym/DSD-{name}-v0", horizon_s=HORIZON_S)
    assert set(env.unwrapped.sampler.ranges) == set(_section(name))
    env.reset(seed=0)
    assert set(env.unwrapped._episode[1]) == set(_section(name))


def test_variants_are_a_fixed_list_independent_of_training() -> None:
    env = gym.make(ID, horizon_s=HORIZON_S)
    first = env.unwrapped.sampler.variants(5, seed=0)
    _draws(env, 7, seed=123)  # training resets in between must not move the evaluation list
    again = env.unwrapped.sampler.variants(5, seed=0)
    fresh = gym.make(ID, horizon_s=HORIZON_S).unwrapped.sampler.variants(5, seed=0)
    assert [v for _, v in first] == [v for _, v in again] == [v for _, v in fresh]
    assert [s for s, _ in first] == [s for s, _ in again]
    assert len({tuple(sorted(v.items())) for _, v in first}) == 5
    assert [v for _, v in env.unwrapped.sampler.variants(5, seed=1)] != [v for _, v in first]
    assert [v for _, v in env.unwrapped.sampler.variants(3, seed=0)] == [v for _, v in first[:3]]


def test_reset_with_values_runs_that_variant() -> None:
    env = gym.make(ID, horizon_s=HORIZON_S)
    for variant, values in env.unwrapped.sampler.variants(3, seed=0):
        env.reset(seed=5, options={"values": values})
        assert env.unwrapped._episode[1] == values
        ran = env.unwrapped.scenario
        same_length = {"duration_s": variant.duration_s, "warmup_s": variant.warmup_s}
        assert ran.model_copy(update=same_length) == variant
        assert ran.duration_s == HORIZON_S
        env.step(0)
    # a variant replays exactly: same seed and values, same episode
    values = env.unwrapped.sampler.variants(1, seed=0)[0][1]
    runs = []
    for _ in range(2):
        obs, _ = env.reset(seed=5, options={"values": values})
        runs.append([env.step(a)[0].tobytes() for a in (0, 3, 7, 16, 2)])
    assert runs[0] == runs[1]


def test_randomize_kwarg_replaces_the_section() -> None:
    env = gym.make(ID, horizon_s=HORIZON_S, randomize={"devices.0.count": {"integers": [1, 3]}})
    draws = _draws(env, 8, seed=0)
    assert all(set(d) == {"devices.0.count"} for d in draws)
    counts = {d["devices.0.count"] for d in draws}
    assert counts <= {1, 2, 3} and len(counts) > 1
    assert len(env.unwrapped._sim.sessions) == draws[-1]["devices.0.count"]
