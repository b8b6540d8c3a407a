"""``dsd-gym train rl``: train an RL window controller with Stable-Baselines3 and write its run folder.

The run folder's format is :mod:`dsd_gym.controllers.rl_run`. A run:

1. reads the hyperparameters (:mod:`agents.config`) of the algorithm on the env id;
2. builds ``n_envs`` envs (``make_vec_env``: each env seeded seed + i, wrapped in ``Monitor``) and
   ``VecNormalize`` over them;
3. learns with a progress bar, TensorBoard logging (SB3's own scalars plus the DSD metrics of
   :class:`~agents.callbacks.DSDMetrics`), evaluation on held-out scenario variants
   (:class:`~agents.callbacks.HeldOutEvaluation`: ``evaluations.json``, ``best/``) and checkpoints
   (:class:`~agents.callbacks.Checkpoints`);
4. writes ``model.zip``, ``vecnormalize.pkl``, ``run.json`` and ``curve.png`` (evaluation throughput
   against env steps).

``resume=True`` continues the newest checkpoint of the folder: its step count, its normalisation
statistics and the evaluations so far; it trains to the same total. Without it, a folder that
already holds a run is refused (nothing written is ever overwritten by a fresh start).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from agents.algos import Algo
from agents.algos import algo as find_algo
from agents.callbacks import Checkpoints, DSDMetrics, HeldOutEvaluation, save_model
from agents.config import HyperParams, load_hyperparams, policy_kwargs, schedule
from agents.credit import RoundCredit
from agents.curves import plot_curves
from dsd_gym.controllers.rl_run import RUN_FILE, RunInfo, decisions_of, read_run, write_run
from dsd_gym.errors import UserError
from dsd_gym.provenance import code_version

__all__ = ["DEFAULT_ENV", "default_out", "learning_callbacks", "new_model", "probe_env", "train", "vec_env"]

DEFAULT_ENV = "dsd_gym/DSD-v0"
_STEP = re.compile(r"step_(\d+)\.zip$")


def default_out(algo: Algo, env_id: str, seed: int) -> Path:
    return Path("runs") / "agents" / algo.name / f"{env_id.split('/')[-1]}-seed{seed}"


def probe_env(env_id: str, env_kwargs: dict[str, Any]) -> Any:
    """One env built as training will build them: bad ids and kwargs fail here, in one line."""
    import gymnasium as gym

    import dsd_gym  # noqa: F401  (registers the ids)

    try:
        return gym.make(env_id, **env_kwargs).unwrapped
    except gym.error.Error as exc:
        known = ", ".join(sorted(i for i in gym.registry if i.startswith("dsd_gym/")))
        raise UserError(f"env {env_id!r}: {exc}; dsd-gym ids: {known}") from None
    except TypeError as exc:
        raise UserError(f"env {env_id!r}: bad env_kwargs ({exc})") from None


def newest_checkpoint(folder: Path) -> tuple[int, Path] | None:
    found = [
        (int(m.group(1)), p)
        for p in (folder / "checkpoints").glob("step_*.zip")
        if (m := _STEP.search(p.name))
    ]
    return max(found) if found else None


def vec_env(env_id: str, params: HyperParams, seed: int) -> Any:
    """``n_envs`` envs, each in a ``Monitor`` (episode returns), env i seeded ``seed + i``."""
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    def make() -> Any:
        return Monitor(gym.make(env_id, **params.env_kwargs))

    venv = DummyVecEnv([make] * params.n_envs)
    venv.seed(seed)
    return venv


def new_model(algo: Algo, params: HyperParams, venv: Any, seed: int, tensorboard: Path | None) -> Any:
    """A fresh model of ``algo`` with ``params`` on ``venv`` (wrapped in ``VecNormalize`` as configured)."""
    from stable_baselines3.common.vec_env import VecNormalize

    norm = params.normalize
    if norm is not None:
        gamma = params.algo_kwargs.get("gamma", 0.99)
        venv = VecNormalize(
            venv, norm_obs=norm.norm_obs, norm_reward=norm.norm_reward, clip_obs=norm.clip_obs,
            clip_reward=norm.clip_reward, gamma=gamma,
        )  # fmt: skip
    kwargs = {k: schedule(v, k) for k, v in params.algo_kwargs.items()}
    return algo.load()(
        params.policy, venv, seed=seed, device="cpu", verbose=0,
        tensorboard_log=None if tensorboard is None else str(tensorboard),
        policy_kwargs=policy_kwargs(params.policy_kwargs), **kwargs,
    )  # fmt: skip


def learning_callbacks(params: HyperParams, model: Any, horizon_s: float) -> list[Any]:
    """The callbacks every training runs, whatever its evaluation and checkpoints: round credit
    (where configured; first, so it rewrites the advantages before anything reads them) and the DSD
    metrics."""
    callbacks: list[Any] = [DSDMetrics(horizon_s=horizon_s)]
    if params.credit == "round":
        callbacks.insert(0, RoundCredit(model.gamma, model.gae_lambda))
    return callbacks


def train(
    algo_name: str,
    *,
    env_id: str = DEFAULT_ENV,
    config: str | Path | None = None,
    timesteps: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    threads: int = 1,
) -> dict[str, Any]:
    """Train and return a summary (steps, wall time, env steps/s, best evaluation throughput)."""
    algo = find_algo(algo_name)
    params = load_hyperparams(algo, env_id, config)
    if timesteps is not None:
        if timesteps <= 0:
            raise UserError(f"--timesteps: {timesteps} is invalid; allowed: an integer > 0")
        params = params.model_copy(update={"n_timesteps": int(timesteps)})
    folder = Path(out) if out is not None else default_out(algo, env_id, seed)
    if (folder / RUN_FILE).exists():
        if not resume:
            raise UserError(f"{folder}: already holds a run; pass --resume to continue it, or another --out")
        info, _ = read_run(folder)
        if (info.algo, info.env_id, info.seed) != (algo.name, env_id, seed):
            raise UserError(
                f"{folder}: holds {info.algo} on {info.env_id} seed {info.seed}, not {algo.name} on {env_id} "
                f"seed {seed}; resume it with those, or choose another --out"
            )
    probe = probe_env(env_id, params.env_kwargs)

    import torch
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(threads)
    cls = algo.load()
    norm = params.normalize
    info = RunInfo(
        algo=algo.name, env_id=env_id, env_kwargs=dict(params.env_kwargs),
        decisions=decisions_of(probe.decisions), history=probe.history,
        normalize_obs=norm is not None and norm.norm_obs, recurrent=algo.recurrent, seed=seed,
        config=params.as_dict(), code_version=code_version(),
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    venv = vec_env(env_id, params, seed)
    checkpoint = newest_checkpoint(folder) if resume else None
    if checkpoint is not None:
        steps, zip_path = checkpoint
        stats = zip_path.with_name(f"step_{steps}_vecnormalize.pkl")
        if norm is not None:
            venv = VecNormalize.load(str(stats), venv)
            venv.training = True
        model = cls.load(zip_path, env=venv, device="cpu", tensorboard_log=str(folder / "tensorboard"))
    else:
        model = new_model(algo, params, venv, seed, folder / "tensorboard")
    write_run(folder, info)
    remaining = params.n_timesteps - model.num_timesteps
    evaluation = HeldOutEvaluation(folder, env_id, params, upto=model.num_timesteps if checkpoint else None)
    checkpoints = Checkpoints(folder, params.checkpoint_freq)
    callbacks = [*learning_callbacks(params, model, probe.horizon_s), evaluation, checkpoints]
    started, at_start = time.perf_counter(), model.num_timesteps
    if remaining > 0:
        model.learn(
            total_timesteps=remaining, callback=callbacks, reset_num_timesteps=checkpoint is None,
            progress_bar=progress, tb_log_name="run",
        )  # fmt: skip
    wall_s = time.perf_counter() - started
    evaluation.evaluate(model, final=True)
    if remaining > 0:
        checkpoints.init_callback(model)
        checkpoints.save()  # a later --resume with more --timesteps continues from here
    save_model(model, folder / "model.zip", folder / "vecnormalize.pkl")
    plot_curves([folder], folder / "curve.png")
    venv.close()
    trained = model.num_timesteps - at_start
    return {
        "folder": str(folder),
        "algo": algo.name,
        "env_id": env_id,
        "timesteps": int(model.num_timesteps),
        "trained_this_call": int(trained),
        "wall_s": round(wall_s, 1),
        "env_steps_per_s": round(trained / wall_s, 1) if wall_s > 0 and trained else None,
        "best_eval_throughput_tok_s": evaluation.best,
        "last_eval_throughput_tok_s": evaluation.history[-1]["mean"] if evaluation.history else None,
        "resumed_from": checkpoint[0] if checkpoint else None,
    }
