"""The typed scenario schema: every knob of the simulated system, validated at load.

Units are in the field names (``one_way_ms``, ``bandwidth_mbps``, ``mean_s``); the simulator converts
to seconds. Profile names (hardware, model, acceptance, task) are resolved against the data in
``configs/profiles/`` while validating, through the validation context, so an unknown name fails at
load with the key that holds it.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
LossProbability = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]
OpenProbability = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]

MODES = ("distributed", "fused", "autoregressive")
Mode = Literal["distributed", "fused", "autoregressive"]


class Model(BaseModel):
    """Base of every config object: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


# --------------------------------------------------------------------------- distributions


class ConstantDist(Model):
    dist: Literal["constant"]
    value: NonNegFloat


class ExponentialDist(Model):
    dist: Literal["exponential"]
    mean: PositiveFloat


class UniformDist(Model):
    dist: Literal["uniform"]
    low: NonNegFloat
    high: NonNegFloat

    @model_validator(mode="after")
    def _ordered(self) -> UniformDist:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self


class LogNormalDist(Model):
    """Log-normal by its median and the standard deviation of the log; clipped to [min, max]."""

    dist: Literal["lognormal"]
    median: PositiveFloat
    sigma: NonNegFloat
    min: NonNegFloat = 0.0
    max: float = math.inf

    @model_validator(mode="after")
    def _ordered(self) -> LogNormalDist:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        return self


Distribution = Annotated[
    Union[ConstantDist, ExponentialDist, UniformDist, LogNormalDist],
    Field(discriminator="dist"),
]


# --------------------------------------------------------------------------- profiles (data)


class HardwareProfile(Model):
    """An accelerator, by the figures the roofline needs. Figures per device (one GPU/SoC)."""

    name: str
    description: str
    peak_tflops: PositiveFloat  # dense 16-bit tensor throughput, TFLOP/s
    mem_bw_gbps: PositiveFloat  # memory bandwidth, GB/s
    memory_gb: PositiveFloat
    mfu: Fraction = 0.5  # achieved fraction of peak FLOP/s in compute-bound passes
    mbu: Fraction = 0.7  # achieved fraction of peak bandwidth in memory-bound passes
    overhead_ms: NonNegFloat = 0.0  # fixed per-forward cost: launches, scheduling, sampling
    interconnect_gbps: PositiveFloat | None = None  # per-GPU all-reduce bandwidth, GB/s
    allreduce_latency_us: NonNegFloat = 0.0
    source: str


class ModelProfile(Model):
    """A decoder-only transformer, by its architecture (from its public config)."""

    name: str
    description: str
    params_b: PositiveFloat  # parameters, billions
    layers: PositiveInt
    hidden: PositiveInt
    heads: PositiveInt
    kv_heads: PositiveInt
    head_dim: PositiveInt
    bytes_per_weight: PositiveFloat = 2.0
    bytes_per_kv: PositiveFloat = 2.0
    source: str


class IIDAcceptance(Model):
    """Every output position is accepted with the same probability ``alpha``."""

    kind: Literal["iid"]
    alpha: Probability


class Regime(Model):
    name: str
    alpha: Probability
    mean_tokens: PositiveFloat  # mean length of a stay in this regime, output tokens
    weight: PositiveFloat = 1.0  # relative chance of switching into this regime


class MarkovAcceptance(Model):
    """Markov-switching regimes over output positions (e.g. prose vs. code)."""

    kind: Literal["markov"]
    regimes: list[Regime] = Field(min_length=2)


class LatentAcceptance(Model):
    """A smooth latent difficulty: an AR(1) walk on logit(alpha) over output positions."""

    kind: Literal["latent"]
    mean_alpha: OpenProbability
    logit_std: NonNegFloat  # stationary standard deviation of logit(alpha)
    correlation_tokens: PositiveFloat  # e-folding length of the walk, output tokens


AcceptanceProcess = Annotated[
    Union[IIDAcceptance, MarkovAcceptance, LatentAcceptance], Field(discriminator="kind")
]


class AcceptanceProfile(Model):
    """An acceptance process measured (or derived) for a draft/target pair on a task family."""

    name: str
    draft: str
    target: str
    task: str
    process: AcceptanceProcess
    source: str


class TaskProfile(Model):
    """Prompt and output length distributions of a task family, in tokens."""

    name: str
    description: str = ""
    prompt_tokens: Distribution
    output_tokens: Distribution
    source: str = "inline"


