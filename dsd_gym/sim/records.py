"""Plain records the simulator emits: one per verification round, one per request."""

from __future__ import annotations

from typing import Any


class RoundRecord:
    """What one decode round did and what it cost, as measured at the edge (seconds).

    ``server_s`` (queue + verify) is what the server reports in its response, so the edge can
    split the round into draft, network and server time; ``queue_depth`` and ``batch_size`` are
    also server-reported. Fused and autoregressive rounds run at the cloud: no draft, no network.
    """

    __slots__ = (
        "session",
        "request",
        "mode",
        "gamma",
        "accepted",
        "committed",
        "position",
        "start_s",
        "end_s",
        "draft_s",
        "uplink_s",
        "queue_s",
        "verify_s",
        "downlink_s",
        "queue_depth",
        "batch_size",
        "context",
    )

    def __init__(
        self,
        session: int,
        request: int,
        mode: int,
        gamma: int,
        accepted: int,
        committed: int,
        position: int,
        start_s: float,
        end_s: float,
        draft_s: float,
        uplink_s: float,
        queue_s: float,
        verify_s: float,
        downlink_s: float,
        queue_depth: int,
        batch_size: int,
        context: int,
    ) -> None:
        self.session = session
        self.request = request
        self.mode = mode
        self.gamma = gamma
        self.accepted = accepted
        self.committed = committed
        self.position = position
        self.start_s = start_s
        self.end_s = end_s
        self.draft_s = draft_s
        self.uplink_s = uplink_s
        self.queue_s = queue_s
        self.verify_s = verify_s
        self.downlink_s = downlink_s
        self.queue_depth = queue_depth
        self.batch_size = batch_size
        self.context = context

    @property
    def round_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def server_s(self) -> float:
        return self.queue_s + self.verify_s

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class Request:
    """One request's life: arrival, first token at the edge, decode until ``output_tokens``."""

    __slots__ = (
        "rid",
        "session",
        "arrival_s",
        "prompt_tokens",
        "output_tokens",
        "path",
        "committed",
        "draft_pos",
        "first_token_s",
        "last_token_s",
        "done_s",
        "rounds",
        "target",
        "kv_epoch",
        "reprefills",
    )

    def __init__(
        self,
        rid: int,
        session: int,
        arrival_s: float,
        prompt_tokens: int,
        output_tokens: int,
        path: Any,
    ) -> None:
        self.rid = rid
        self.session = session
        self.arrival_s = arrival_s
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.path = path
        self.committed = 0
        self.draft_pos = 0
        self.first_token_s = -1.0
        self.last_token_s = -1.0
        self.done_s = -1.0
        self.rounds = 0
        self.target: Any = None
        self.kv_epoch = 0
        self.reprefills = 0

    @property
    def ttft_s(self) -> float:
        return self.first_token_s - self.arrival_s

    @property
    def tpot_s(self) -> float:
        """Time per output token after the first; 0 for a one-token output."""
        if self.output_tokens <= 1:
            return 0.0
        return (self.last_token_s - self.first_token_s) / (self.output_tokens - 1)
