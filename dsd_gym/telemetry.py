"""The edge-observable telemetry vector: ONE definition (DESIGN §4).

The simulator's sessions, the Gymnasium env's observation, the WC-DNN's input and the exported
controller's input are all this vector, in this order. Every feature is something a real edge
runtime can measure from its own clock and the server's reply: the round time, the network part of
it (round − draft − server-reported time), server-reported queue depth, batch size and server time,
accepted/drafted counts, the last decision, draft speed and context length. Each request's prefill
(:meth:`TelemetryTracker.prefill`) measures the network too (reply − send − server time), and gives
the draft speed before any distributed round has: a session that has only run fused (no network in
its rounds, no draft on the edge) still knows both.

Values are in the units named below, clipped to ``[low, high]``; ``scale`` divides a feature for
neural-network inputs (``normalized()``). Smoothed features are exponentially weighted moving
averages with weight ``smoothing`` on the newest round.

>>> tracker = TelemetryTracker()
>>> tracker.vector().shape == (len(FEATURES),)
True
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dsd_gym.sim.records import RoundRecord


@dataclass(frozen=True)
class Feature:
    name: str
    unit: str
    low: float
    high: float
    scale: float
    description: str


FEATURES: tuple[Feature, ...] = (
    Feature("round_ms", "ms", 0.0, 60_000.0, 100.0, "duration of the last round at the edge"),
    Feature("round_ms_ewma", "ms", 0.0, 60_000.0, 100.0, "smoothed round duration"),
    Feature("rtt_ms", "ms", 0.0, 30_000.0, 100.0, "last network time (distributed round or prefill)"),
    Feature("rtt_ms_ewma", "ms", 0.0, 30_000.0, 100.0, "smoothed network time"),
    Feature(
        "rtt_jitter_ms", "ms", 0.0, 30_000.0, 10.0, "smoothed absolute deviation of rtt from rtt_ms_ewma"
    ),
    Feature("queue_depth", "jobs", 0.0, 10_000.0, 10.0, "server-reported queue depth on arrival"),
    Feature("batch_size", "seqs", 0.0, 10_000.0, 10.0, "server-reported batch size of the verify"),
    Feature("server_ms", "ms", 0.0, 60_000.0, 100.0, "server-reported queue + verify time"),
    Feature("server_ms_ewma", "ms", 0.0, 60_000.0, 100.0, "smoothed server time"),
    Feature("accepted", "tokens", 0.0, 256.0, 8.0, "draft tokens accepted in the last round"),
    Feature("drafted", "tokens", 0.0, 256.0, 8.0, "draft tokens proposed in the last round"),
    Feature("acceptance_ewma", "ratio", 0.0, 1.0, 1.0, "smoothed accepted / smoothed drafted"),
    Feature("last_gamma", "tokens", 0.0, 256.0, 8.0, "window of the last round"),
    Feature("last_mode", "enum", 0.0, 2.0, 1.0, "0 distributed, 1 fused, 2 autoregressive"),
    Feature("draft_ms_per_token", "ms", 0.0, 10_000.0, 10.0, "smoothed edge draft time per token"),
    Feature("context_tokens", "tokens", 0.0, 1_000_000.0, 1000.0, "prompt + committed tokens"),
)
NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
INDEX: dict[str, int] = {name: i for i, name in enumerate(NAMES)}
LOW = np.array([f.low for f in FEATURES], dtype=np.float32)
HIGH = np.array([f.high for f in FEATURES], dtype=np.float32)
SCALE = np.array([f.scale for f in FEATURES], dtype=np.float32)


@cache
def stacked_bounds(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of ``rows`` stacked vectors (:meth:`TelemetryTracker.stacked`, the env's
    observation space); read-only, shared."""
    low, high = np.tile(LOW, rows), np.tile(HIGH, rows)
    low.setflags(write=False)
    high.setflags(write=False)
    return low, high


def check_names(names: Iterable[str], what: str) -> None:
    """A ``ValueError`` naming the first of ``names`` that is not a feature, and the features."""
    unknown = [name for name in names if name not in INDEX]
    if unknown:
        raise ValueError(f"{what}: unknown feature {unknown[0]!r}; allowed: {', '.join(NAMES)}")