# --------------------------------------------------------------------------- latency models


class RooflineLatency(Model):
    """Compute/memory roofline from the hardware and model profiles (DESIGN §3)."""

    kind: Literal["roofline"] = "roofline"


class ConstantLatency(Model):
    """Every forward pass costs ``forward_ms`` (+ ``per_token_ms`` per new token): the theory case."""

    kind: Literal["constant"]
    forward_ms: PositiveFloat
    per_token_ms: NonNegFloat = 0.0
    draft_forward_ms: NonNegFloat | None = None  # cloud-side draft forward (fused mode)


class LookupLatency(Model):
    """Measured iteration times: a CSV of (batch_size, num_tokens) -> ms, interpolated."""

    kind: Literal["lookup"]
    path: str


LatencySpec = Annotated[Union[RooflineLatency, ConstantLatency, LookupLatency], Field(discriminator="kind")]


# --------------------------------------------------------------------------- network


class ConstantDelay(Model):
    """One-way delay = ``one_way_ms`` + |N(0, jitter_ms)|, the jitter redrawn every ``step_ms``."""

    kind: Literal["constant"]
    one_way_ms: NonNegFloat
    jitter_ms: NonNegFloat = 0.0
    loss: LossProbability = 0.0
    step_ms: PositiveFloat = 10.0


class GilbertElliottDelay(Model):
    """A good/bad Markov chain stepped every ``step_ms``: bursts of high delay and loss."""

    kind: Literal["gilbert_elliott"]
    good_ms: NonNegFloat
    bad_ms: NonNegFloat
    jitter_ms: NonNegFloat = 0.0
    p_good_to_bad: Probability
    p_bad_to_good: Probability
    loss_good: LossProbability = 0.0
    loss_bad: LossProbability = 0.0
    step_ms: PositiveFloat = 10.0

    @model_validator(mode="after")
    def _mixing(self) -> GilbertElliottDelay:
        if self.p_good_to_bad + self.p_bad_to_good == 0:
            raise ValueError("p_good_to_bad and p_bad_to_good cannot both be 0")
        return self


class TraceDelay(Model):
    """Replay a CSV trace (time_s, one_way_ms, uplink_mbps, downlink_mbps), looping."""

    kind: Literal["trace"]
    path: str
    loss: LossProbability = 0.0
    delay_scale: PositiveFloat = 1.0


DelaySpec = Annotated[Union[ConstantDelay, GilbertElliottDelay, TraceDelay], Field(discriminator="kind")]


class LinkSpec(Model):
    """The access link of one edge device: up and down directions share the delay process."""

    uplink_mbps: PositiveFloat
    downlink_mbps: PositiveFloat
    delay: DelaySpec
    retransmit_timeout_ms: PositiveFloat = 200.0


class PayloadSpec(Model):
    """Message sizes in bytes."""

    header_bytes: NonNegInt = 64
    token_bytes: PositiveInt = 4
    draft_token_bytes: PositiveInt = 8  # token id + the draft probability verification needs
    server_telemetry_bytes: NonNegInt = 16


# --------------------------------------------------------------------------- system


def _lookup(info: ValidationInfo, table: str, value: Any) -> Any:
    """Replace a profile name by the profile's data (validated by the field's own type)."""
    if not isinstance(value, str):
        return value
    profiles = (info.context or {}).get("profiles")
    if profiles is None:
        raise ValueError(f"profile names need the profile tables; got name {value!r}")
    entries = profiles[table]
    if value not in entries:
        raise ValueError(f"unknown {table} profile {value!r}; allowed: {', '.join(sorted(entries))}")
    return entries[value]


class DeviceGroup(Model):
    """``count`` identical edge devices, each with its draft model, link and sessions."""

    name: str
    count: PositiveInt = 1
    hardware: HardwareProfile
    draft_model: ModelProfile
    latency: LatencySpec = RooflineLatency()
    link: LinkSpec
    sessions: NonNegInt = 1  # closed-loop sessions per device
    acceptance: AcceptanceProcess | None = None  # overrides the scenario's acceptance
    policy: str | None = None  # set: background sessions with this policy; unset: the run's policy

    @field_validator("hardware", mode="before")
    @classmethod
    def _hardware(cls, v: Any, info: ValidationInfo) -> Any:
        return _lookup(info, "hardware", v)

    @field_validator("draft_model", mode="before")
    @classmethod
    def _model(cls, v: Any, info: ValidationInfo) -> Any:
        return _lookup(info, "models", v)

    @field_validator("acceptance", mode="before")
    @classmethod
    def _acceptance(cls, v: Any, info: ValidationInfo) -> Any:
        return _lookup(info, "acceptance", v)


