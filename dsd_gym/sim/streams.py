"""Random streams addressed by what they drive, not by the order they are asked for.

Every stream is ``SeedSequence(seed, spawn_key=key)``: the stream of session 3's acceptance path is
the same whatever else the simulation does, which is what makes controllers comparable on common
random numbers.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    ACCEPTANCE = 1
    LENGTHS = 2
    THINK = 3
    NETWORK = 4
    LOSS_UP = 5
    LOSS_DOWN = 6
    ARRIVALS = 7
    BACKGROUND = 8
    FAILURES = 9
    ROUTER = 10


class Streams:
    """A factory of independent generators keyed by (stream, index, ...)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def rng(self, stream: Stream, *index: int) -> np.random.Generator:
        key = (int(stream), *(int(i) for i in index))
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=key)))
