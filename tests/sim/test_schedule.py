"""call_later and succeed_later run when, and in the order, a Timeout would."""

from __future__ import annotations

import pytest
import simpy

from dsd_gym.sim.schedule import (
    Call,
    Halt,
    call_later,
    call_now,
    deliver_later,
    step_until,
    succeed_later,
)


def _mixed_run(use_call_later: bool) -> list[tuple[str, float, object]]:
    """Timeouts and delayed actions interleaved, many due at the same time; the log of what ran."""
    env = simpy.Environment()
    log: list[tuple[str, float, object]] = []

    def note(name: str):
        return lambda event: log.append((name, env.now, event.value))

    def schedule(delay: float, value: object, callback) -> None:
        if use_call_later:
            call_later(env, delay, callback, value)
        else:
            env.timeout(delay, value).callbacks.append(callback)

    def chain(event: object) -> None:  # more actions from inside a callback, some at zero delay
        note("chain")(event)
        schedule(0.0, "c0", note("chained-0"))
        env.timeout(0.0, "t").callbacks.append(note("timeout-in-chain"))
        schedule(1.0, "c1", note("chained-1"))

    for i, delay in enumerate((2.0, 1.0, 1.0, 0.0, 2.0, 1.0)):
        env.timeout(delay, f"t{i}").callbacks.append(note(f"timeout-{i}"))
        schedule(delay, i, note(f"action-{i}"))
    schedule(1.0, None, chain)
    env.timeout(1.0, "after").callbacks.append(note("timeout-after-chain"))
    env.run()
    return log


def test_call_later_runs_at_timeout_time_and_order() -> None:
    log = _mixed_run(True)
    assert log == _mixed_run(False)
    assert [name for name, t, _ in log if t == 1.0][:3] == ["timeout-1", "action-1", "timeout-2"]


def test_call_later_from_callbacks_keeps_fifo_order_at_equal_times() -> None:
    def run(use_call_later: bool) -> list[str]:
        env = simpy.Environment()
        log: list[str] = []

        def later(name: str, delay: float) -> None:
            if use_call_later:
                call_later(env, delay, lambda _c: log.append(f"{name}@{env.now}"))
            else:
                env.timeout(delay).callbacks.append(lambda _e: log.append(f"{name}@{env.now}"))

        def spawn(_event: object) -> None:
            for k in range(3):
                later(f"inner-{k}", 0.0)
                env.timeout(0.0).callbacks.append(lambda _e, k=k: log.append(f"timeout-{k}@{env.now}"))
            later("next", 0.5)

        env.timeout(0.25).callbacks.append(spawn)
        later("first", 0.25)
        env.timeout(0.75).callbacks.append(spawn)
        env.run()
        return log

    assert run(True) == run(False)
    assert run(True)[:3] == ["first@0.25", "inner-0@0.25", "timeout-0@0.25"]


def test_call_later_passes_its_value_and_refuses_negative_delays() -> None:
    env = simpy.Environment()
    seen = []
    call_later(env, 3.0, lambda call: seen.append((env.now, call.value)), value="job")
    env.run()
    assert seen == [(3.0, "job")]
    with pytest.raises(ValueError, match="negative delay"):
        call_later(env, -1e-9, lambda call: None)


def test_succeed_later_wakes_a_waiting_process_like_a_timeout() -> None:
    def run(use_succeed_later: bool) -> list[tuple[str, float, object]]:
        env = simpy.Environment()
        log: list[tuple[str, float, object]] = []

        def waiter(name: str, event: simpy.Event):
            value = yield event
            log.append((name, env.now, value))

        env.process(waiter("before", env.timeout(2.0, "early")))
        env.run(until=0.5)
        if use_succeed_later:
            reply = env.event()
            env.process(waiter("woke", reply))
            succeed_later(env, reply, 1.5, "answer")
        else:
            env.process(waiter("woke", env.timeout(1.5, "answer")))
        env.process(waiter("after", env.timeout(1.5, "late")))
        env.run()
        return log

    log = run(True)
    assert log == run(False)
    assert log == [("before", 2.0, "early"), ("woke", 2.0, "answer"), ("after", 2.0, "late")]


def test_step_until_processes_what_env_step_would_and_stops_after_the_halting_event() -> None:
    def run(inline: bool) -> list[tuple[str, float]]:
        env = simpy.Environment()
        log: list[tuple[str, float]] = []
        halt = Halt()

        def stop(event: object) -> None:
            log.append(("stop", env.now))
            halt.halted = True

        def worker():
            for k in range(4):
                yield env.timeout(0.5)
                log.append((f"tick-{k}", env.now))

        env.process(worker())
        deliver_later(env, 1.0, Call(), [stop])
        call_later(env, 1.0, lambda call: log.append(("same-time", env.now)))
        if inline:
            step_until(env, halt)
        else:
            while not halt.halted:
                env.step()
        log.append(("left", env.peek()))
        return log

    log = run(True)
    assert log == run(False)
    assert log[-2:] == [("stop", 1.0), ("left", 1.0)]  # the action due at the same time is still queued


def test_step_until_raises_what_a_failed_event_raises() -> None:
    env = simpy.Environment()

    def crash():
        yield env.timeout(1.0)
        raise RuntimeError("boom")

    env.process(crash())
    with pytest.raises(RuntimeError, match="boom"):
        step_until(env, Halt())


def test_call_now_runs_where_a_succeeded_event_would() -> None:
    """At once when nothing else is due now, else (or when told to wait) after what is due now."""

    def run(use_call_now: bool, due_now: bool, wait: bool) -> list[tuple[str, float, object]]:
        env = simpy.Environment()
        log: list[tuple[str, float, object]] = []
        env.run(until=1.0)
        if due_now:
            call_later(env, 0.0, lambda call: log.append(("due", env.now, None)))
        call_later(env, 0.5, lambda call: log.append(("later", env.now, None)))
        if use_call_now:
            call = Call()
            call.callbacks = [lambda call: log.append(("answer", env.now, call.value))]
            call_now(env, call, "x", wait=wait)
        else:
            event = env.event()
            event.callbacks.append(lambda event: log.append(("answer", env.now, event.value)))
            event.succeed("x")
        log.append(("returned", env.now, None))
        env.run()
        return [entry for entry in log if entry[0] != "returned"]

    for due_now in (False, True):
        for wait in (False, True):
            assert run(True, due_now, wait) == run(False, due_now, wait)


def test_halt_request_stops_after_the_events_due_now() -> None:
    env = simpy.Environment()
    log: list[tuple[str, float]] = []
    halt = Halt()
    call_later(env, 1.0, lambda call: (log.append(("first", env.now)), halt.request(env)))
    call_later(env, 1.0, lambda call: log.append(("same-time", env.now)))
    call_later(env, 2.0, lambda call: log.append(("later", env.now)))
    step_until(env, halt)
    assert log == [("first", 1.0), ("same-time", 1.0)]
    halt.clear()
    halt.request(env)  # nothing is due now: halted at once
    assert halt.halted
