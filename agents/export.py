"""Export an RL agent of ``dsd-gym train rl`` as ONE TorchScript file (DESIGN §7), kind ``sb3``.

The file follows the contract of :mod:`dsd_gym.runtime.exported` — ``decide(features [B, F], state
[B, S]) -> (gamma [B], mode [B], new_state [B, S])``, ``initial_state(batch)``, ``forward(features
[F]) -> (gamma, mode)`` with the state inside, ``reset()`` — and decides exactly as ``sb3:PATH``
(:mod:`dsd_gym.controllers.sb3`) does in-process:

1. **Observation history.** The state's first ``(history + 1) · F`` columns are the telemetry vectors
   after the session's newest updates (rounds and request prefills), newest first (zeros before its
   first): the training env's observation. A runtime calls the file once per decision and cannot say
   whether anything happened since the last call; the file infers it: new features that differ from
   the newest row are a new update's and are pushed, features equal to it (a decision whose job was
   lost, repeated) are not. The env and ``sb3:PATH`` count the tracker's updates instead
   (:meth:`dsd_gym.telemetry.TelemetryTracker.stacked`); inference and count agree unless two
   consecutive updates leave bit-identical telemetry vectors, which their clock times and context
   lengths make practically impossible.
2. **Normalisation.** VecNormalize's ``clip((x − mean) / sqrt(var + epsilon), ±clip_obs)`` in float64,
   then float32 — VecNormalize's own arithmetic, so the network sees the same bits.
3. **The policy network**, copied from the SB3 policy with gradients off, and its deterministic
   action: the mode of the categorical distribution for PPO / A2C / RecurrentPPO (argmax of its
   probabilities, computed as ``torch.distributions.Categorical`` computes them), the argmax of the
   Q-values for DQN and of the quantiles' mean for QR-DQN. A recurrent policy's LSTM ``h`` and ``c``
   (``n_layers · hidden`` each) follow the history in the state; they start at zeros, as SB3's
   ``episode_start`` resets them at a session's first decision.
4. **The action table**: action index -> γ and mode code (``run.json`` ``decisions``).

>>> from agents.export import export_run  # doctest: +SKIP
>>> export_run("runs/agents/ppo/DSD-v0-seed0", "controller.pt")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dsd_gym.controllers.rl_run import MODE_NAMES
from dsd_gym.controllers.sb3 import LoadedRun, load_run
from dsd_gym.errors import UserError
from dsd_gym.runtime.exported import MODE_CODES
from dsd_gym.runtime.write import metadata_header, provenance, save_controller
from dsd_gym.sim.controller import Mode
from dsd_gym.telemetry import FEATURES, HIGH, LOW

__all__ = ["KIND", "SB3Controller", "controller_from_run", "export_controller", "export_run", "run_metadata"]

KIND = "sb3"


def _frozen(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).eval().requires_grad_(False)


class CategoricalHead(nn.Module):
    """PPO / A2C: the actor's latent net and action logits; scores are the categorical probabilities.

    ``argmax`` of the probabilities, not of the logits: that is SB3's deterministic action
    (``CategoricalDistribution.mode``), and softmax can make distinct logits equal probabilities.
    """

    def __init__(self, policy_net: nn.Module, action_net: nn.Module) -> None:
        super().__init__()
        self.policy_net = _frozen(policy_net)
        self.action_net = _frozen(action_net)

    def forward(self, obs: Tensor, lstm: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.action_net(self.policy_net(obs))
        logits = logits - logits.logsumexp(dim=-1, keepdim=True)  # as Categorical(logits=...) does
        return torch.softmax(logits, dim=-1), lstm


class RecurrentCategoricalHead(nn.Module):
    """RecurrentPPO: one LSTM step (state ``[B, 2 · layers · hidden]``: h then c), then as above."""

    def __init__(self, lstm: nn.LSTM, policy_net: nn.Module, action_net: nn.Module) -> None:
        super().__init__()
        self.lstm = _frozen(lstm)
        self.layers = lstm.num_layers
        self.hidden = lstm.hidden_size
        self.policy_net = _frozen(policy_net)
        self.action_net = _frozen(action_net)

    def forward(self, obs: Tensor, lstm: Tensor) -> tuple[Tensor, Tensor]:
        batch = obs.shape[0]
        hc = lstm.view(batch, 2, self.layers, self.hidden).transpose(0, 2)  # [layers, 2, B, hidden]
        out, (h, c) = self.lstm(obs.unsqueeze(0), (hc[:, 0].contiguous(), hc[:, 1].contiguous()))
        logits = self.action_net(self.policy_net(out[0]))
        logits = logits - logits.logsumexp(dim=-1, keepdim=True)
        new = torch.stack([h, c], dim=1).transpose(0, 2).reshape(batch, -1)
        return torch.softmax(logits, dim=-1), new


class QHead(nn.Module):
    """DQN: the Q-network; scores are the Q-values."""

    def __init__(self, q_net: nn.Module) -> None:
        super().__init__()
        self.q_net = _frozen(q_net)

    def forward(self, obs: Tensor, lstm: Tensor) -> tuple[Tensor, Tensor]:
        return self.q_net(obs), lstm


class QuantileHead(nn.Module):
    """QR-DQN: the quantile network; scores are each action's mean over its quantiles."""

    def __init__(self, quantile_net: nn.Module, n_quantiles: int, n_actions: int) -> None:
        super().__init__()
        self.quantile_net = _frozen(quantile_net)
        self.n_quantiles = n_quantiles
        self.n_actions = n_actions

    def forward(self, obs: Tensor, lstm: Tensor) -> tuple[Tensor, Tensor]:
        quantiles = self.quantile_net(obs).view(-1, self.n_quantiles, self.n_actions)
        return quantiles.mean(dim=1), lstm


