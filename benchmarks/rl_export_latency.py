"""Per-decision latency of exported RL controllers (kind ``sb3``): batch 1, one thread, per algorithm.

For every algorithm of ``dsd-gym train rl``, a run with the shipped hyperparameters' default policy
(``configs/agents/<algo>.yaml``: network sizes, history, normalisation) is trained for a token number
of steps — the weights do not change the cost of a decision — exported with ``agents.export``, loaded
with plain ``torch.jit.load`` and timed with :func:`dsd_gym.runtime.latency.decision_latency_us`
on a telemetry vector recorded from ``metro-5g``: ``forward`` (one session, state inside),
``decide`` on batch 1, and an empty scripted call (TorchScript's own per-call overhead). Prints one
JSON document (and writes it atomically to ``--out``). Timings on a shared machine are noisy: compare
medians, and read p10/p90 as the spread.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from agents.config import load_hyperparams
from agents.export import export_run
from agents.train import DEFAULT_ENV, train
from dsd_gym.config import load_scenario
from dsd_gym.controllers.rl_algos import ALGOS
from dsd_gym.runner import build
from dsd_gym.runtime import load_controller
from dsd_gym.runtime.latency import decision_latency_us

sys.path.insert(0, str(Path(__file__).parent))
from run import emit  # noqa: E402  (benchmarks/ is not a package)


def _tiny_run(algo: str, folder: Path) -> Path:
    """A run of ``algo`` with the shipped default policy, trained just enough to write its folder."""
    params = load_hyperparams(ALGOS[algo], DEFAULT_ENV).as_dict()
    settings: dict[str, Any] = {
        **params.pop("algo_kwargs"), **params, "n_envs": 1, "checkpoint_freq": 10**9,
        "env_kwargs": {**params["env_kwargs"], "horizon_s": 10.0},
        "eval": {"freq": 10**9, "variants": 1, "seed": 1000},
    }  # fmt: skip
    if ALGOS[algo].on_policy:
        if "batch_size" in settings:
            settings["batch_size"] = min(settings["batch_size"], settings["n_steps"])
        settings["n_timesteps"] = settings["n_steps"]
    else:
        settings.update(n_timesteps=64, buffer_size=1000, learning_starts=32)
    config = folder / f"{algo}.yaml"
    config.write_text(yaml.safe_dump({"default": settings}))
    train(algo, env_id=DEFAULT_ENV, config=config, out=folder / algo, progress=False)
    return folder / algo


def _telemetry() -> torch.Tensor:
    """A telemetry vector of a running session (not all zeros, so every stage does real work)."""
    vectors: list[Any] = []
    sim = build(load_scenario("metro-5g", ["duration_s=3", "warmup_s=0"]), "heuristic", 0,
                round_hook=lambda record, session: vectors.append(session.telemetry.vector()))  # fmt: skip
    sim.run()
    return torch.from_numpy(vectors[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--calls", type=int, default=20_000, help="timed decisions per algorithm")
    parser.add_argument("--algo", action="append", choices=list(ALGOS), help="only these (repeat)")
    args = parser.parse_args()
    started = time.time()
    features = _telemetry()
    result: dict[str, Any] = {"threads": 1, "batch": 1, "torch": torch.__version__, "algos": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for algo in args.algo or list(ALGOS):
            print(f"{algo}: training a token run, exporting, timing ...", file=sys.stderr)
            run = _tiny_run(algo, Path(tmp))
            path = export_run(run, Path(tmp) / f"{algo}.pt")
            controller = load_controller(path)
            metadata = controller.metadata
            result["algos"][algo] = {
                "policy": {k: v for k, v in metadata["policy"].items() if k != "repr"},
                "net_arch": metadata["provenance"]["inputs"]["config"]["policy_kwargs"],
                "history": metadata["history"],
                "state_size": controller.state_size,
                "file_bytes": path.stat().st_size,
                **decision_latency_us(controller.module, features, calls=args.calls),
            }
    result["wall_s"] = round(time.time() - started, 1)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
