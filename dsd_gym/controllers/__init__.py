"""Window controllers and the policy specs that name them.

A policy spec is a string accepted everywhere a policy is named (``simulate``, the env's other
sessions, ...): ``fixed:G`` (distributed, window G), ``fused:G`` (the cloud drafts G tokens itself),
``autoregressive`` (no speculation), and the controllers registered by the modules imported below.

>>> from dsd_gym.config import load_scenario
>>> factory = parse_policy("fixed:4", load_scenario("ideal"))
>>> factory(None).decide(None)
Decision(gamma=4, mode=<Mode.DISTRIBUTED: 0>)
"""

from __future__ import annotations

from dsd_gym.controllers import (
    analytic,  # noqa: F401  (registers analytic)
    fixed,  # noqa: F401  (registers fixed, fused, autoregressive)
    heuristics,  # noqa: F401  (registers heuristic, backoff, specpp)
    oracles,  # noqa: F401  (registers oracle, oracle-rollout)
    sb3,  # noqa: F401  (registers sb3)
    torchscript,  # noqa: F401  (registers torchscript)
)
from dsd_gym.controllers.fixed import FixedController, fixed_decisions, fixed_policies
from dsd_gym.controllers.registry import REGISTRY, parse_policy, usages

__all__ = ["REGISTRY", "FixedController", "fixed_decisions", "fixed_policies", "parse_policy", "usages"]
