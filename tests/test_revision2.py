"""What revision 2 of the patch changes, against the vendored reference or the installed release.

Run against revision 1's reference (``git show f14cdf5``), 9 of these 12 fail: its
``SpeechInterruptedError`` had ``args == ()`` and could not be unpickled or copied (``TypeError:
missing ... 'speech_id'``); a tool's wait on a handle with no generation raised ``IndexError``
where stock raised upstream's ``RuntimeError``; the waiters of a playout sat in a ``set``, woken
in hash order; and nothing was logged when a wait raised. The other three pin what must not
change: ``raise_on_interrupt=False``'s RuntimeError (stock's own path), the wake-up's guard for
a waiter cancelled in the same turn (it kills the guard mutant of ``tests/variants.py`` every
time), and no record for a wait that returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import pickle
from typing import Any

import pytest

from livekit_agents_patch.contract import subjects

NO_GENERATION = "cannot use wait_for_generation: no active generation is running."
"""Upstream's message (``SpeechHandle._wait_for_generation``), the same on every release."""


@pytest.fixture
def patched(subject: subjects.Classes) -> subjects.Classes:
    if subject.interrupted_error is subjects.NeverRaised:
        pytest.skip("stock livekit-agents has no SpeechInterruptedError")
    return subject


def _interrupted_handle(subject: subjects.Classes) -> Any:
    handle = subject.new_handle(allow_interruptions=True)
    handle._authorize_generation()
    return handle


def _finish(handle: Any) -> None:
    """Let the handle end, so no interruption timer outlives the test."""
    handle._mark_done()


@pytest.mark.parametrize(
    "clone", [copy.copy, copy.deepcopy, lambda e: pickle.loads(pickle.dumps(e))]
)
def test_error_round_trips_with_its_speech_id(patched: subjects.Classes, clone: Any) -> None:
    error = patched.interrupted_error("speech_abc")
    again = clone(error)
    assert type(again) is type(error)
    assert again.speech_id == "speech_abc"  # type: ignore[attr-defined]
    assert again.args == ("speech_abc",)
    assert str(again) == str(error) == "the speech was interrupted before its playout finished"
    assert repr(again) == "SpeechInterruptedError('speech_abc')"


def test_a_log_record_carrying_the_error_pickles(patched: subjects.Classes) -> None:
    """livekit's IPC log queue pickles records; ``exc_info``'s error must survive it."""
    error = patched.interrupted_error("speech_abc")
    record = logging.LogRecord("livekit.agents", logging.DEBUG, __file__, 1, "x", None, None)
    record.error = error
    assert pickle.loads(pickle.dumps(record)).error.speech_id == "speech_abc"


@pytest.mark.parametrize("raise_on_interrupt", [True, False])
async def test_no_generation_raises_upstreams_runtime_error(
    subject: subjects.Classes, raise_on_interrupt: bool
) -> None:
    """As stock: a tool's wait on a handle with no generation is a RuntimeError, not IndexError."""
    handle = subject.new_handle(allow_interruptions=True)
    ctx = subject.new_run_context(handle, 0)
    stock = subject.interrupted_error is subjects.NeverRaised  # no keyword: stock's one wait
    with pytest.raises(RuntimeError) as caught:
        if stock:
            await ctx.wait_for_playout()
        else:
            await ctx.wait_for_playout(raise_on_interrupt=raise_on_interrupt)
    assert str(caught.value) == NO_GENERATION


@pytest.mark.parametrize("wake", ["interrupt", "step done"])
async def test_waiters_wake_in_the_order_they_started(patched: subjects.Classes, wake: str) -> None:
    handle = _interrupted_handle(patched)
    ended: list[int] = []

    async def waiter(n: int) -> None:
        with contextlib.suppress(patched.interrupted_error):
            await patched.new_run_context(handle, 0).wait_for_playout()
        ended.append(n)

    tasks = [asyncio.create_task(waiter(n)) for n in range(32)]
    await asyncio.sleep(0)  # each waits now, in the order started
    if wake == "interrupt":
        handle.interrupt(force=True)
    else:
        handle._mark_generation_done()
    await asyncio.gather(*tasks)
    assert ended == list(range(32))
    _finish(handle)


async def test_a_cancelled_first_waiter_does_not_stop_the_wake_up(
    patched: subjects.Classes,
) -> None:
    """The first waiter is cancelled in the very turn of the interrupt: the others still wake."""
    handle = _interrupted_handle(patched)
    tasks = [
        asyncio.create_task(patched.new_run_context(handle, 0).wait_for_playout()) for _ in range(3)
    ]
    await asyncio.sleep(0)
    handle.interrupt(force=True)
    tasks[0].cancel()
    for _ in range(3):  # prompt: within 3 loop iterations (a hang would fail, not block)
        await asyncio.sleep(0)
    assert all(task.done() for task in tasks)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(r, patched.interrupted_error) for r in results[1:])
    _finish(handle)


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "livekit.agents" and r.levelno < logging.INFO]


async def test_a_raising_tool_wait_logs_one_debug_record(
    patched: subjects.Classes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="livekit.agents")
    handle = _interrupted_handle(patched)
    wait = asyncio.create_task(patched.new_run_context(handle, 0).wait_for_playout())
    await asyncio.sleep(0)
    handle.interrupt(force=True)
    with pytest.raises(patched.interrupted_error):
        await wait
    [record] = _records(caplog)
    assert record.levelno == logging.DEBUG
    assert record.getMessage() == "playout wait interrupted, raising SpeechInterruptedError"
    assert record.speech_id == handle.id  # type: ignore[attr-defined]
    assert record.args in ((), None)  # a static message: nothing interpolated
    _finish(handle)


async def test_a_raising_handle_wait_logs_one_debug_record(
    patched: subjects.Classes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="livekit.agents")
    handle = _interrupted_handle(patched)
    handle.interrupt(force=True)
    with pytest.raises(patched.interrupted_error):
        await handle.wait_for_playout(raise_on_interrupt=True)
    [record] = _records(caplog)
    assert record.speech_id == handle.id  # type: ignore[attr-defined]
    _finish(handle)


async def test_a_wait_that_returns_logs_nothing(
    patched: subjects.Classes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="livekit.agents")
    handle = _interrupted_handle(patched)
    wait = asyncio.create_task(patched.new_run_context(handle, 0).wait_for_playout())
    await asyncio.sleep(0)
    handle._mark_generation_done()
    await wait
    assert _records(caplog) == []
    _finish(handle)