class TelemetryTracker:
    """Keeps one session's features up to date, one ``update`` per round.

    The per-round work is plain float arithmetic; the numpy vector is built only when asked for.
    ``history`` past vectors are kept (newest last) for controllers that look back: one per decision
    that found the vector changed (``decision_rows``) — what a runtime that calls its controller once
    per decision can keep, even when a round and the next request's prefill both came in between.
    """

    def __init__(self, smoothing: float = 0.2, history: int = 0) -> None:
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f"smoothing must be in (0, 1]; got {smoothing}")
        self.smoothing = smoothing
        self.values = [0.0] * len(FEATURES)
        self._accepted_ewma = 0.0
        self._drafted_ewma = 0.0
        self.rounds = 0  # update()s: rounds seen
        self.updates = 0  # update()s and prefill()s: the vector's changes
        self._kept = 0  # updates when the newest history row was taken
        self._links = 0
        self.history: deque[tuple[float, ...]] = deque(maxlen=history) if history > 0 else None

    def update(self, r: RoundRecord) -> None:
        v, w = self.values, self.smoothing
        first = self.rounds == 0
        round_ms = 1e3 * (r.end_s - r.start_s)
        server_ms = 1e3 * (r.queue_s + r.verify_s)
        draft_ms = 1e3 * r.draft_s
        v[0] = round_ms
        v[1] = round_ms if first else v[1] + w * (round_ms - v[1])
        if r.mode == 0:  # distributed: the round crossed the network (fused and autoregressive do not)
            self._link(round_ms - draft_ms - server_ms)
        v[5] = float(r.queue_depth)
        v[6] = float(r.batch_size)
        v[7] = server_ms
        v[8] = server_ms if first else v[8] + w * (server_ms - v[8])
        v[9] = float(r.accepted)
        v[10] = float(r.gamma)
        if r.gamma > 0:
            if self._drafted_ewma == 0.0:
                self._accepted_ewma, self._drafted_ewma = float(r.accepted), float(r.gamma)
            else:
                self._accepted_ewma += w * (r.accepted - self._accepted_ewma)
                self._drafted_ewma += w * (r.gamma - self._drafted_ewma)
            v[11] = self._accepted_ewma / self._drafted_ewma
        v[12] = float(r.gamma)
        v[13] = float(r.mode)
        if r.draft_s > 0.0 and r.gamma > 0:
            per_token = draft_ms / r.gamma
            v[14] = per_token if v[14] == 0.0 else v[14] + w * (per_token - v[14])
        v[15] = float(r.context + r.committed)
        self.rounds += 1
        self.updates += 1

    def prefill(self, rtt_ms: float, draft_ms_per_token: float, context: int) -> None:
        """A request's prefill exchange, which starts every request whatever mode its rounds take.

        - ``rtt_ms``: its network time (the reply's arrival − the prompt's send − the server-reported
          time), one sample of the three network features, as a distributed round gives. A session
          whose rounds all run at the cloud (fused) thus still knows its link.
        - ``draft_ms_per_token``: the one-token draft step the edge times when it prefills its draft
          model. It is the draft speed until a distributed round measures one (rounds' measurements
          are smoothed into it from then on): a session that has only run fused would otherwise never
          know whether its own drafting would pay.
        - ``context``: the tokens the request starts from (``context_tokens``).

        The vector changes, so it counts as an update (``updates``) but not as a round.
        """
        self._link(rtt_ms)
        if self.values[14] == 0.0:
            self.values[14] = draft_ms_per_token
        self.values[15] = float(context)
        self.updates += 1

    def _link(self, rtt_ms: float) -> None:
        """One network-time sample: a reply's arrival − its request's send − the server time."""
        v, w = self.values, self.smoothing
        rtt_ms = max(0.0, rtt_ms)
        first = self._links == 0
        v[2] = rtt_ms
        v[4] = 0.0 if first else v[4] + w * (abs(rtt_ms - v[3]) - v[4])
        v[3] = rtt_ms if first else v[3] + w * (rtt_ms - v[3])
        self._links += 1

    def decision_rows(self) -> deque[tuple[float, ...]]:
        """The history at a decision (newest last): the current vector is pushed first if anything
        changed since the newest row was taken. Call it once per decision."""
        if self.updates != self._kept:
            self._kept = self.updates
            self.history.append(tuple(self.values))
        return self.history

    def stacked(self, rows: int) -> np.ndarray:
        """The observation of a controller that looks back ``rows - 1`` updates, at a decision:
        ``decision_rows`` newest first, zeros past the oldest, float32, clipped to the bounds —
        ``rows · F`` values (``vector()`` when ``rows`` is 1). Call it once per decision. A tracker
        built with fewer rows (the simulator's have none) keeps ``rows`` from its first call on."""
        if rows == 1:
            return self.vector()
        history = self.history
        if history is None or history.maxlen < rows:
            self.history = deque(history or (), maxlen=rows)
        kept = self.decision_rows()
        if len(kept) > rows:  # a tracker that keeps more than this controller looks at
            kept = list(kept)[-rows:]
        n = len(kept) * len(FEATURES)
        obs = np.zeros(rows * len(FEATURES), dtype=np.float32)
        if n:
            # One conversion and one clip for the whole stack: the same float32 values as stacking
            # ``vector()`` of each row.
            stack = obs[:n]
            stack[:] = np.fromiter(chain.from_iterable(reversed(kept)), np.float32, n)
            low, high = stacked_bounds(rows)
            np.maximum(stack, low[:n], out=stack)
            np.minimum(stack, high[:n], out=stack)
        return obs

    def vector(self) -> np.ndarray:
        """The features in raw units, float32, clipped to their bounds."""
        # fromiter: the same float32 conversion as np.array, without its shape discovery (a third of
        # the instructions); then two ufuncs in place: several times faster than np.clip.
        vector = np.fromiter(self.values, np.float32, len(self.values))
        np.maximum(vector, LOW, out=vector)
        np.minimum(vector, HIGH, out=vector)
        return vector

    def normalized(self) -> np.ndarray:
        return self.vector() / SCALE

    def __getitem__(self, name: str) -> float:
        return self.values[INDEX[name]]


def table() -> str:
    """The features as a Markdown table (index, name, unit, min, max, description)."""
    rows = ["| index | name | unit | min | max | description |", "|---|---|---|---|---|---|"]
    for i, f in enumerate(FEATURES):
        rows.append(f"| {i} | `{f.name}` | {f.unit} | {f.low:g} | {f.high:g} | {f.description} |")
    return "\n".join(rows)
