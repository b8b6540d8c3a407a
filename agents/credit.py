"""Per-session advantages for on-policy algorithms (config ``credit: round``).

In the fleet variant one policy decides for every session and a step lasts until *any* session
decides next, so a session's round ends several steps after the decision that started it, among
other sessions' rounds. GAE along the step sequence then credits each decision with whatever the
fleet committed in the next steps: measured on ``busy-cloud`` (PPO, 150k steps) the policy stayed
near uniform (entropy 2.4–2.7 of ln 17 = 2.83) and below every fixed window.

:class:`RoundCredit` recomputes the rollout's advantages and returns the way independent learners
that share one policy would: along each session's own decisions, each rewarded with the
``round_rate`` (or ``round_self``) term of the round it started (the env's ``credit``,
:mod:`dsd_gym.envs.rewards`):

    δ_p = r_p / σ + γ·V(s_q) − V(s_p),    A_p = δ_p + γλ·A_q

where ``q`` is the same session's next decision in the same episode, ``r_p`` the term of the round
decided at ``p`` and ``σ`` the running standard deviation of the terms (rewards on the scale of
a unit, as ``VecNormalize`` would). ``γ`` and ``λ`` are the algorithm's, per round of a session. A
decision whose session does not decide again within the rollout (its last in the rollout or the
episode) has no ``V(s_q)`` to bootstrap from: its advantage is 0 and its return its value, so it
moves neither the policy nor the value function. In the ego env every step is one round of the one
session, and this is SB3's own GAE on the ``round_rate`` rewards, less those last decisions. With
``γ = 0`` a decision's advantage is its round's term less the value of its state (a per-state
baseline): what ``round_self``, whose term prices the round's cost to the later rounds, wants.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.running_mean_std import RunningMeanStd

__all__ = ["RoundCredit", "session_advantages"]


def session_advantages(
    values: np.ndarray,
    rewards: np.ndarray,
    session: np.ndarray,
    episode: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """GAE along each (episode, session) chain of a rollout: arrays of shape (n_steps, n_envs).

    Returns ``(advantages, valid)``; ``valid`` is False where the chain ends in the rollout."""
    n_steps, n_envs = values.shape
    advantages = np.zeros_like(values, dtype=np.float32)
    valid = np.zeros(values.shape, dtype=bool)
    for e in range(n_envs):
        following = np.full(n_steps, -1)
        last: dict[tuple[int, int], int] = {}
        for p in range(n_steps):
            key = (int(episode[p, e]), int(session[p, e]))
            if key in last:
                following[last[key]] = p
            last[key] = p
        for p in range(n_steps - 1, -1, -1):
            q = following[p]
            if q < 0:
                continue
            delta = rewards[p, e] + gamma * values[q, e] - values[p, e]
            advantages[p, e] = delta + gamma * gae_lambda * advantages[q, e]
            valid[p, e] = True
    return advantages, valid


class RoundCredit(BaseCallback):
    """Overwrites the rollout buffer's advantages and returns with :func:`session_advantages`.

    It runs at ``on_rollout_end``, after SB3 computed its own GAE and before the update reads them;
    it reads each env's ``credit`` after every step (the env's reward must be ``round_rate`` or
    ``round_self``)."""

    def __init__(self, gamma: float, gae_lambda: float) -> None:
        super().__init__()
        self.gamma, self.gae_lambda = gamma, gae_lambda
        self.scale = RunningMeanStd(shape=())

    def _on_training_start(self) -> None:
        self._episodes = np.zeros(self.model.rollout_buffer.n_envs, dtype=np.int64)  # episodes ended per env

    def _on_rollout_start(self) -> None:
        buffer = self.model.rollout_buffer
        shape = (buffer.buffer_size, buffer.n_envs)
        self._rewards = np.zeros(shape)
        self._credited = np.zeros(shape, dtype=bool)
        self._session = np.zeros(shape, dtype=np.int64)
        self._episode = np.zeros(shape, dtype=np.int64)
        self._at: list[dict[int, int]] = [{} for _ in range(buffer.n_envs)]  # episode step -> position

    def _on_step(self) -> bool:
        p = self.model.rollout_buffer.pos
        dones = self.locals["dones"]
        credits: list[Any] = self.training_env.get_attr("credit")
        for e, credit in enumerate(credits):
            step, session, rounds = credit
            self._session[p, e], self._episode[p, e] = session, self._episodes[e]
            at = self._at[e]
            at[step] = p
            for decided, term in rounds:
                q = at.get(decided)  # None: decided in an earlier rollout, whose update is done
                if q is not None:
                    self._rewards[q, e] += term
                    self._credited[q, e] = True
            if dones[e]:
                self._episodes[e] += 1
                at.clear()
        return True

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        self.scale.update(self._rewards[self._credited])
        rewards = self._rewards / np.sqrt(self.scale.var + 1e-8)
        advantages, valid = session_advantages(
            buffer.values, rewards, self._session, self._episode, self.gamma, self.gae_lambda
        )
        buffer.advantages[:] = advantages
        buffer.returns[:] = np.where(valid, advantages + buffer.values, buffer.values)
        self.logger.record("credit/valid_share", float(valid.mean()))
