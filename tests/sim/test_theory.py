"""The simulator against Leviathan et al. (2023) on the `ideal` scenario (DESIGN §3).

With i.i.d. acceptance α, zero network and queueing and constant latencies, a round with window γ
commits E[A + 1] = (1 − α^(γ+1)) / (1 − α) tokens, and the speedup over autoregressive decoding is
(1 − α^(γ+1)) / ((1 − α)(γc + 1)) with c = draft time per token / target time per forward.
"""

from __future__ import annotations

import functools

import pytest

from dsd_gym.config import load_scenario
from dsd_gym.runner import simulate
from dsd_gym.sim import expected_tokens_per_round

TARGET_MS = 20.0  # the ideal scenario's target forward
DURATION_S = 2000  # ~10^4–10^5 rounds per case: sampling error well under 1%


@functools.cache
def _run(alpha: float, c: float, policy: str) -> dict:
    scenario = load_scenario(
        "ideal",
        [
            f"acceptance={{kind: iid, alpha: {alpha}}}",
            f"devices.0.latency.forward_ms={c * TARGET_MS}",
            f"duration_s={DURATION_S}",
        ],
    )
    return simulate(scenario, policy)


@pytest.mark.parametrize("c", [0.05, 0.2])
@pytest.mark.parametrize("gamma", [1, 2, 4, 8])
@pytest.mark.parametrize("alpha", [0.5, 0.7, 0.9])
def test_tokens_per_round_and_speedup_match_theory(alpha: float, gamma: int, c: float) -> None:
    sd = _run(alpha, c, f"fixed:{gamma}")
    ar = _run(alpha, c, "autoregressive")
    expected_tokens = expected_tokens_per_round(alpha, gamma)
    expected_speedup = expected_tokens / (gamma * c + 1)
    speedup = sd["session_tok_s"] / ar["session_tok_s"]
    assert sd["tokens_per_round"] == pytest.approx(expected_tokens, rel=0.01)
    assert speedup == pytest.approx(expected_speedup, rel=0.01)
    assert sd["acceptance_rate"] == pytest.approx((expected_tokens - 1) / gamma, rel=0.02), (
        "accepted/drafted = E[A]/γ"
    )


def test_ideal_has_no_network_or_queueing() -> None:
    r = _run(0.7, 0.05, "fixed:4")["round_breakdown_ms"]
    assert r["queue"] == 0.0
    assert r["uplink"] < 1e-3 and r["downlink"] < 1e-3
    assert r["draft"] == pytest.approx(4 * 0.05 * TARGET_MS)
    assert r["verify"] == pytest.approx(TARGET_MS)
