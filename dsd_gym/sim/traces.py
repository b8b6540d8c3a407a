"""Parsers for the simulator's data files: network traces, latency tables, request traces.

Each loader is cached by path (a scenario names the same file for many devices) and returns
immutable data. A malformed file raises :class:`~dsd_gym.errors.UserError` with one line,
``"{path}:{lineno}: {what is wrong}; {what is allowed}"``, so the user can go straight to the line.
"""

from __future__ import annotations

import functools
import json
import math
import os
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dsd_gym.errors import UserError

NETWORK_HEADER = ("time_s", "one_way_ms", "uplink_mbps", "downlink_mbps")
LATENCY_HEADER = ("batch_size", "num_tokens", "ms")
WORKLOAD_KEYS = ("arrival_s", "prompt_tokens", "output_tokens", "device", "acceptance")


def _read_lines(path: str | os.PathLike[str]) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; traces are UTF-8 CSV or JSONL files") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror}); give a readable file") from None


def _content_lines(lines: list[str]) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped line), skipping blank lines and '#' comments."""
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield lineno, line


def _csv_rows(
    path: str | os.PathLike[str], header: tuple[str, ...]
) -> tuple[list[tuple[int, list[str]]], int]:
    """The data rows (with line numbers) of a CSV file with exactly ``header``; its line count."""
    lines = _read_lines(path)
    rows = _content_lines(lines)
    expected = ",".join(header)
    first = next(rows, None)
    if first is None:
        raise UserError(f"{path}:{len(lines)}: no header; the first non-comment line must be {expected}")
    lineno, line = first
    if tuple(f.strip() for f in line.split(",")) != header:
        raise UserError(f"{path}:{lineno}: header is {line!r}; it must be exactly {expected}")
    out = []
    for lineno, line in rows:
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(header):
            raise UserError(
                f"{path}:{lineno}: {len(fields)} fields; each row needs {len(header)} ({expected})"
            )
        out.append((lineno, fields))
    return out, len(lines)


def _float(path: object, lineno: int, name: str, text: str, allowed: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{path}:{lineno}: {name} {text!r} is not a number; {allowed}") from None
    if not math.isfinite(value):
        raise UserError(f"{path}:{lineno}: {name} is {text!r}; {allowed}")
    return value


def _int(path: object, lineno: int, name: str, text: str, allowed: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{path}:{lineno}: {name} {text!r} is not an integer; {allowed}") from None


# --------------------------------------------------------------------------- network traces


@dataclass(frozen=True)
class NetworkTrace:
    """A replayable link trace: row i holds from ``time_s[i]`` to ``time_s[i + 1]``.

    ``period_s`` extends the last row by the previous spacing, so the trace loops seamlessly.
    """

    time_s: np.ndarray
    one_way_ms: np.ndarray
    uplink_mbps: np.ndarray
    downlink_mbps: np.ndarray
    period_s: float


@functools.cache
def load_network_trace(path: str | os.PathLike[str]) -> NetworkTrace:
    """Parse a CSV ``time_s,one_way_ms,uplink_mbps,downlink_mbps`` (time from 0, increasing)."""
    rows, n_lines = _csv_rows(path, NETWORK_HEADER)
    columns: list[list[float]] = [[], [], [], []]
    for lineno, fields in rows:
        t = _float(path, lineno, "time_s", fields[0], "time_s must be a finite number")
        if not columns[0] and t != 0.0:
            raise UserError(
                f"{path}:{lineno}: time_s starts at {fields[0]}; the first row must have time_s 0"
            )
        if columns[0] and t <= columns[0][-1]:
            raise UserError(
                f"{path}:{lineno}: time_s {fields[0]} does not increase "
                f"(previous {columns[0][-1]:g}); time_s must strictly increase"
            )
        delay = _float(path, lineno, "one_way_ms", fields[1], "one_way_ms must be a number >= 0")
        if delay < 0:
            raise UserError(f"{path}:{lineno}: one_way_ms is {fields[1]}; one_way_ms must be >= 0")
        up = _float(path, lineno, "uplink_mbps", fields[2], "uplink_mbps must be a number > 0")
        down = _float(path, lineno, "downlink_mbps", fields[3], "downlink_mbps must be a number > 0")
        for name, value, text in (
            ("uplink_mbps", up, fields[2]),
            ("downlink_mbps", down, fields[3]),
        ):
            if value <= 0:
                raise UserError(f"{path}:{lineno}: {name} is {text}; {name} must be > 0")
        for column, value in zip(columns, (t, delay, up, down), strict=True):
            column.append(value)
    if len(rows) < 2:
        raise UserError(f"{path}:{n_lines}: {len(rows)} data rows; a network trace needs at least 2")
    arrays = [np.array(c, dtype=np.float64) for c in columns]
    for a in arrays:
        a.flags.writeable = False  # cached and shared between devices
    t = arrays[0]
    return NetworkTrace(*arrays, period_s=float(t[-1] + (t[-1] - t[-2])))


# --------------------------------------------------------------------------- latency tables


class LatencyTable:
    """Measured forward times on a (batch_size, num_tokens) grid, bilinearly interpolated.

    Outside the grid the nearest two grid lines along each axis extrapolate linearly, clamped
    below at the smallest measured time (an extrapolated forward pass is never cheaper than the
    cheapest one measured). An axis with a single value is constant along that axis.
    """

    __slots__ = ("batch_sizes", "num_tokens", "_b", "_n", "_rows", "_floor")

    def __init__(self, batch_sizes: list[int], num_tokens: list[int], ms: list[list[float]]) -> None:
        self.batch_sizes = tuple(batch_sizes)
        self.num_tokens = tuple(num_tokens)
        # A lone grid value gets a phantom neighbour with the same times, so one code path serves.
        lone_b, lone_n = len(batch_sizes) == 1, len(num_tokens) == 1
        self._b = [float(b) for b in batch_sizes] + ([batch_sizes[0] + 1.0] if lone_b else [])
        self._n = [float(n) for n in num_tokens] + ([num_tokens[0] + 1.0] if lone_n else [])
        rows = [[float(v) for v in r] + ([float(r[0])] if lone_n else []) for r in ms]
        self._rows = rows + ([rows[0]] if lone_b else [])
        self._floor = min(min(r) for r in ms)

    def ms(self, batch_size: float, num_tokens: float) -> float:
        """Interpolated (or extrapolated) forward time in milliseconds."""
        b, n = self._b, self._n
        i = bisect_right(b, batch_size) - 1
        i = 0 if i < 0 else (len(b) - 2 if i > len(b) - 2 else i)
        j = bisect_right(n, num_tokens) - 1
        j = 0 if j < 0 else (len(n) - 2 if j > len(n) - 2 else j)
        x = (batch_size - b[i]) / (b[i + 1] - b[i])
        y = (num_tokens - n[j]) / (n[j + 1] - n[j])
        r0, r1 = self._rows[i], self._rows[i + 1]
        lo = r0[j] + (r0[j + 1] - r0[j]) * y
        hi = r1[j] + (r1[j + 1] - r1[j]) * y
        value = lo + (hi - lo) * x
        return value if value > self._floor else self._floor


@functools.cache
def load_latency_table(path: str | os.PathLike[str]) -> LatencyTable:
    """Parse a CSV ``batch_size,num_tokens,ms`` that covers a full grid."""
    rows, n_lines = _csv_rows(path, LATENCY_HEADER)
    if not rows:
        raise UserError(f"{path}:{n_lines}: no data rows; give at least one row")
    grid: dict[tuple[int, int], float] = {}
    for lineno, fields in rows:
        b = _int(path, lineno, "batch_size", fields[0], "batch_size must be an integer >= 1")
        n = _int(path, lineno, "num_tokens", fields[1], "num_tokens must be an integer >= 1")
        for name, value in (("batch_size", b), ("num_tokens", n)):
            if value < 1:
                raise UserError(f"{path}:{lineno}: {name} is {value}; {name} must be >= 1")
        ms = _float(path, lineno, "ms", fields[2], "ms must be a number > 0")
        if ms <= 0:
            raise UserError(f"{path}:{lineno}: ms is {fields[2]}; ms must be > 0")
        if (b, n) in grid:
            raise UserError(
                f"{path}:{lineno}: batch_size {b}, num_tokens {n} repeated; each grid point appears once"
            )
        grid[b, n] = ms
    batch_sizes = sorted({b for b, _ in grid})
    num_tokens = sorted({n for _, n in grid})
    for b in batch_sizes:
        for n in num_tokens:
            if (b, n) not in grid:
                raise UserError(
                    f"{path}:{n_lines}: no row for batch_size {b}, num_tokens {n}; rows must give "
                    "every batch size with every token count"
                )
    table = [[grid[b, n] for n in num_tokens] for b in batch_sizes]
    return LatencyTable(batch_sizes, num_tokens, table)


# --------------------------------------------------------------------------- request traces


@dataclass(frozen=True)
class TraceRequest:
    """One request of a replayed workload; ``device``/``acceptance`` name a group and a profile."""

    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    device: str | None = None
    acceptance: str | None = None


@functools.cache
def load_workload_trace(path: str | os.PathLike[str]) -> tuple[TraceRequest, ...]:
    """Parse a JSONL request trace (one object per line, arrivals non-decreasing)."""
    lines = _read_lines(path)
    requests: list[TraceRequest] = []
    allowed_keys = f"allowed keys: {', '.join(WORKLOAD_KEYS)}"
    for lineno, line in _content_lines(lines):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(
                f"{path}:{lineno}: invalid JSON ({e.msg}); each line is one JSON object"
            ) from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}:{lineno}: a JSON {type(obj).__name__}; each line is one JSON object")
        unknown = sorted(set(obj) - set(WORKLOAD_KEYS))
        if unknown:
            raise UserError(f"{path}:{lineno}: unknown key {unknown[0]!r}; {allowed_keys}")
        for key in WORKLOAD_KEYS[:3]:
            if key not in obj:
                raise UserError(
                    f"{path}:{lineno}: missing key {key!r}; "
                    "arrival_s, prompt_tokens and output_tokens are required"
                )
        arrival = obj["arrival_s"]
        if (
            isinstance(arrival, bool)
            or not isinstance(arrival, (int, float))
            or not math.isfinite(arrival)
            or arrival < 0
        ):
            raise UserError(f"{path}:{lineno}: arrival_s is {arrival!r}; arrival_s must be a number >= 0")
        if requests and arrival < requests[-1].arrival_s:
            raise UserError(
                f"{path}:{lineno}: arrival_s {arrival!r} is before the previous "
                f"{requests[-1].arrival_s!r}; arrival_s must be non-decreasing"
            )
        for key in ("prompt_tokens", "output_tokens"):
            value = obj[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"{path}:{lineno}: {key} is {value!r}; {key} must be an integer >= 1")
        for key in ("device", "acceptance"):
            if key in obj and not isinstance(obj[key], str):
                raise UserError(f"{path}:{lineno}: {key} is {obj[key]!r}; {key} must be a string")
        requests.append(
            TraceRequest(
                arrival_s=float(arrival),
                prompt_tokens=obj["prompt_tokens"],
                output_tokens=obj["output_tokens"],
                device=obj.get("device"),
                acceptance=obj.get("acceptance"),
            )
        )
    if not requests:
        raise UserError(f"{path}:{len(lines)}: no requests; give at least one JSON object line")
    return tuple(requests)
