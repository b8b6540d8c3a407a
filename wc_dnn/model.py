"""The WC-DNN: a small residual MLP that reads normalised telemetry and predicts the window (DESIGN §6).

Input: the telemetry vector of :mod:`dsd_gym.telemetry` (``FEATURES``, raw units, that order).
:class:`FeatureNorm` maps it to z = (x − mean) / std; :class:`WindowNet` then predicts a *change* from
a default window, after the DSD authors' simulator design:

    h_0 = SiLU(W_in · z + b_in)
    h_k = h_{k−1} + W_k2 · SiLU(W_k1 · h_{k−1} + b_k1) + b_k2          k = 1 .. depth
    Δ   = w_out · h_depth + b_out
    γ̂   = γ_default + Δ                                                  (a real number)

and, when ``mode_head`` is set, logits over the modes of :class:`dsd_gym.sim.controller.Mode`
(distributed, fused, autoregressive) from a second linear read-out of h_depth. Predicting Δ keeps an
untrained or zero-initialised read-out at the default window, so training starts from the DSD
authors' fixed γ = 4 rather than from 0. The Adaptive Window Control logic that turns γ̂ and the
logits into a decision is :mod:`wc_dnn.awc`.

>>> import torch
>>> net = WindowNet(WindowNetConfig(hidden=16, depth=1))
>>> gamma, logits = net(torch.zeros(3, len(FEATURES)))
>>> gamma.shape, logits.shape
(torch.Size([3]), torch.Size([3, 3]))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from dsd_gym.controllers.heuristics import DEFAULT_WINDOW
from dsd_gym.sim.controller import Mode
from dsd_gym.telemetry import FEATURES, INDEX, SCALE, check_names

__all__ = ["FeatureNorm", "ResidualBlock", "WindowNet", "WindowNetConfig", "average_networks"]

N_MODES = len(Mode)


@dataclass(frozen=True)
class WindowNetConfig:
    """The network's shape. ``hidden``: width of every hidden layer; ``depth``: residual blocks (≥ 0);
    ``default_gamma``: the window the network predicts a change from; ``mode_head``: also output mode
    logits (else the logits are zeros and AWC keeps the first enabled mode); ``ignore``: telemetry
    features the network does not read (their first-layer weights are zero and stay zero,
    :meth:`WindowNet.hold_ignored`)."""

    hidden: int = 32
    depth: int = 1
    default_gamma: float = float(DEFAULT_WINDOW)
    mode_head: bool = False
    ignore: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "ignore", tuple(self.ignore))  # a list from a checkpoint's JSON
        check_names(self.ignore, "ignore")
        if self.hidden < 1:
            raise ValueError(f"hidden must be >= 1; got {self.hidden}")
        if self.depth < 0:
            raise ValueError(f"depth must be >= 0; got {self.depth}")
        if not self.default_gamma > 0:
            raise ValueError(f"default_gamma must be > 0; got {self.default_gamma}")


class FeatureNorm(nn.Module):
    """z = (x − mean) / std per feature, with ``mean`` and ``std`` buffers (they travel with the model).

    Unfitted it divides by each feature's ``scale`` from :mod:`dsd_gym.telemetry` (mean 0). ``fit``
    takes the mean and standard deviation of a data set; a feature whose deviation there is below
    ``min_std_fraction`` of its ``scale`` (constant in the data, e.g. ``last_mode`` when only
    distributed rounds were seen) keeps ``scale`` as its std so unseen values stay in range.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(len(FEATURES)))
        self.register_buffer("std", torch.from_numpy(SCALE.copy()))

    def fit(self, features: np.ndarray, min_std_fraction: float = 1e-3) -> FeatureNorm:
        """Set mean and std from ``features`` (rows of telemetry vectors, raw units); returns self."""
        data = np.asarray(features, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != len(FEATURES) or data.shape[0] == 0:
            raise ValueError(f"fit needs an array of shape (N > 0, {len(FEATURES)}); got {data.shape}")
        if not np.isfinite(data).all():
            raise ValueError("fit needs finite features; got NaN or inf")
        std = data.std(axis=0)
        std = np.where(std < min_std_fraction * SCALE, SCALE, std)
        self.mean.copy_(torch.from_numpy(data.mean(axis=0)))
        self.std.copy_(torch.from_numpy(std))
        return self

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class ResidualBlock(nn.Module):
    """h + W2 · SiLU(W1 · h + b1) + b2."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.inner = nn.Linear(width, width)
        self.outer = nn.Linear(width, width)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.outer(nn.functional.silu(self.inner(h)))


class WindowNet(nn.Module):
    """Normalised features [B, F] → (γ̂ [B] = γ_default + Δ, mode logits [B, 3]); see the module doc."""

    def __init__(self, config: WindowNetConfig) -> None:
        super().__init__()
        self.config = config
        self.default_gamma = float(config.default_gamma)
        self.has_mode_head = bool(config.mode_head)
        self.stem = nn.Linear(len(FEATURES), config.hidden)
        self.blocks = nn.Sequential(*(ResidualBlock(config.hidden) for _ in range(config.depth)))
        self.delta = nn.Linear(config.hidden, 1)
        self.n_modes = N_MODES
        self.modes = nn.Linear(config.hidden, N_MODES) if config.mode_head else nn.Identity()
        self.ignored = sorted(INDEX[name] for name in config.ignore)
        self.hold_ignored()

    @torch.jit.unused
    def hold_ignored(self) -> None:
        """Zero the first layer's weights of the ignored features and, after a backward pass, their
        gradients: Adam (with or without weight decay) then leaves them at exactly zero, so the
        network's output does not depend on those features, in training and in the exported file."""
        if not self.ignored:
            return
        with torch.no_grad():
            self.stem.weight[:, self.ignored] = 0.0
            if self.stem.weight.grad is not None:
                self.stem.weight.grad[:, self.ignored] = 0.0

    def trunk(self, z: Tensor) -> Tensor:
        """The last hidden layer h_depth, [B, hidden]."""
        return self.blocks(nn.functional.silu(self.stem(z)))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(z)
        gamma = self.delta(h).squeeze(-1) + self.default_gamma
        if self.has_mode_head:
            logits = self.modes(h)
        else:
            logits = torch.zeros(z.shape[0], self.n_modes, dtype=z.dtype)
        return gamma, logits


def average_networks(members: Sequence[tuple[FeatureNorm, WindowNet]]) -> tuple[FeatureNorm, WindowNet]:
    """The mean of K networks, each with its own normalisation, as one network: (identity, net).

    γ̂ = (1/K) Σ_k γ̂_k(z_k) and logits = (1/K) Σ_k logits_k(z_k), exactly (up to float rounding).
    Each member's normalisation is folded into its stem rows (W_k / std_k, b_k − (W_k / std_k) · mean_k),
    so the returned normalisation is the identity; the hidden layers are block-diagonal (member k's
    units see only member k's units: SiLU is elementwise, so the blocks never mix), the read-outs are
    the members' side by side over K, and γ_default is their mean (the rest in the bias). Members need
    the same depth; a member without a mode head adds zero logits, as its own forward does. Features
    every member ignores stay ignored. The width is the sum of theirs, so a decision costs about K
    members' (``benchmarks/wc_dnn_speed.py``).
    """
    if not members:
        raise ValueError("average_networks needs at least one member")
    nets = [net for _, net in members]
    depths = {net.config.depth for net in nets}
    if len(depths) != 1:
        raise ValueError(f"members must have the same depth; got {sorted(depths)}")
    k = len(nets)
    ignored = set.intersection(*(set(net.config.ignore) for net in nets))
    net = WindowNet(
        WindowNetConfig(
            hidden=sum(n.config.hidden for n in nets), depth=nets[0].config.depth,
            default_gamma=sum(n.default_gamma for n in nets) / k,
            mode_head=any(n.has_mode_head for n in nets), ignore=tuple(sorted(ignored, key=INDEX.get)),
        )
    )  # fmt: skip
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.zero_()
        start = 0
        for norm, member in members:
            rows = slice(start, start + member.config.hidden)
            start += member.config.hidden
            weight = member.stem.weight / norm.std.to(member.stem.weight.dtype)
            net.stem.weight[rows] = weight
            net.stem.bias[rows] = member.stem.bias - weight @ norm.mean.to(weight.dtype)
            for block, own in zip(net.blocks, member.blocks, strict=True):
                for layer, own_layer in ((block.inner, own.inner), (block.outer, own.outer)):
                    layer.weight[rows, rows] = own_layer.weight
                    layer.bias[rows] = own_layer.bias
            net.delta.weight[:, rows] = member.delta.weight / k
            net.delta.bias += (member.delta.bias + member.default_gamma - net.default_gamma) / k
            if member.has_mode_head:
                net.modes.weight[:, rows] = member.modes.weight / k
                net.modes.bias += member.modes.bias / k
    identity = FeatureNorm()
    identity.std.fill_(1.0)
    return identity, net
