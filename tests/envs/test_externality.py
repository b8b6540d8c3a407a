"""The realised externality ``X`` of ``round_rate`` and the self-delay ``Δ`` of ``round_self``
(``dsd_gym/envs/externality.py``)."""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

import dsd_gym  # noqa: F401  (registers the ids)
from dsd_gym.envs.externality import batch_externality, batch_self_delay
from dsd_gym.sim.cloud import Job, JobKind


class _Linear:
    """A forward pass costing 1 ms + 0.1 ms per sequence + 0.01 ms per token (context ignored)."""

    def iteration_s(self, B: int, N: int, C: float, NC: float) -> float:
        return 1e-3 + 1e-4 * B + 1e-5 * N


def _job(kind: JobKind, gamma: int, owner: str) -> tuple[Job, int]:
    tokens = 1 if kind == JobKind.DECODE else gamma + 1
    return Job(kind, tokens, 100, gamma, owner), tokens


def _shape(batch: list[tuple[Job, int]]) -> tuple[int, int, float, float]:
    """The iteration's (size, tokens, context sum, attention) as ``Target._form`` passes them."""
    context = sum(job.context for job, _ in batch)
    attention = sum(take * (job.context + (take + 1) / 2) for job, take in batch)
    return len(batch), sum(take for _, take in batch), context, attention


def _x(batch: list[tuple[Job, int]], team: set[str], waiting: int = 0) -> dict[str, float]:
    queue = [(0.0, i, _job(JobKind.VERIFY, 2, "a")[0]) for i in range(waiting)]
    target = SimpleNamespace(cost=_Linear(), draft_cost=_Linear(), queue=queue)
    return dict(batch_externality(target, batch, *_shape(batch), team))


def test_a_verify_job_costs_each_teammate_its_tokens_and_sequence() -> None:
    batch = [_job(JobKind.VERIFY, 3, "a"), _job(JobKind.VERIFY, 1, "b"), _job(JobKind.VERIFY, 5, "tenant")]
    x = _x(batch, {"a", "b"})
    assert x["a"] == pytest.approx(1 * (1e-4 + 4e-5))  # one teammate (b), 4 tokens
    assert x["b"] == pytest.approx(1 * (1e-4 + 2e-5))
    assert "tenant" not in x
    # Teammates waiting in the queue wait for the job too; alone in the team, a job costs nothing.
    assert _x(batch, {"a", "b"}, waiting=2)["a"] == pytest.approx(3 * (1e-4 + 4e-5))
    assert _x(batch, {"a"}) == {"a": 0.0}


def test_fused_draft_passes_are_shared_by_the_jobs_that_want_them() -> None:
    batch = [_job(JobKind.FUSED, 2, "a"), _job(JobKind.FUSED, 1, "b"), _job(JobKind.VERIFY, 3, "c")]
    x = _x(batch, {"a", "b", "c"})
    pass_two, pass_one = 1e-3 + 2e-4 + 2e-5, 1e-3 + 1e-4 + 1e-5  # pass 0 drafts for 2 jobs, pass 1 for 1
    verify_a = 1e-4 + 3e-5
    # X = n·v + (n + 1)·s − o with n = 2 teammates
    share_a, own_a = pass_two / 2 + pass_one, pass_two + pass_one
    assert x["a"] == pytest.approx(2 * verify_a + 3 * share_a - own_a)
    assert x["c"] == pytest.approx(2 * (1e-4 + 4e-5))


def test_x_is_zero_in_the_ego_env_and_charged_in_the_fleet() -> None:
    for env_id, charged in (("dsd_gym/DSD-busy-cloud-v0", False), ("dsd_gym/DSDFleet-busy-cloud-v0", True)):
        env = gym.make(env_id, horizon_s=5.0, reward="round_rate")
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        extra, truncated = [], False
        while not truncated:
            _, reward, _, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
            extra += env.unwrapped._credit_book.extra
        assert min(extra) >= 0
        assert (max(extra) > 0) == charged, env_id


def test_round_rate_charges_x_at_the_rate_so_far() -> None:
    env = gym.make("dsd_gym/DSDFleet-busy-cloud-v0", horizon_s=5.0, reward="round_rate")
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    tokens = busy_s = 0.0
    truncated = False
    while not truncated:
        _, reward, _, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        rate = tokens / busy_s if busy_s > 0 else 0.0
        rounds, extra = env.unwrapped._step_rounds, env.unwrapped._credit_book.extra
        expected = sum(
            r.committed - rate * (r.end_s - r.start_s + x) for r, x in zip(rounds, extra, strict=True)
        )
        assert reward == pytest.approx(expected, abs=1e-9)
        tokens += sum(r.committed for r in rounds)
        busy_s += sum(r.end_s - r.start_s + x for r, x in zip(rounds, extra, strict=True))


def test_teammates_in_flight_count_with_their_weight() -> None:
    """Three teammates with a round in flight besides a's and b's (in the batch): weight 0.5 adds 1.5."""
    batch = [_job(JobKind.VERIFY, 3, "a"), _job(JobKind.VERIFY, 1, "b")]
    target = SimpleNamespace(cost=_Linear(), draft_cost=_Linear(), queue=[])
    attention = sum(take * (job.context + (take + 1) / 2) for job, take in batch)
    team = {"a", "b"}
    x = dict(batch_externality(target, batch, 2, 6, 200, attention, team, in_flight=5, flight_weight=0.5))
    assert x["a"] == pytest.approx((1 + 1.5) * (1e-4 + 4e-5))


def _delta(batch: list[tuple[Job, int]], team: set[str]) -> dict[str, float]:
    target = SimpleNamespace(cost=_Linear(), draft_cost=_Linear(), queue=[])
    return dict(batch_self_delay(target, batch, *_shape(batch), team))


def test_self_delay_is_what_the_job_adds_to_its_iteration() -> None:
    """Δ: the job's sequence and tokens in the forward pass, plus the draft passes it alone makes run."""
    batch = [_job(JobKind.FUSED, 2, "a"), _job(JobKind.FUSED, 1, "b"), _job(JobKind.VERIFY, 3, "c")]
    delta = _delta(batch, {"a", "b", "c"})
    pass_two, pass_one = 1e-3 + 2e-4 + 2e-5, 1e-3 + 1e-4 + 1e-5  # passes drafting for 2 jobs, for 1
    # Without a, one pass drafts for b alone (pass_one) instead of pass_two then pass_one.
    assert delta["a"] == pytest.approx(1e-4 + 3e-5 + pass_two)
    # Without b, a's two passes draft for a alone (pass_one twice).
    assert delta["b"] == pytest.approx(1e-4 + 2e-5 + pass_two - pass_one)
    assert delta["c"] == pytest.approx(1e-4 + 4e-5)
    # Alone in its iteration, a job adds the whole iteration: its forward pass and every draft pass.
    alone = _delta([_job(JobKind.FUSED, 3, "a")], {"a"})
    assert alone["a"] == pytest.approx(1e-3 + 1e-4 + 4e-5 + 3 * pass_one)
    assert _delta(batch, {"c"}).keys() == {"c"}, "only the team's jobs are charged"
