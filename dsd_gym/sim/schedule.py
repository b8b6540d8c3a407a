"""Delayed actions on the SimPy event queue, cheaper than a ``Timeout`` per action.

The decode rounds are a chain of callbacks (DESIGN §3: draft, uplink, verify, downlink), two or three
scheduled actions per round. ``env.timeout(delay).callbacks.append(fn)`` builds a full ``Timeout`` (an
object with a ``__dict__``, a Python ``__init__``, a callbacks list appended to afterwards) just to
run ``fn`` later. ``Environment.step`` only pops the queue entry, swaps out ``event.callbacks``, calls
each callback with the event and reads ``event._ok``; :func:`call_later` schedules an object with
just those attributes (and the value the callback reads), and :func:`deliver_later` schedules an
object that already has them (a job on its way). Both push the entry ``Environment.schedule`` would
push at ``NORMAL`` priority — what ``Timeout`` does — themselves: the same ``(now + delay, priority,
next id, event)``, on the same queue, from the same counter, a Python call less per action. Time and
order are therefore exactly those of a ``Timeout`` created at the same moment, including first-in
first-out order among actions due at the same time (the environment's event counter breaks ties).

:func:`step_until` is ``Environment.step`` in a loop that stops on a flag, for the env's run to the
next decision point.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.core import NORMAL, EmptySchedule


class Call:
    """A scheduled callback: what ``Environment.step`` reads of a successful event, and its value.

    Not a ``simpy.Event``: nothing may ``yield`` it or add callbacks to it; only its own
    ``callback(call)`` runs, once, when it is due.
    """

    __slots__ = ("callbacks", "_ok", "value")

    callbacks: list[Callable[[Call], None]] | None
    _ok: bool
    value: Any


def call_later(
    env: simpy.Environment, delay: float, callback: Callable[[Call], None], value: Any = None
) -> None:
    """Run ``callback(call)`` ``delay`` seconds from now; ``call.value`` is ``value``."""
    if delay < 0.0:  # a float literal: float < int is a generic comparison
        raise ValueError(f"negative delay {delay}")
    call = Call()
    call.callbacks = [callback]
    call._ok = True  # a slot: Python 3.11 caches reads of slots, not of class attributes
    call.value = value
    # env.schedule(call, NORMAL, delay), inline; step needs only the attributes above.
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), call))  # type: ignore[arg-type]


def deliver_later(
    env: simpy.Environment, delay: float, item: Any, callbacks: list[Callable[[Any], None]]
) -> None:
    """Run each of ``callbacks`` on ``item`` ``delay`` seconds from now, scheduling ``item`` itself as
    the action.

    ``item`` needs the attributes of a :class:`Call` that ``Environment.step`` reads (``callbacks``,
    ``_ok``). A job travelling to its target is one (``cloud.Job``): that saves a :class:`Call` per round.
    ``callbacks`` may be one list shared by every delivery to the same receiver (built once, not per
    delivery): ``Environment.step`` only iterates it, and nothing may add callbacks to ``item``.
    """
    if delay < 0.0:  # a float literal: float < int is a generic comparison
        raise ValueError(f"negative delay {delay}")
    item.callbacks = callbacks
    item._ok = True
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), item))  # env.schedule, inline


def succeed_later(env: simpy.Environment, event: simpy.Event, delay: float, value: Any) -> None:
    """Succeed an existing ``event`` ``delay`` seconds from now: what ``Timeout`` does for a new one."""
    event._ok = True
    event._value = value
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), event))  # env.schedule, inline


def call_now(env: simpy.Environment, call: Call, value: Any, wait: bool = False) -> None:
    """Run ``call``'s callbacks on it, with ``call.value = value``, now: at once when nothing else is due
    now and not ``wait``, else after what is due now (in the queue, where a succeeded event would go).

    Running it at once is exactly what the next ``env.step()`` would do, without the trip through the
    queue. Call it outside the run loop (between ``env.step()`` calls), as the Gymnasium env does with
    its answers to decision points.
    """
    call.value = value
    queue = env._queue
    if wait or (queue and queue[0][0] <= env._now):
        call._ok = True
        heappush(queue, (env._now, NORMAL, next(env._eid), call))  # event.succeed(value), inline
    else:
        callbacks, call.callbacks = call.callbacks, None
        for callback in callbacks:
            callback(call)


class Halt:
    """The flag :func:`step_until` watches: ``request`` it (from a callback), and the run stops."""

    __slots__ = ("halted", "requested")

    def __init__(self) -> None:
        self.halted = False
        self.requested = False

    def request(self, env: simpy.Environment) -> None:
        """Stop the run where ``env.run(until=stop)`` with ``stop`` succeeded now would: after the events
        already due now. Usually none is, and the run stops at once, without scheduling ``stop``."""
        if self.requested:
            return
        self.requested = True
        queue = env._queue
        if queue and queue[0][0] <= env._now:
            call_later(env, 0.0, self._stop)
        else:
            self.halted = True

    def _stop(self, _call: Call) -> None:
        self.halted = True

    def clear(self) -> None:
        """Ready for the next run."""
        self.halted = self.requested = False


def step_until(env: simpy.Environment, halt: Halt) -> None:
    """Process events as ``env.step()`` does until ``halt.halted``.

    ``Environment.step`` inline in one loop: a Python call less per event, of which a simulation
    processes about two per round. Only for loops that stop on a flag, not on an ``until`` event
    (``env.run``'s ``StopSimulation`` is not handled).
    """
    queue = env._queue
    while not halt.halted:
        try:
            env._now, _, _, event = heappop(queue)
        except IndexError:
            raise EmptySchedule from None
        callbacks, event.callbacks = event.callbacks, None
        for callback in callbacks:
            callback(event)
        if not event._ok and not hasattr(event, "_defused"):  # a failed event nobody defused: crash
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc
