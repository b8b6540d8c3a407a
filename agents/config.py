"""Hyperparameters of ``dsd-gym train rl``, one YAML file per algorithm in the style of rl-baselines3-zoo.

``configs/agents/<algo>.yaml`` maps env ids to settings; ``default`` applies to every env and an env
id's own entry overrides it key by key (``policy_kwargs``, ``normalize``, ``env_kwargs`` and ``eval``
are merged one level down)::

    default:
      n_timesteps: 200000          # total env steps (--timesteps overrides)
      n_envs: 4                    # vectorised envs (DummyVecEnv: each step is cheap)
      normalize: {norm_obs: true, norm_reward: false, clip_obs: 10.0}   # or true / false
      env_kwargs: {horizon_s: 30, history: 2}                           # gymnasium.make kwargs
      eval: {freq: 20000, variants: 4, seed: 1000}  # held-out scenario variants, every freq steps
      checkpoint_freq: 50000       # env steps between checkpoints (resume takes the newest)
      credit: step                 # step: SB3's GAE along the env's steps; round: along each session's
                                   # own rounds (agents.credit; on-policy, non-recurrent, reward
                                   # round_rate or round_self)
      policy: MlpPolicy
      policy_kwargs: {net_arch: [64, 64], activation_fn: tanh}
      learning_rate: lin_3.0e-4    # a float, or lin_<x>: linear decay from x to 0 over training
      n_steps: 256                 # ... any other keyword argument of the algorithm's constructor
    dsd_gym/DSD-cellular-v0:
      n_timesteps: 500000

Unknown keys fail with one line naming the key and the allowed ones (the algorithm's constructor
arguments are read from its signature).
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.algos import Algo
from dsd_gym.config import configs_dir
from dsd_gym.config.loader import explain
from dsd_gym.envs.rewards import CREDITED
from dsd_gym.errors import UserError

__all__ = ["EvalSpec", "HyperParams", "NormalizeSpec", "default_config_path", "load_hyperparams"]

_NESTED = ("policy_kwargs", "normalize", "env_kwargs", "eval")
_ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "silu": "SiLU", "elu": "ELU", "leaky_relu": "LeakyReLU"}
# Set by the trainer, not the file: the env, the seed, logging and the device.
_RESERVED = {"env", "seed", "tensorboard_log", "verbose", "device", "_init_setup_model"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NormalizeSpec(_Model):
    """VecNormalize: observation (and optionally reward) running statistics."""

    norm_obs: bool = True
    norm_reward: bool = False
    clip_obs: float = Field(10.0, gt=0)
    clip_reward: float = Field(10.0, gt=0)


class EvalSpec(_Model):
    """Evaluation during training on held-out scenario variants (``ScenarioSampler.variants``): every
    ``freq`` env steps, the deterministic policy runs one episode on each of ``variants`` variants
    drawn from ``seed`` (a stream apart from the training draws)."""

    freq: int = Field(20_000, gt=0)
    variants: int = Field(4, gt=0)
    seed: int = Field(1000, ge=0)


class HyperParams(_Model):
    """One algorithm on one env: what the trainer reads, and ``algo_kwargs`` for the constructor."""

    n_timesteps: int = Field(gt=0)
    n_envs: int = Field(4, gt=0)
    normalize: NormalizeSpec | None = NormalizeSpec()
    env_kwargs: dict[str, Any] = {}
    eval: EvalSpec = EvalSpec()
    checkpoint_freq: int = Field(50_000, gt=0)
    credit: Literal["step", "round"] = "step"
    policy: str = "MlpPolicy"
    policy_kwargs: dict[str, Any] = {}
    algo_kwargs: dict[str, Any] = {}

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def default_config_path(algo: Algo) -> Path:
    return configs_dir() / "agents" / f"{algo.name}.yaml"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if key in _NESTED and isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _constructor_args(algo: Algo) -> set[str]:
    params = inspect.signature(algo.load().__init__).parameters
    return {name for name in params if name not in ("self", "policy", "kwargs")} - _RESERVED


def load_hyperparams(algo: Algo, env_id: str, path: str | Path | None = None) -> HyperParams:
    """The settings of ``algo`` on ``env_id`` from ``path`` (default ``configs/agents/<algo>.yaml``)."""
    path = Path(path) if path is not None else default_config_path(algo)
    where = f"config {path}"
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{where}: is a directory; give a YAML file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{where}: not valid YAML{at}") from None
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise UserError(f"{where}: must map env ids (and 'default') to settings")
    if env_id not in raw and "default" not in raw:
        raise UserError(f"{where}: no entry for {env_id!r} and no 'default'; entries: {', '.join(raw)}")
    settings = _merge(raw.get("default", {}), raw.get(env_id, {}))
    section = env_id if env_id in raw else "default"
    fields = set(HyperParams.model_fields) - {"algo_kwargs"}
    allowed = _constructor_args(algo)
    algo_kwargs = {k: v for k, v in settings.items() if k not in fields}
    unknown = sorted(set(algo_kwargs) - allowed)
    if unknown:
        raise UserError(
            f"{where} [{section}]: unknown key {unknown[0]!r} for {algo.name}; allowed: "
            f"{', '.join(sorted(fields | allowed))}"
        )
    normalize = settings.get("normalize", True)
    if normalize is True:
        settings["normalize"] = {}
    elif normalize is False:
        settings["normalize"] = None
    try:
        params = HyperParams(**{k: v for k, v in settings.items() if k in fields}, algo_kwargs=algo_kwargs)
    except ValidationError as exc:
        raise UserError(f"{where} [{section}]: {explain(exc, HyperParams)}") from None
    if params.credit == "round":
        reward = params.env_kwargs.get("reward")
        if not algo.on_policy or algo.recurrent:
            raise UserError(
                f"{where} [{section}]: credit: 'round' does not apply to {algo.name}; allowed: step (round "
                "needs a non-recurrent on-policy algorithm: ppo, a2c)"
            )
        if reward not in CREDITED:
            raise UserError(
                f"{where} [{section}]: credit: 'round' needs env_kwargs.reward round_rate or round_self, "
                f"not {reward!r}"
            )
    for key, value in algo_kwargs.items():  # schedules must parse now, not an hour into training
        schedule(value, f"{where} [{section}]: {key}")
    policy_kwargs(params.policy_kwargs, f"{where} [{section}]: policy_kwargs")
    return params


def schedule(value: Any, where: str = "schedule") -> Any:
    """``lin_<x>`` → a linear schedule from x at the start to 0 at the end; anything else as is."""
    if not (isinstance(value, str) and value.startswith("lin_")):
        return value
    try:
        start = float(value[4:])
    except ValueError:
        raise UserError(f"{where}: {value!r} is not lin_<number>, e.g. lin_3.0e-4") from None
    if start <= 0:
        raise UserError(f"{where}: {value!r} must start above 0")
    return _Linear(start)


class _Linear:
    """progress_remaining (1 → 0) ↦ start · progress_remaining; a class so models pickle."""

    def __init__(self, start: float) -> None:
        self.start = start

    def __call__(self, progress_remaining: float) -> float:
        return self.start * progress_remaining

    def __repr__(self) -> str:
        return f"lin_{self.start:g}"


def policy_kwargs(spec: dict[str, Any], where: str = "policy_kwargs") -> dict[str, Any]:
    """``policy_kwargs`` with ``activation_fn`` given by name (tanh, relu, silu, elu, leaky_relu)."""
    out = dict(spec)
    name = out.get("activation_fn")
    if name is not None:
        if name not in _ACTIVATIONS:
            raise UserError(f"{where}: activation_fn {name!r} is unknown; allowed: {', '.join(_ACTIVATIONS)}")
        from torch import nn  # lazy: the config is read before anything heavy

        out["activation_fn"] = getattr(nn, _ACTIVATIONS[name])
    return out
