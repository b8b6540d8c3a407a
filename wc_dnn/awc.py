"""Adaptive Window Control: the runtime logic that turns the WC-DNN's output into a decision (DESIGN §6).

:class:`AWC` is a TorchScript-compatible module, batched over sessions, whose whole memory is a state
tensor ``[B, STATE_SIZE]`` passed in and returned (so one module serves any number of sessions and the
exported file stays a pure function). Per decision, for each session, given the network's continuous
window γ̂ and mode logits ℓ:

1. **Clamp**: c = min(max(γ̂, γ_min), γ_max).
2. **Smooth** (exponential, weight w on the newest): s = c at a session's first decision, else
   s = s_prev + w · (c − s_prev), then kept on a grid of 2⁻¹² tokens, s ← ⌊s · 4096 + ½⌋ / 4096, so
   that it is exact in a float32 state (γ_max ≤ 4096 needs at most 24 significant bits). w = 1
   switches smoothing off.
3. **Round** to the allowed set: the window choice nearest to s; a tie goes to the smaller window
   (the rule of :func:`dsd_gym.controllers.heuristics.nearest_window`). This is the γ *proposal*.
4. **Mode proposal**: argmax of ℓ over the enabled modes (ℓ of a disabled mode is −∞); a tie goes to
   the lower mode code (distributed 0, fused 1, autoregressive 2). A network without a mode head
   gives all-zero logits, so the proposal is always the first enabled mode.
5. **Dwell** (hysteresis), separately for the mode and for γ: the current value changes to a new
   proposal only once that same proposal has been made for ``dwell`` consecutive decisions; a
   proposal equal to the current value resets the count. ``dwell = 1`` switches at once. At a
   session's first decision both take their proposals directly (there is nothing to switch from).
6. **Output**: the current mode, and the current γ — or 0 when the mode is autoregressive (no
   speculation, as ``Decision(0, Mode.AUTOREGRESSIVE)`` elsewhere in dsd-gym). γ's smoothing and
   dwell keep running while the mode is autoregressive, so a switch back starts from a fresh γ.

State columns (float32; every value is exact in float32, so a state survives a round trip through
a tensor unchanged): see the ``S_*`` constants.

>>> import torch
>>> awc = AWC(AWCConfig(window_choices=[1, 2, 4, 8], smoothing=1.0))
>>> gamma, mode, state = awc(torch.tensor([2.9, 100.0]), torch.zeros(2, 3), awc.initial_state(2))
>>> gamma.tolist(), mode.tolist()
([2, 8], [0, 0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from dsd_gym.sim.controller import Mode

__all__ = ["AWC", "AWCConfig", "MODE_NAMES", "STATE_SIZE"]

MODE_NAMES: tuple[str, ...] = tuple(m.name.lower() for m in Mode)  # in code order

S_STARTED = 0  # 1 after the session's first decision
S_SMOOTHED = 1  # s, the smoothed clamped γ̂
S_GAMMA = 2  # the current window
S_MODE = 3  # the current mode code
S_GAMMA_PENDING = 4  # the latest γ proposal that differs from the current window
S_GAMMA_COUNT = 5  # consecutive decisions it has been proposed
S_MODE_PENDING = 6
S_MODE_COUNT = 7
STATE_SIZE = 8
GRID = 4096.0  # the smoothed window's resolution, 1 / 2**12 tokens (rule 2)
MAX_GAMMA = 4096.0  # the largest γ_max for which the grid keeps s exact in float32


@dataclass(frozen=True)
class AWCConfig:
    """AWC's parameters. ``gamma_min``/``gamma_max`` default to the smallest/largest window choice;
    ``smoothing`` is the weight on the newest prediction, in (0, 1]; ``modes`` are the enabled mode
    names (at least one); ``gamma_dwell`` and ``mode_dwell`` are in decisions (≥ 1)."""

    window_choices: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7, 8])
    modes: list[str] = field(default_factory=lambda: ["distributed"])
    gamma_min: float | None = None
    gamma_max: float | None = None
    smoothing: float = 0.5
    gamma_dwell: int = 1
    mode_dwell: int = 3

    def __post_init__(self) -> None:
        choices = self.window_choices
        if not choices or any(int(g) != g or g < 1 for g in choices) or len(set(choices)) != len(choices):
            raise ValueError(f"window_choices must be distinct positive integers; got {choices}")
        object.__setattr__(self, "window_choices", sorted(int(g) for g in choices))
        unknown = [m for m in self.modes if m not in MODE_NAMES]
        if not self.modes or unknown or len(set(self.modes)) != len(self.modes):
            raise ValueError(f"modes must be distinct names among {list(MODE_NAMES)}; got {self.modes}")
        object.__setattr__(self, "modes", sorted(self.modes, key=MODE_NAMES.index))
        if self.gamma_min is None:
            object.__setattr__(self, "gamma_min", float(self.window_choices[0]))
        if self.gamma_max is None:
            object.__setattr__(self, "gamma_max", float(self.window_choices[-1]))
        if not 0 < self.gamma_min <= self.gamma_max:
            raise ValueError(
                f"need 0 < gamma_min <= gamma_max; got gamma_min={self.gamma_min}, gamma_max={self.gamma_max}"
            )
        if self.gamma_max > MAX_GAMMA:
            raise ValueError(f"gamma_max must be <= {MAX_GAMMA:g}; got {self.gamma_max}")
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError(f"smoothing must be in (0, 1]; got {self.smoothing}")
        for name in ("gamma_dwell", "mode_dwell"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value}")

    def as_dict(self) -> dict:
        return {
            "window_choices": list(self.window_choices),
            "modes": list(self.modes),
            "gamma_min": float(self.gamma_min),
            "gamma_max": float(self.gamma_max),
            "smoothing": float(self.smoothing),
            "gamma_dwell": int(self.gamma_dwell),
            "mode_dwell": int(self.mode_dwell),
        }


class AWC(nn.Module):
    """Clamp, smooth, round, mode mask and dwell; see the module docstring for the rule.

    ``step`` is the rule for one session on Python scalars; ``forward`` applies it to each row of a
    batch. Both the batched and the single-session paths of an exported controller therefore run the
    same code, and every state value is exact in float32 (see rule 2). Scalars
    rather than tensor ops because a decision is a handful of comparisons: at batch 1 each tensor op
    costs microseconds of dispatch, a scalar operation in TorchScript a fraction of that.
    """

    def __init__(self, config: AWCConfig) -> None:
        super().__init__()
        self.gamma_min = float(config.gamma_min)
        self.gamma_max = float(config.gamma_max)
        self.smoothing = float(config.smoothing)
        self.gamma_dwell = int(config.gamma_dwell)
        self.mode_dwell = int(config.mode_dwell)
        self.choices = [float(g) for g in config.window_choices]  # ascending
        # Rule 3 as a scan: the nearest choice is the first whose midpoint with the next is >= s (a
        # tie at the midpoint goes to the smaller window; the last choice's "midpoint" is +inf).
        # Exact: s is on the 2⁻¹² grid and the choices are integers, so every midpoint and every
        # comparison is exact in float64.
        self.midpoints = [
            (a + b) / 2.0 for a, b in zip(self.choices, self.choices[1:] + [math.inf], strict=True)
        ]
        self.enabled_modes = [MODE_NAMES.index(name) for name in config.modes]  # ascending codes
        self.autoregressive = int(Mode.AUTOREGRESSIVE)
        self.state_size = STATE_SIZE
        self.grid = GRID

    @torch.jit.export
    def initial_state(self, batch: int) -> Tensor:
        """The state of ``batch`` sessions that have not decided yet: zeros [batch, S], float32."""
        return torch.zeros(batch, self.state_size, dtype=torch.float32)

    def forward(self, gamma_hat: Tensor, logits: Tensor, state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """γ̂ [B], mode logits [B, 3], state [B, S] → (γ [B] int64, mode [B] int64, new state [B, S])."""
        gamma_rows: list[float] = gamma_hat.tolist()
        logit_rows: list[list[float]] = logits.tolist()
        state_rows: list[list[float]] = state.tolist()
        gammas: list[int] = []
        modes: list[int] = []
        states: list[list[float]] = []
        for i in range(len(gamma_rows)):
            gamma, mode, new_state = self.step(gamma_rows[i], logit_rows[i], state_rows[i])
            gammas.append(gamma)
            modes.append(mode)
            states.append(new_state)
        return (
            torch.tensor(gammas, dtype=torch.int64),
            torch.tensor(modes, dtype=torch.int64),
            torch.tensor(states, dtype=torch.float32).reshape(-1, self.state_size),
        )

    @torch.jit.export
    def step(self, gamma_hat: float, logits: list[float], state: list[float]) -> tuple[int, int, list[float]]:
        """One session's decision: (γ, mode code, new state); rules 1-6 of the module docstring."""
        started = state[0] > 0.5
        clamped = min(max(gamma_hat, self.gamma_min), self.gamma_max)
        smoothed = state[1] + self.smoothing * (clamped - state[1]) if started else clamped
        smoothed = math.floor(smoothed * self.grid + 0.5) / self.grid
        gamma_proposal = self.choices[-1]
        for k in range(len(self.choices)):
            if smoothed <= self.midpoints[k]:
                gamma_proposal = self.choices[k]
                break
        mode_proposal = self.enabled_modes[0]
        for code in self.enabled_modes:
            if logits[code] > logits[mode_proposal]:  # strict: a tie keeps the lower code
                mode_proposal = code
        # The state's order is the S_* column order.
        mode, mode_pending, mode_count = self._dwell(
            started, state[3], state[6], state[7], float(mode_proposal), self.mode_dwell
        )
        gamma, gamma_pending, gamma_count = self._dwell(
            started, state[2], state[4], state[5], gamma_proposal, self.gamma_dwell
        )
        new_state = [1.0, smoothed, gamma, mode, gamma_pending, gamma_count, mode_pending, mode_count]
        mode_code = int(mode)
        return (0 if mode_code == self.autoregressive else int(gamma)), mode_code, new_state

    def _dwell(
        self, started: bool, current: float, pending: float, count: float, proposal: float, dwell: int
    ) -> tuple[float, float, float]:
        """One dwell step: (current, pending, count) after ``proposal``; rule 5 of the module doc."""
        if not started:
            return proposal, proposal, 0.0
        if proposal == current:
            return current, current, 0.0
        count = count + 1.0 if proposal == pending else 1.0
        if count >= dwell:
            return proposal, proposal, 0.0
        return current, proposal, count