class TargetGroup(Model):
    """``count`` identical cloud targets (each a tensor-parallel group of GPUs)."""

    name: str
    count: PositiveInt = 1
    hardware: HardwareProfile
    model: ModelProfile
    draft_model: ModelProfile | None = None  # the cloud-side draft of fused mode
    tensor_parallel: PositiveInt = 1
    max_batch_size: PositiveInt = 64
    max_batch_tokens: PositiveInt = 8192
    prefill_chunk_tokens: PositiveInt = 512
    latency: LatencySpec = RooflineLatency()
    mtbf_s: PositiveFloat | None = None  # mean time between failures; None: never fails
    mttr_s: PositiveFloat = 30.0

    @field_validator("hardware", mode="before")
    @classmethod
    def _hardware(cls, v: Any, info: ValidationInfo) -> Any:
        return _lookup(info, "hardware", v)

    @field_validator("model", "draft_model", mode="before")
    @classmethod
    def _model(cls, v: Any, info: ValidationInfo) -> Any:
        return _lookup(info, "models", v)

    @model_validator(mode="after")
    def _tensor_parallel(self) -> TargetGroup:
        if self.tensor_parallel > 1 and self.hardware.interconnect_gbps is None:
            raise ValueError(
                f"tensor_parallel {self.tensor_parallel} needs an interconnect, and hardware "
                f"{self.hardware.name!r} has none (interconnect_gbps); use tensor_parallel 1"
            )
        return self


class NoBackground(Model):
    kind: Literal["none"] = "none"


class StochasticBackground(Model):
    """Cheap background load: Poisson verify and prefill jobs at every target, batched like real ones."""

    kind: Literal["stochastic"]
    verify_rate_per_s: NonNegFloat
    verify_tokens: PositiveInt = 5
    context_tokens: Distribution = LogNormalDist(dist="lognormal", median=1024, sigma=0.7, min=16)
    prefill_rate_per_s: NonNegFloat = 0.0
    prefill_tokens: Distribution = LogNormalDist(dist="lognormal", median=512, sigma=0.8, min=16)


BackgroundSpec = Annotated[Union[NoBackground, StochasticBackground], Field(discriminator="kind")]


class CloudSpec(Model):
    targets: list[TargetGroup] = Field(min_length=1)
    router: Literal["random", "round_robin", "jsq"] = "jsq"
    request_timeout_ms: PositiveFloat = 5000.0
    background: BackgroundSpec = NoBackground()


class ClosedLoopWorkload(Model):
    """Every device runs ``sessions`` users: request, wait for it, think, repeat."""

    kind: Literal["closed_loop"]
    task: TaskProfile
    think_time_s: Distribution = ExponentialDist(dist="exponential", mean=1.0)

    @field_validator("task", mode="before")
    @classmethod
    def _task(cls, v: Any, info: ValidationInfo) -> Any:
        return _lookup(info, "tasks", v)


class PoissonWorkload(Model):
    """Open-loop arrivals at ``rate_per_s``, each on a uniformly chosen foreground device."""

    kind: Literal["poisson"]
    rate_per_s: PositiveFloat
    task: TaskProfile

    @field_validator("task", mode="before")
    @classmethod
    def _task(cls, v: Any, info: ValidationInfo) -> Any:
        return _lookup(info, "tasks", v)


class TraceWorkload(Model):
    """Replay a JSONL request trace (arrival_s, prompt_tokens, output_tokens[, device, acceptance])."""

    kind: Literal["trace"]
    path: str
    time_scale: PositiveFloat = 1.0  # multiply arrival times (<1 compresses the trace)


WorkloadSpec = Annotated[
    Union[ClosedLoopWorkload, PoissonWorkload, TraceWorkload], Field(discriminator="kind")
]


class ControlSpec(Model):
    """What a window controller may choose, and the policy of the foreground sessions."""

    window_choices: list[PositiveInt] = Field(default=[1, 2, 3, 4, 5, 6, 7, 8], min_length=1)
    modes: list[Mode] = Field(default=list(MODES), min_length=1)
    policy: str = "fixed:4"

    @field_validator("window_choices")
    @classmethod
    def _sorted_unique(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"window choices must be distinct; got {v}")
        return sorted(v)


