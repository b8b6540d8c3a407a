"""The oracle is the upper reference: through the harness, on every shipped scenario, in ego and in
fleet mode, its mean throughput over seeds is at least every deployable controller's — the adaptive
baselines and every fixed decision (``best-fixed`` is the best of those in hindsight).

``TIE``: where the best fixed decision is already what the oracle would do every round (i.i.d.
acceptance on ``ideal``, fused rounds on an idle cloud), the two differ only by where rounds cut the
same text; measured gaps there are within ±0.6 % on common random numbers.

The oracle is myopic and each session's oracle decides for itself: in a fleet it can settle on a
joint choice that one fixed decision for everyone beats (``GAPS``, measured and kept honest by a
strict xfail — it fails the day the oracle closes the gap).
"""

from __future__ import annotations

import pytest

from dsd_gym.config import list_scenarios
from dsd_gym.evaluation import evaluate

DEPLOYABLE = ("heuristic", "backoff", "specpp", "analytic", "best-fixed")
SEEDS = 5
OVERRIDES = ["duration_s=40"]  # 30 s measured after the usual 10 s warm-up
TIE = 0.01
SLOW = {"hetero-fleet"}  # 28 sessions on 3 targets: ~1 min of oracle simulation per mode
GAPS = {
    ("cellular", "fleet"): "fleet coordination: the oracles settle on fused windows of 3 for most rounds "
    "where fused:4 for everyone batches better on the shared target. Measured (5 seeds, 40 s): oracle "
    "269.4 tok/s, fused:4 273.0 (-1.3 %)",
}


def _cases() -> list:
    cases = []
    for mode in ("ego", "fleet"):
        for name, _ in list_scenarios():
            marks = [pytest.mark.slow] if name in SLOW else []
            if (name, mode) in GAPS:
                marks.append(pytest.mark.xfail(strict=True, reason=GAPS[name, mode]))
            cases.append(pytest.param(name, mode, marks=marks))
    return cases


@pytest.mark.parametrize(("name", "mode"), _cases())
def test_oracle_is_at_least_every_deployable_controller(name: str, mode: str) -> None:
    policies = ["oracle", *DEPLOYABLE]
    evaluation = evaluate([name], policies, seeds=SEEDS, mode=mode, overrides=OVERRIDES, jobs=1)
    rows = {row["policy"]: row for row in evaluation.rows}
    oracle = rows["oracle"]["throughput_tok_s"]["mean"]
    assert not evaluation.failures
    for policy in DEPLOYABLE:
        row = rows[policy]
        other = row["throughput_tok_s"]["mean"]
        who = f"{policy} ({row['best_fixed']})" if row["best_fixed"] else policy
        assert oracle >= other * (1 - TIE), f"oracle {oracle:.1f} tok/s < {who} {other:.1f} on {name}, {mode}"