class SB3Controller(nn.Module):
    """History → normalisation → policy head → argmax → (γ, mode); batched and single-session."""

    def __init__(
        self,
        head: nn.Module,
        history: int,
        lstm_size: int,
        decisions: list[tuple[int, int]],
        mean: np.ndarray | None,
        var: np.ndarray | None,
        epsilon: float,
        clip_obs: float,
    ) -> None:
        super().__init__()
        features = len(FEATURES)
        self.head = head
        self.features = features
        self.rows = (history + 1) * features
        self.state_size = self.rows + lstm_size
        self.register_buffer("low", torch.from_numpy(LOW.copy()))
        self.register_buffer("high", torch.from_numpy(HIGH.copy()))
        self.normalize = mean is not None
        size = self.rows
        mean64 = np.zeros(size) if mean is None else np.asarray(mean, dtype=np.float64)
        # VecNormalize divides by np.sqrt(var + epsilon) at every call; computed once here, to the bit.
        std64 = np.ones(size) if var is None else np.sqrt(np.asarray(var, dtype=np.float64) + epsilon)
        self.register_buffer("mean", torch.from_numpy(mean64))
        self.register_buffer("std", torch.from_numpy(std64))
        self.clip_obs = float(clip_obs)
        self.register_buffer("gammas", torch.tensor([g for g, _ in decisions], dtype=torch.int64))
        self.register_buffer("modes", torch.tensor([m for _, m in decisions], dtype=torch.int64))
        self.session = torch.zeros(1, self.state_size)  # forward's state (one session)

    @torch.jit.export
    def initial_state(self, batch: int) -> Tensor:
        return torch.zeros(batch, self.state_size)

    @torch.jit.export
    def reset(self) -> None:
        """Forget the single-session state of ``forward`` (a new session starts)."""
        self.session = torch.zeros(1, self.state_size)

    @torch.jit.export
    def observation(self, features: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """(the policy's normalised input [B, (history + 1) · F], the new history rows)."""
        rows = torch.clamp(features, self.low, self.high)
        if self.rows > self.features:  # with history: push the features only after a new round
            old = state[:, : self.rows]
            new_round = (rows != old[:, : self.features]).any(dim=1, keepdim=True)
            rows = torch.where(new_round, torch.cat([rows, old[:, : self.rows - self.features]], dim=1), old)
        obs = rows
        if self.normalize:
            z = (rows.to(torch.float64) - self.mean) / self.std
            obs = z.clamp(-self.clip_obs, self.clip_obs).to(torch.float32)
        return obs, rows

    @torch.jit.export
    def decide(self, features: Tensor, state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """features [B, F] float32, state [B, S] float32 → (γ [B] int64, mode [B] int64, new state)."""
        obs, rows = self.observation(features, state)
        scores, lstm = self.head(obs, state[:, self.rows :])
        action = torch.argmax(scores, dim=1)
        return self.gammas[action], self.modes[action], torch.cat([rows, lstm], dim=1)

    def forward(self, features: Tensor) -> tuple[int, int]:
        """One session's decision on features [F]; the state stays in the module."""
        gamma, mode, self.session = self.decide(features.unsqueeze(0), self.session)
        return int(gamma[0]), int(mode[0])


def _head(run: LoadedRun) -> tuple[nn.Module, int, dict[str, Any]]:
    """(the policy head, its LSTM state width, its description) of the run's SB3 policy."""
    from stable_baselines3.common.torch_layers import FlattenExtractor

    policy = run.model.policy
    where = f"RL run {run.folder}"
    if hasattr(policy, "lstm_actor"):
        extractor = policy.pi_features_extractor
        lstm = policy.lstm_actor
        head: nn.Module = RecurrentCategoricalHead(lstm, policy.mlp_extractor.policy_net, policy.action_net)
        lstm_size = 2 * lstm.num_layers * lstm.hidden_size
        info = {"head": "LSTM -> actor MLP -> categorical mode", "lstm_layers": lstm.num_layers,
                "lstm_hidden": lstm.hidden_size}  # fmt: skip
    elif hasattr(policy, "quantile_net"):
        extractor = policy.quantile_net.features_extractor
        net = policy.quantile_net
        head, lstm_size = QuantileHead(net.quantile_net, net.n_quantiles, int(run.model.action_space.n)), 0
        info = {"head": "quantile network -> argmax of quantile means", "n_quantiles": net.n_quantiles}
    elif hasattr(policy, "q_net"):
        extractor = policy.q_net.features_extractor
        head, lstm_size = QHead(policy.q_net.q_net), 0
        info = {"head": "Q-network -> argmax"}
    elif hasattr(policy, "action_net"):
        extractor = policy.pi_features_extractor
        head, lstm_size = CategoricalHead(policy.mlp_extractor.policy_net, policy.action_net), 0
        info = {"head": "actor MLP -> categorical mode"}
    else:
        raise UserError(f"{where}: cannot export a {type(policy).__name__}; allowed: the policies of ppo, "
                        "a2c, dqn, qrdqn, recurrent-ppo")  # fmt: skip
    if type(extractor) is not FlattenExtractor:
        raise UserError(
            f"{where}: cannot export features extractor {type(extractor).__name__}; allowed: FlattenExtractor"
        )
    return head, lstm_size, {"class": type(policy).__name__, **info, "repr": repr(policy)}


def controller_from_run(run: LoadedRun) -> tuple[SB3Controller, dict[str, Any]]:
    """The exportable controller of a loaded run and its policy's description."""
    head, lstm_size, policy = _head(run)
    vecnorm = run.vecnorm
    decisions = [(d.gamma, int(d.mode)) for d in run.decisions]
    if vecnorm is None:
        controller = SB3Controller(head, run.info.history, lstm_size, decisions, None, None, 0.0, 0.0)
    else:
        controller = SB3Controller(
            head, run.info.history, lstm_size, decisions, vecnorm.obs_rms.mean, vecnorm.obs_rms.var,
            float(vecnorm.epsilon), float(vecnorm.clip_obs),
        )  # fmt: skip
    return controller, policy


def run_metadata(run: LoadedRun, controller: SB3Controller, policy: dict[str, Any]) -> dict[str, Any]:
    """The file's ``metadata.json`` (format: :mod:`dsd_gym.runtime.exported`, kind ``sb3``)."""
    info, vecnorm = run.info, run.vecnorm
    windows = sorted({d.gamma for d in run.decisions if d.mode != Mode.AUTOREGRESSIVE})
    modes = [name for name in MODE_CODES if any(MODE_NAMES[d.mode] == name for d in run.decisions)]
    rows = controller.rows
    return {
        **metadata_header(KIND, windows, modes, controller.state_size),
        "algo": info.algo,
        "env_id": info.env_id,
        "env_kwargs": info.env_kwargs,
        "history": info.history,
        "state_layout": {
            "history_rows": [0, rows],
            "lstm_h_c": [rows, controller.state_size],
            "rule": "telemetry after the newest updates (rounds, prefills), newest first; a row is pushed "
            "when the features differ from the newest row; then LSTM h and c ([layers, hidden] each), "
            "when recurrent",
        },
        "normalization": None
        if vecnorm is None
        else {
            "rule": "clip((x - mean) / sqrt(var + epsilon), -clip_obs, clip_obs), in float64, then float32",
            "mean": np.asarray(vecnorm.obs_rms.mean).tolist(),
            "var": np.asarray(vecnorm.obs_rms.var).tolist(),
            "epsilon": float(vecnorm.epsilon),
            "clip_obs": float(vecnorm.clip_obs),
        },
        "decisions": [[d.gamma, MODE_NAMES[d.mode]] for d in run.decisions],
        "policy": policy,
        "provenance": provenance(
            "agents.export.export_run",
            {
                "run": os.path.abspath(run.folder),
                "model": os.path.abspath(run.model_path),
                "timesteps": int(run.model.num_timesteps),
                "seed": info.seed,
                "config": info.config,
                "run_code_version": info.code_version,
            },
        ),
    }


def export_controller(
    controller: SB3Controller, out: str | os.PathLike[str], metadata: dict[str, Any]
) -> Path:
    """Script ``controller`` and write it with ``metadata`` to ``out`` atomically; returns the path."""
    controller.reset()
    return save_controller(torch.jit.script(controller), out, metadata)


def export_run(path: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Export the run (folder or model zip) ``path`` as one TorchScript file (``dsd-gym export``)."""
    run = load_run(path)
    controller, policy = controller_from_run(run)
    return export_controller(controller, out, run_metadata(run, controller, policy))
