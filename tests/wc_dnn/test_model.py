"""The WC-DNN's structure: γ̂ = γ_default + Δ (a zero read-out gives the default), and its normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsd_gym.telemetry import FEATURES, SCALE
from wc_dnn.model import FeatureNorm, WindowNet, WindowNetConfig, average_networks


@pytest.mark.parametrize("depth", [0, 1, 3])
@pytest.mark.parametrize("mode_head", [False, True])
def test_a_zero_read_out_predicts_the_default_window(depth: int, mode_head: bool) -> None:
    torch.manual_seed(depth)
    net = WindowNet(WindowNetConfig(hidden=8, depth=depth, default_gamma=5.0, mode_head=mode_head))
    with torch.no_grad():
        net.delta.weight.zero_()
        net.delta.bias.zero_()
        if mode_head:
            net.modes.weight.zero_()
            net.modes.bias.zero_()
    z = torch.randn(7, len(FEATURES)) * 10
    gamma, logits = net(z)
    assert torch.equal(gamma, torch.full((7,), 5.0)) and torch.equal(logits, torch.zeros(7, 3))
    with torch.no_grad():
        net.delta.bias.fill_(-1.5)
    assert torch.equal(net(z)[0], torch.full((7,), 3.5))  # Δ adds to the default


def test_blocks_are_residual() -> None:
    net = WindowNet(WindowNetConfig(hidden=4, depth=2))
    for block in net.blocks:
        with torch.no_grad():
            block.outer.weight.zero_()
            block.outer.bias.zero_()
    z = torch.randn(3, len(FEATURES))
    assert torch.equal(net.trunk(z), torch.nn.functional.silu(net.stem(z)))


def test_scripted_net_matches_eager() -> None:
    torch.manual_seed(1)
    net = WindowNet(WindowNetConfig(hidden=16, depth=2, mode_head=True))
    z = torch.randn(5, len(FEATURES))
    eager, scripted = net(z), torch.jit.script(net)(z)
    assert torch.equal(eager[0], scripted[0]) and torch.equal(eager[1], scripted[1])


def test_norm_defaults_to_the_telemetry_scale() -> None:
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 100, (4, len(FEATURES))).astype(np.float32))
    assert torch.equal(FeatureNorm()(x), x / torch.from_numpy(SCALE))


def test_norm_fit_uses_mean_and_std_and_falls_back_to_scale_for_constant_features() -> None:
    rng = np.random.default_rng(1)
    data = rng.normal(50.0, 7.0, (2000, len(FEATURES)))
    data[:, 3] = 12.0  # a constant feature
    norm = FeatureNorm().fit(data)
    assert np.allclose(norm.mean.numpy(), data.mean(axis=0), rtol=1e-6)
    std = data.std(axis=0)
    std[3] = SCALE[3]
    assert np.allclose(norm.std.numpy(), std, rtol=1e-6)
    z = norm(torch.from_numpy(data.astype(np.float32))).numpy()
    assert abs(z[:, 0].mean()) < 1e-3 and abs(z[:, 0].std() - 1) < 1e-3 and np.all(z[:, 3] == 0)


@pytest.mark.parametrize(
    "data", [np.zeros((0, len(FEATURES))), np.zeros((3, 2)), np.full((2, len(FEATURES)), np.nan)]
)
def test_norm_fit_refuses_bad_data(data: np.ndarray) -> None:
    with pytest.raises(ValueError, match="fit needs"):
        FeatureNorm().fit(data)


@pytest.mark.parametrize(("kwargs", "message"), [({"hidden": 0}, "hidden"), ({"depth": -1}, "depth"),
                                                 ({"default_gamma": 0.0}, "default_gamma")])  # fmt: skip
def test_bad_configs_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WindowNetConfig(**kwargs)


def _member(
    seed: int, hidden: int, mode_head: bool, ignore: tuple[str, ...]
) -> tuple[FeatureNorm, WindowNet]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    norm = FeatureNorm().fit(rng.uniform(0.0, 2.0, (64, len(FEATURES))) * SCALE)
    net = WindowNet(WindowNetConfig(hidden=hidden, depth=2, default_gamma=3.0 + seed, mode_head=mode_head,
                                    ignore=ignore))  # fmt: skip
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_(0.0, 0.5)
    net.hold_ignored()
    return norm, net


def test_average_networks_is_the_mean_of_its_members() -> None:
    """Different widths, normalisations and defaults; one member without a mode head (zero logits)."""
    members = [
        _member(0, 8, True, ("last_gamma", "drafted")),
        _member(1, 16, False, ("last_gamma",)),
        _member(2, 4, True, ("last_gamma", "last_mode")),
    ]
    norm, net = average_networks(members)
    x = torch.from_numpy(np.random.default_rng(9).uniform(0.0, 2.0, (256, len(FEATURES))) * SCALE).float()
    with torch.no_grad():
        gamma, logits = net(norm(x))
        outputs = [m(n(x)) for n, m in members]
    assert net.config.hidden == 28 and net.config.ignore == ("last_gamma",)
    torch.testing.assert_close(gamma, sum(g for g, _ in outputs) / 3, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, sum(lg for _, lg in outputs) / 3, rtol=1e-5, atol=1e-5)
    assert gamma.std() > 0.1 and logits.std() > 0.1  # the check is not of constants
    with pytest.raises(ValueError, match="same depth"):
        average_networks([members[0], (FeatureNorm(), WindowNet(WindowNetConfig(depth=1)))])
