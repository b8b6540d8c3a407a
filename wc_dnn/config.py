"""The WC-DNN pipeline's config: one YAML file for ``collect``, ``train`` and ``export``.

``configs/wc_dnn/<name>.yaml`` has three sections, each validated here (unknown keys are errors, and
an invalid value fails with one line naming the key, the value and what is allowed)::

    name: small                      # names the default output folders runs/wc_dnn/<name>/...
    collect:                         # the dataset (wc_dnn.collect)
      seed: 0                        # everything random in the dataset derives from it
      duration_s: 20                 # simulated seconds per (variant, seed) task; warm-up is 0
      seeds: 2                       # simulations per variant
      record_sessions: 4             # sessions labelled per simulation (fleet: spread over the fleet)
      window_choices: null           # override every scenario's control.window_choices (null: keep)
      modes: null                    # override every scenario's control.modes (null: keep)
      evaluation_modes: [fleet]      # simulate each task in fleet and/or ego mode (as evaluate does)
      scenarios:                     # scenario (shipped name or YAML path), variants, extra ranges
        - {scenario: metro-5g, variants: 4, randomize: {...}}
      behaviour:                     # the behaviour policy: a mix drawn per session
        mix: {random: 1, sticky-random: 1, random-fixed: 1, heuristic: 1, oracle: 1}
        epsilon: 0.1                 # per round: a uniformly random allowed decision instead
        sticky_rounds: 20            # mean rounds a sticky-random decision is held
        learner_share: 0.5           # with collect --learner: sessions that run the learner instead
                                     # (or one per evaluation mode: {fleet: 1.0, ego: 0.5})
      floor_seeds: 0                 # > 0: measure every fixed decision (and a --learner) held on each
                                     # variant, that many seeds (wc_dnn.floor; needs one evaluation mode;
                                     # or one count per mode: {fleet: 0, ego: 2})
    train: {...}                     # the network and its optimisation (wc_dnn.train)
    awc: {...}                       # the runtime logic baked into the export (wc_dnn.awc)

Every scenario of a dataset must offer the same decisions (window choices and modes): the label is an
index into that one candidate list.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dsd_gym.config.loader import apply_override, explain
from dsd_gym.config.schema import MODES, RandomRange
from dsd_gym.errors import UserError
from dsd_gym.telemetry import check_names

__all__ = [
    "AWCSpec",
    "BEHAVIOURS",
    "BehaviourSpec",
    "CollectSpec",
    "ModelSpec",
    "ScenarioSpec",
    "TrainSpec",
    "WCDNNConfig",
    "config_hash",
    "for_evaluation_mode",
    "load_config",
]

PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]

# Behaviours that are not policy specs: a random allowed decision every round, one held for a
# geometric number of rounds, or one for the whole session.
BEHAVIOURS = ("random", "sticky-random", "random-fixed")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScenarioSpec(Model):
    """One scenario of the dataset: ``variants`` draws of its randomised keys (the scenario's own
    ``randomize`` section, with ``randomize`` here added over it); with ``include_base`` the first
    variant is the scenario as shipped (no key drawn)."""

    scenario: str
    variants: PositiveInt = 1
    include_base: bool = True
    randomize: dict[str, RandomRange] = {}


class BehaviourSpec(Model):
    """The behaviour policy. Each foreground session draws one entry of ``mix`` (weights, > 0) when it
    is built: a policy spec (``heuristic``, ``analytic``, ``oracle``, ``fixed:4`` ...) or one of
    ``random``, ``sticky-random``, ``random-fixed``. Then every round, with probability ``epsilon``, a
    uniformly random allowed decision replaces the one it chose. With ``dsd-gym collect --learner
    PATH`` (DAgger), a session runs the exported learner instead with probability ``learner_share``:
    one probability, or one per evaluation mode (``{fleet: 1.0, ego: 0.5}``; a fleet session's state
    is made by every session, so on-policy data there needs the whole fleet on the learner)."""

    mix: dict[str, PositiveFloat] = Field(
        default={"random": 1.0, "sticky-random": 1.0, "random-fixed": 1.0, "heuristic": 1.0, "analytic": 1.0},
        min_length=1,
    )
    epsilon: Probability = 0.1
    sticky_rounds: PositiveFloat = 20.0
    learner_share: float | dict[Literal["fleet", "ego"], float] = 0.5

    @field_validator("learner_share")
    @classmethod
    def _learner_share(cls, v: float | dict[str, float]) -> float | dict[str, float]:
        shares = v.values() if isinstance(v, dict) else [v]
        if not shares or not all(0.0 <= p <= 1.0 for p in shares):
            raise ValueError(
                f"must be a probability, or one per evaluation mode {{fleet: p, ego: p}}; got {v}"
            )
        return v

    def share(self, mode: str) -> float:
        """``learner_share`` in evaluation mode ``mode``."""
        return self.learner_share[mode] if isinstance(self.learner_share, dict) else self.learner_share


class CollectSpec(Model):
    """``evaluation_modes``: how each (variant, seed) is simulated, once per entry — ``fleet`` (every
    foreground session runs a behaviour, and the oracle labels count every one as a teammate) or
    ``ego`` (the first foreground session runs a behaviour and is labelled, the others run the
    scenario's ``control.policy``), so the dataset holds the states of both evaluate modes."""

    seed: NonNegInt = 0
    duration_s: PositiveFloat = 20.0
    seeds: PositiveInt = 1
    record_sessions: PositiveInt = 4
    window_choices: list[PositiveInt] | None = None
    modes: list[str] | None = None
    evaluation_modes: list[Literal["fleet", "ego"]] = Field(default=["fleet"], min_length=1)
    scenarios: list[ScenarioSpec] = Field(min_length=1)
    behaviour: BehaviourSpec = BehaviourSpec()
    # seeds per variant of the fixed-decision floor check (wc_dnn.floor), or one count per evaluation
    # mode ({fleet: 0, ego: 2}); 0: none
    floor_seeds: NonNegInt | dict[Literal["fleet", "ego"], NonNegInt] = 0

    def floor(self, mode: str) -> int:
        """``floor_seeds`` in evaluation mode ``mode``."""
        return self.floor_seeds.get(mode, 0) if isinstance(self.floor_seeds, dict) else self.floor_seeds

    @field_validator("evaluation_modes")
    @classmethod
    def _evaluation_modes(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"must be distinct; got {v}")
        return v

    @field_validator("modes")
    @classmethod
    def _modes(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or any(m not in MODES for m in v) or len(set(v)) != len(v)):
            raise ValueError(f"must be distinct names among {list(MODES)}; got {v}")
        return v

    @field_validator("window_choices")
    @classmethod
    def _windows(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError(f"must be distinct positive integers; got {v}")
        return sorted(v) if v is not None else None

    @model_validator(mode="after")
    def _distinct(self) -> CollectSpec:
        names = [s.scenario for s in self.scenarios]
        if len(set(names)) != len(names):
            raise ValueError(f"collect.scenarios.N.scenario must be distinct; got {names}")
        share = self.behaviour.learner_share
        missing = [m for m in self.evaluation_modes if isinstance(share, dict) and m not in share]
        if missing:
            raise ValueError(f"collect.behaviour.learner_share: no share for evaluation mode {missing[0]}")
        return self


class ModelSpec(Model):
    """:class:`wc_dnn.model.WindowNetConfig`: ``mode_head: null`` adds a mode head exactly when the
    dataset offers more than one mode; ``ignore``: telemetry features (:mod:`dsd_gym.telemetry`) the
    network does not read."""

    hidden: PositiveInt = 32
    depth: NonNegInt = 1
    default_gamma: PositiveFloat = 4.0
    mode_head: bool | None = None
    ignore: list[str] = []

    @model_validator(mode="after")
    def _known_features(self) -> ModelSpec:
        check_names(self.ignore, "ignore")
        return self


class TrainSpec(Model):
    """Optimisation. Loss per row: Huber(γ̂ − γ*; ``huber_delta``) over rows whose oracle decision has
    a window (not autoregressive) + ``mode_weight`` · cross-entropy(mode logits, oracle mode) with a
    mode head + ``regret_weight`` · the regret of γ̂ and of the mode head's softmax by the oracle's
    per-candidate values (:mod:`wc_dnn.train`). Adam(``lr``, ``weight_decay``), minibatches of
    ``batch_size`` rows reshuffled every epoch; at most ``epochs`` epochs, stopping after ``patience``
    epochs without a validation loss below the best by more than ``min_delta``. ``val_fraction`` of
    each scenario's variants (at least one, for a scenario with two or more) are held out for
    validation. ``select``: what picks the best epoch (and what ``patience`` waits for): ``loss``,
    the validation loss; ``held``, the model held on every variant of the dataset's fixed-decision
    sweep (``collect.floor_seeds``), scored against the best fixed decision (:mod:`wc_dnn.floor`);
    or one per evaluation mode, e.g. ``{ego: held}``."""

    seed: NonNegInt = 0
    epochs: PositiveInt = 30
    batch_size: PositiveInt = 512
    lr: PositiveFloat = 3e-3
    weight_decay: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    huber_delta: PositiveFloat = 1.0
    mode_weight: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1.0
    regret_weight: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    patience: PositiveInt = 5
    min_delta: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1e-4
    val_fraction: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.25
    threads: PositiveInt = 1
    floor: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None  # wc_dnn.floor
    select: Literal["loss", "held"] | dict[Literal["fleet", "ego"], Literal["loss", "held"]] = "loss"

    def selection(self, modes: list[str]) -> str:
        """``select`` for a run over evaluation modes ``modes`` (a mode without an entry: ``loss``)."""
        if isinstance(self.select, str):
            return self.select
        chosen = {self.select.get(mode, "loss") for mode in modes}  # type: ignore[call-overload]
        if len(chosen) > 1:
            raise UserError(f"train.select differs per mode {self.select}; train one mode at a time (--mode)")
        return chosen.pop()

    model: ModelSpec = ModelSpec()


class AWCSpec(Model):
    """:class:`wc_dnn.awc.AWCConfig` without the window choices and modes (they are the dataset's)."""

    gamma_min: PositiveFloat | None = None
    gamma_max: PositiveFloat | None = None
    smoothing: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.5
    gamma_dwell: PositiveInt = 1
    mode_dwell: PositiveInt = 3


class WCDNNConfig(Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    collect: CollectSpec
    train: TrainSpec = TrainSpec()
    awc: AWCSpec = AWCSpec()

    def data_dir(self) -> Path:
        return Path("runs") / "wc_dnn" / self.name / "data"

    def train_dir(self) -> Path:
        return Path("runs") / "wc_dnn" / self.name / "train"


def for_evaluation_mode(config: WCDNNConfig, mode: str) -> WCDNNConfig:
    """``config`` narrowed to one of its ``collect.evaluation_modes``, named ``<name>-<mode>``: the
    pipeline of the controller for that evaluation mode alone (``--mode`` of ``dsd-gym collect`` and
    ``train wc-dnn``). A fleet-mode label prices the time a round costs teammates, an ego-mode label
    does not, so the same telemetry has two right answers; a deployer knows which regime applies."""
    modes = config.collect.evaluation_modes
    if mode not in modes:
        raise UserError(f"--mode {mode}: not among collect.evaluation_modes {modes} of config {config.name}")
    behaviour = config.collect.behaviour.model_copy(
        update={"learner_share": config.collect.behaviour.share(mode)}
    )
    collect = config.collect.model_copy(
        update={"evaluation_modes": [mode], "behaviour": behaviour, "floor_seeds": config.collect.floor(mode)}
    )
    return config.model_copy(update={"name": f"{config.name}-{mode}", "collect": collect})


def config_hash(section: BaseModel) -> str:
    """sha256 of a section's canonical JSON: what makes two datasets (or runs) the same."""
    text = json.dumps(section.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def parse_config(data: Any, where: str) -> WCDNNConfig:
    if not isinstance(data, dict):
        raise UserError(f"{where}: a WC-DNN config must be a mapping with name and collect (train, awc)")
    try:
        return WCDNNConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{where}: {explain(exc, WCDNNConfig)}") from None


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> WCDNNConfig:
    """Read and validate a config file, with ``overrides`` (``dotted.key=value``, the value YAML, e.g.
    ``collect.seed=1``) set first; every problem is one ``UserError`` line."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"config {path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"config {path}: is a directory; give a YAML file") from None
    except OSError as exc:
        raise UserError(f"config {path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"config {path}{where}: {getattr(exc, 'problem', None) or 'invalid YAML'}") from None
    if overrides:
        if not isinstance(data, dict):
            raise UserError(f"config {path}: expected a mapping of sections, got {type(data).__name__}")
        for text in overrides:
            apply_override(data, text)
    return parse_config(data, f"config {path}")