class SLOSpec(Model):
    ttft_ms: PositiveFloat = 2000.0
    tpot_ms: PositiveFloat = 100.0


class TelemetrySpec(Model):
    smoothing: Fraction = 0.2  # EWMA weight of the newest round


class RandomRange(Model):
    """How one scenario key varies at every env reset: exactly one of the four forms."""

    uniform: tuple[float, float] | None = None
    log_uniform: tuple[PositiveFloat, PositiveFloat] | None = None
    integers: tuple[int, int] | None = None  # inclusive
    choice: list[Any] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_form(self) -> RandomRange:
        forms = [f for f in ("uniform", "log_uniform", "integers", "choice") if getattr(self, f) is not None]
        if len(forms) != 1:
            raise ValueError(
                f"give exactly one of uniform, log_uniform, integers, choice; got {forms or 'none'}"
            )
        bounds = getattr(self, forms[0])
        if forms[0] != "choice" and bounds[1] < bounds[0]:
            raise ValueError(f"{forms[0]} bounds must be [low, high] with low <= high; got {list(bounds)}")
        return self


class Scenario(Model):
    """A whole simulated edge-cloud DSD system and how long to run it."""

    name: str
    description: str
    duration_s: PositiveFloat
    warmup_s: NonNegFloat = 0.0
    seed: NonNegInt = 0
    acceptance: AcceptanceProcess
    control: ControlSpec = ControlSpec()
    devices: list[DeviceGroup] = Field(min_length=1)
    cloud: CloudSpec
    workload: WorkloadSpec
    payload: PayloadSpec = PayloadSpec()
    slo: SLOSpec = SLOSpec()
    telemetry: TelemetrySpec = TelemetrySpec()
    randomize: dict[str, RandomRange] = {}  # dotted key -> range, drawn at every env reset

    @field_validator("acceptance", mode="before")
    @classmethod
    def _acceptance(cls, v: Any, info: ValidationInfo) -> Any:
        return _lookup(info, "acceptance", v)

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        """Conditions across keys; each message names the keys by their full dotted path."""
        if self.warmup_s >= self.duration_s:
            raise ValueError(f"warmup_s ({self.warmup_s}) must be < duration_s ({self.duration_s})")
        names = [d.name for d in self.devices]
        if len(set(names)) != len(names):
            raise ValueError(f"devices.N.name must be distinct; got {names}")
        widest = max(self.control.window_choices) + 1
        background = self.cloud.background
        for i, t in enumerate(self.cloud.targets):
            if t.max_batch_tokens < widest:
                raise ValueError(
                    f"cloud.targets.{i}.max_batch_tokens ({t.max_batch_tokens}) must hold a verify job "
                    f"of the widest window in control.window_choices ({widest} tokens)"
                )
            if isinstance(background, StochasticBackground) and background.verify_tokens > t.max_batch_tokens:
                raise ValueError(
                    f"cloud.background.verify_tokens ({background.verify_tokens}) must be <= "
                    f"cloud.targets.{i}.max_batch_tokens ({t.max_batch_tokens})"
                )
            if (
                "fused" in self.control.modes
                and t.draft_model is None
                and not (isinstance(t.latency, ConstantLatency) and t.latency.draft_forward_ms is not None)
            ):
                raise ValueError(
                    f"fused mode needs a cloud draft: set cloud.targets.{i}.draft_model "
                    f"(or its latency.draft_forward_ms), or drop 'fused' from control.modes"
                )
        foreground = [d for d in self.devices if d.policy is None]
        kind = self.workload.kind
        if kind == "closed_loop" and not any(d.sessions > 0 for d in foreground):
            raise ValueError(
                "a closed_loop workload needs a device group with sessions > 0 and no devices.N.policy"
            )
        if kind != "closed_loop" and not foreground:
            raise ValueError(
                f"a {kind} workload sends requests to device groups without a policy, and every group "
                "sets devices.N.policy; leave the policy unset on at least one group"
            )
        if kind == "trace" and len(foreground) < len(self.devices):
            raise ValueError(
                "background groups (devices.N.policy set) run closed-loop on the workload's task, "
                "and a trace workload has none; use a closed_loop or poisson workload"
            )
        return self
