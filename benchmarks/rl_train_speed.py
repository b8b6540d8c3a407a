"""Training throughput of every RL algorithm: env steps per wall-clock second of ``model.learn``.

For each algorithm of ``dsd-gym train rl`` and each env id (default: ``regime-shift``, ego and
fleet), a model is built exactly as ``train`` builds it — the shipped hyperparameters of that env id
(``configs/agents/<algo>.yaml``: ``n_envs``, VecNormalize, history, reward, round credit), one torch
thread — and ``learn`` runs ``--steps`` env steps with the callbacks training always runs (the DSD
metrics, round credit where configured) but without held-out evaluation or checkpoints, whose cost
depends on their frequency, not on the algorithm. Off-policy algorithms start learning within the
timed steps (``learning_starts`` is capped at a fifth of them). Prints one JSON document (and writes
it atomically to ``--out``). One process: on the 2-core machine run nothing else beside it.
"""

# ruff: noqa: E402  (the thread settings below must precede numpy's first import)
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from agents.config import load_hyperparams
from agents.train import learning_callbacks, new_model, probe_env, vec_env
from dsd_gym.controllers.rl_algos import ALGOS

sys.path.insert(0, str(Path(__file__).parent))
from run import emit  # noqa: E402  (benchmarks/ is not a package)

ENVS = ("dsd_gym/DSD-regime-shift-v0", "dsd_gym/DSDFleet-regime-shift-v0")


def steps_per_second(algo_name: str, env_id: str, steps: int, seed: int = 0) -> dict[str, Any]:
    algo = ALGOS[algo_name]
    params = load_hyperparams(algo, env_id)
    if not algo.on_policy:
        starts = min(params.algo_kwargs.get("learning_starts", 100), steps // 5)
        params = params.model_copy(update={"algo_kwargs": {**params.algo_kwargs, "learning_starts": starts}})
    probe = probe_env(env_id, params.env_kwargs)
    model = new_model(algo, params, vec_env(env_id, params, seed), seed, tensorboard=None)
    callbacks = learning_callbacks(params, model, probe.horizon_s)
    started = time.perf_counter()
    model.learn(total_timesteps=steps, callback=callbacks)
    wall = time.perf_counter() - started
    model.get_env().close()
    return {
        "env_steps": int(model.num_timesteps),
        "wall_s": round(wall, 2),
        "env_steps_per_s": round(model.num_timesteps / wall, 1),
        "n_envs": params.n_envs,
        "history": probe.history,
        "reward": params.env_kwargs.get("reward", "throughput"),
        "credit": params.credit,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--steps", type=int, default=20_000, help="env steps timed per algorithm and env")
    parser.add_argument("--algo", action="append", choices=list(ALGOS), help="only these (repeat)")
    parser.add_argument("--env", action="append", help=f"env ids (repeat; default: {', '.join(ENVS)})")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    result: dict[str, Any] = {"threads": 1, "steps": args.steps, "torch": torch.__version__, "runs": []}
    for env_id in args.env or ENVS:
        for algo in args.algo or list(ALGOS):
            print(f"{algo} on {env_id}: {args.steps} env steps ...", file=sys.stderr)
            measured = steps_per_second(algo, env_id, args.steps)
            result["runs"].append({"algo": algo, "env_id": env_id, **measured})
    result["wall_s"] = round(time.time() - started, 1)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
