"""AWC: clamping, smoothing, rounding, mode masking and dwell follow their definitions on scripted inputs.

Every rule is checked on the eager module and on its TorchScript compilation (what the exported file
runs), and the batched ``forward`` is checked against the per-session ``step``.
"""

from __future__ import annotations

import math

import pytest
import torch

from dsd_gym.controllers.heuristics import nearest_window
from wc_dnn.awc import AWC, GRID, S_GAMMA_COUNT, S_SMOOTHED, STATE_SIZE, AWCConfig

DISTRIBUTED, FUSED, AUTOREGRESSIVE = 0, 1, 2
NO_LOGITS = [0.0, 0.0, 0.0]


@pytest.fixture(params=["eager", "scripted"])
def make(request: pytest.FixtureRequest):
    def build(**kwargs) -> AWC:
        awc = AWC(AWCConfig(**kwargs))
        return torch.jit.script(awc) if request.param == "scripted" else awc

    return build


def run(awc: AWC, gamma_hats: list[float], logits: list[list[float]] | None = None) -> list[tuple]:
    """Feed one session's γ̂ (and logits) in order; (γ, mode, state) after each decision."""
    state = [0.0] * STATE_SIZE
    out = []
    for i, gamma_hat in enumerate(gamma_hats):
        gamma, mode, state = awc.step(gamma_hat, logits[i] if logits else NO_LOGITS, state)
        out.append((gamma, mode, list(state)))
    return out


def gammas(awc: AWC, gamma_hats: list[float], logits: list[list[float]] | None = None) -> list[int]:
    return [gamma for gamma, _, _ in run(awc, gamma_hats, logits)]


def test_clamp_to_gamma_min_and_max_then_round(make) -> None:
    awc = make(smoothing=1.0, gamma_min=2.0, gamma_max=6.0)
    assert gammas(awc, [-5.0, 100.0, 3.2, 1.0, 6.6, float("inf")]) == [2, 6, 3, 2, 6, 6]


def test_bounds_default_to_the_extreme_choices(make) -> None:
    awc = make(window_choices=[2, 3, 5], smoothing=1.0)
    assert gammas(awc, [0.0, 9.0]) == [2, 5]


def test_rounding_is_nearest_window_with_ties_to_the_smaller(make) -> None:
    choices = [1, 2, 4, 8]
    awc = make(window_choices=choices, smoothing=1.0)
    assert gammas(awc, [3.0, 6.0, 2.9, 3.1, 5.99, 6.01]) == [2, 4, 2, 4, 4, 8]
    integers = [float(g) for g in range(1, 9)]
    assert gammas(awc, integers) == [nearest_window(choices, int(g)) for g in integers]


@pytest.mark.parametrize("choices", [[5], [1, 2, 4, 8], [1, 3, 4, 9, 10, 16], list(range(1, 33))])
def test_rounding_equals_the_nearest_choice_on_every_grid_point(make, choices) -> None:
    """Rule 3 on every value s of the 2⁻¹² grid between the bounds (a quarter-token step here, a
    superset of the grid's midpoints): the choice minimising (|g − s|, g)."""
    awc = make(window_choices=choices, smoothing=1.0)
    values = [choices[0] + k / 4 for k in range(4 * (choices[-1] - choices[0]) + 1)]
    expected = [min(choices, key=lambda g, s=s: (abs(g - s), g)) for s in values]
    assert [awc.step(s, NO_LOGITS, [0.0] * STATE_SIZE)[0] for s in values] == expected


def test_smoothing_is_an_ewma_with_weight_on_the_newest_on_a_grid(make) -> None:
    w = 0.3
    awc = make(smoothing=w, gamma_max=8.0)
    inputs = [8.0, 1.0, 5.5, 12.0, 3.0, 3.7]  # 12 is clamped to 8 before smoothing
    expected, s = [], None
    for x in inputs:
        c = min(max(x, 1.0), 8.0)
        s = c if s is None else s + w * (c - s)
        s = math.floor(s * GRID + 0.5) / GRID
        expected.append(s)
    out = run(awc, inputs)
    assert [state[S_SMOOTHED] for _, _, state in out] == expected  # the same double arithmetic: exact
    assert [gamma for gamma, _, _ in out] == [
        min(range(1, 9), key=lambda g: (abs(g - s), g)) for s in expected
    ]
    assert all(float(torch.tensor(s, dtype=torch.float32)) == s for s in expected)  # exact in float32


def test_no_smoothing_at_weight_one(make) -> None:
    awc = make(smoothing=1.0)
    assert gammas(awc, [1.0, 8.0, 1.0, 8.0]) == [1, 8, 1, 8]


def test_gamma_dwell_switches_after_that_many_consecutive_proposals(make) -> None:
    awc = make(smoothing=1.0, gamma_dwell=3)
    # 6, 6 then an interrupting 2 restarts the count; three 6s in a row switch.
    assert gammas(awc, [4.0, 6.0, 6.0, 2.0, 6.0, 6.0, 6.0, 6.0]) == [4, 4, 4, 4, 4, 4, 6, 6]
    # A proposal equal to the current window resets the count.
    assert gammas(awc, [4.0, 6.0, 6.0, 4.0, 6.0, 6.0, 6.0]) == [4, 4, 4, 4, 4, 4, 6]
    counts = [state[S_GAMMA_COUNT] for _, _, state in run(awc, [4.0, 6.0, 6.0, 6.0])]
    assert counts == [0.0, 1.0, 2.0, 0.0]


def test_dwell_one_switches_at_once(make) -> None:
    awc = make(smoothing=1.0, gamma_dwell=1)
    assert gammas(awc, [4.0, 6.0, 2.0]) == [4, 6, 2]


def test_modes_are_masked_to_the_enabled_ones(make) -> None:
    awc = make(modes=["distributed", "autoregressive"], mode_dwell=1, smoothing=1.0)
    fused_best = [0.0, 9.0, 1.0]
    out = run(awc, [4.0, 4.0], [fused_best, [0.0, 9.0, -1.0]])
    assert [mode for _, mode, _ in out] == [AUTOREGRESSIVE, DISTRIBUTED]


def test_mode_ties_go_to_the_lower_code_and_no_head_means_the_first_enabled_mode(make) -> None:
    awc = make(modes=["fused", "autoregressive"], smoothing=1.0)
    out = run(awc, [5.0, 5.0], [[0.0, 1.0, 1.0], NO_LOGITS])
    assert [(gamma, mode) for gamma, mode, _ in out] == [(5, FUSED), (5, FUSED)]


def test_mode_dwell_and_autoregressive_returns_gamma_zero(make) -> None:
    awc = make(modes=["distributed", "fused", "autoregressive"], mode_dwell=2, smoothing=1.0)
    d, f, a = [5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0]
    logits = [d, a, d, a, a, a, f, f]
    out = run(awc, [3.0, 3.0, 3.0, 3.0, 3.0, 6.0, 6.0, 6.0], logits)
    assert [mode for _, mode, _ in out] == [0, 0, 0, 0, 2, 2, 2, 1]
    # γ keeps following its own rule while autoregressive; its output is 0 there.
    assert [gamma for gamma, _, _ in out] == [3, 3, 3, 3, 0, 0, 0, 6]


def test_first_decision_takes_the_proposals_directly(make) -> None:
    awc = make(modes=["distributed", "fused"], gamma_dwell=5, mode_dwell=5, smoothing=0.1)
    gamma, mode, _ = run(awc, [7.0], [[0.0, 1.0, 0.0]])[0]
    assert (gamma, mode) == (7, FUSED)


def test_batched_forward_is_step_per_row(make) -> None:
    awc = make(modes=["distributed", "fused", "autoregressive"], mode_dwell=2, gamma_dwell=2, smoothing=0.5)
    generator = torch.Generator().manual_seed(0)
    sessions, decisions = 5, 30
    state = awc.initial_state(sessions)
    assert state.dtype == torch.float32 and state.shape == (sessions, STATE_SIZE)
    rows = [[0.0] * STATE_SIZE for _ in range(sessions)]
    for _ in range(decisions):
        gamma_hat = torch.rand(sessions, generator=generator) * 12 - 2
        logits = torch.randn(sessions, 3, generator=generator)
        gamma, mode, state = awc(gamma_hat, logits, state)
        for i in range(sessions):
            g, m, rows[i] = awc.step(float(gamma_hat[i]), logits[i].tolist(), rows[i])
            assert (int(gamma[i]), int(mode[i])) == (g, m)
        assert state.tolist() == rows


def test_an_empty_batch() -> None:
    awc = torch.jit.script(AWC(AWCConfig()))
    gamma, mode, state = awc(torch.zeros(0), torch.zeros(0, 3), awc.initial_state(0))
    assert gamma.shape == (0,) and mode.shape == (0,) and state.shape == (0, STATE_SIZE)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window_choices": []}, "window_choices"),
        ({"window_choices": [0, 2]}, "window_choices"),
        ({"window_choices": [2, 2]}, "window_choices"),
        ({"modes": ["warp"]}, "modes"),
        ({"modes": []}, "modes"),
        ({"gamma_min": 5.0, "gamma_max": 3.0}, "gamma_min <= gamma_max"),
        ({"gamma_max": 5000.0}, "gamma_max must be <= 4096"),
        ({"smoothing": 0.0}, "smoothing"),
        ({"smoothing": 1.5}, "smoothing"),
        ({"gamma_dwell": 0}, "gamma_dwell"),
        ({"mode_dwell": 1.5}, "mode_dwell"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AWCConfig(**kwargs)


def test_config_sorts_choices_and_modes() -> None:
    config = AWCConfig(window_choices=[8, 2, 4], modes=["autoregressive", "distributed"])
    assert config.window_choices == [2, 4, 8] and config.modes == ["distributed", "autoregressive"]
    assert (config.gamma_min, config.gamma_max) == (2.0, 8.0)
