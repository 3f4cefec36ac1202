"""Playout waits and interruptions (livekit/agents#5359).

A function tool awaiting ``RunContext.wait_for_playout()`` used to stay blocked when its speech
was interrupted, until the speech's owner marked the step done (up to ``INTERRUPTION_TIMEOUT``),
and then returned normally and ran on as if its preamble had been heard. It now raises
``SpeechInterruptedError`` (a ``StopResponse``) as soon as the speech is interrupted before the
step's playout finished.

``SpeechHandle.wait_for_playout()`` and ``await handle`` are unchanged: they return only once
the speech is done, i.e. once its audio has actually stopped (avatars and buffer drains rely on
that). ``raise_on_interrupt=True`` opts in to the early raise.

The outcome follows the order of the transitions, not the order in which a waiter wakes up: a
step that finished playing before the interrupt returns, even for a waiter started after both.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import pickle
from collections.abc import AsyncIterator, Coroutine
from typing import Any
from unittest.mock import MagicMock

import pytest

from livekit.agents import llm
from livekit.agents.llm import FunctionCall
from livekit.agents.llm.utils import make_function_call_output
from livekit.agents.voice.events import RunContext
from livekit.agents.voice.speech_handle import (
    INTERRUPTION_TIMEOUT,
    SpeechHandle,
    SpeechInterruptedError,
)

pytestmark = pytest.mark.unit

# a prompt waiter ends within this many loop iterations of the transition, with no time passing
PROMPT_ITERATIONS = 3


async def _settle() -> None:
    for _ in range(PROMPT_ITERATIONS):
        await asyncio.sleep(0)


def _run_context(handle: SpeechHandle) -> RunContext[None]:
    return RunContext(
        session=MagicMock(),
        speech_handle=handle,
        function_call=FunctionCall(call_id="call_1", name="tool", arguments="{}"),
    )


def _start(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    return asyncio.create_task(coro)


@pytest.fixture
async def handle() -> AsyncIterator[SpeechHandle]:
    """A speech whose first step is authorized, as when its tool calls start running."""
    handle = SpeechHandle.create()
    handle._authorize_generation()
    yield handle
    # end the speech (and its interruption timer) so that no waiter outlives the test
    handle._mark_done()
    await _settle()


class TestRunContextWaitForPlayout:
    async def test_raises_promptly_on_interrupt(self, handle: SpeechHandle) -> None:
        waiter = _start(_run_context(handle).wait_for_playout())
        await _settle()
        assert not waiter.done()

        handle.interrupt()
        await _settle()

        assert waiter.done(), "still blocked after the interrupt"
        with pytest.raises(SpeechInterruptedError) as raised:
            await waiter
        assert raised.value.speech_id == handle.id
        # ends the tool quietly, like a tool raising StopResponse itself
        assert isinstance(raised.value, llm.StopResponse)
        # the wait does not complete anything on the handle: its owner still does
        assert not handle.done()
        assert not handle._generations[0].done()

    async def test_raises_at_once_when_already_interrupted(self, handle: SpeechHandle) -> None:
        handle.interrupt()

        waiter = _start(_run_context(handle).wait_for_playout())
        await _settle()

        assert waiter.done(), "blocked although the speech was already interrupted"
        with pytest.raises(SpeechInterruptedError):
            await waiter

    async def test_returns_when_the_step_played_out(self, handle: SpeechHandle) -> None:
        waiter = _start(_run_context(handle).wait_for_playout())
        await _settle()
        assert not waiter.done()

        handle._mark_generation_done()
        await _settle()

        assert waiter.done()
        assert await waiter is None

    async def test_step_done_then_interrupt_returns(self, handle: SpeechHandle) -> None:
        ctx = _run_context(handle)
        before = _start(ctx.wait_for_playout())
        await _settle()

        # both transitions land before the waiter wakes up: the step played out first
        handle._mark_generation_done()
        handle.interrupt()
        after = _start(ctx.wait_for_playout())
        await _settle()

        assert before.done() and after.done()
        assert await before is None
        assert await after is None

    async def test_interrupt_then_step_done_raises(self, handle: SpeechHandle) -> None:
        ctx = _run_context(handle)
        before = _start(ctx.wait_for_playout())
        await _settle()

        # both transitions land before the waiter wakes up: the interrupt came first
        handle.interrupt()
        handle._mark_generation_done()
        after = _start(ctx.wait_for_playout())
        await _settle()

        assert before.done() and after.done()
        with pytest.raises(SpeechInterruptedError):
            await before
        with pytest.raises(SpeechInterruptedError):
            await after

    async def test_interrupting_a_later_step_keeps_a_played_out_step(
        self, handle: SpeechHandle
    ) -> None:
        ctx = _run_context(handle)  # a tool of the first step
        handle._mark_generation_done()
        handle._authorize_generation()  # the tool reply plays next, and is interrupted
        handle.interrupt()
        handle._mark_generation_done()

        waiter = _start(ctx.wait_for_playout())
        await _settle()

        assert waiter.done()
        assert await waiter is None

    async def test_raise_on_interrupt_false_waits_for_the_step(self, handle: SpeechHandle) -> None:
        waiter = _start(_run_context(handle).wait_for_playout(raise_on_interrupt=False))
        handle.interrupt()
        await _settle()
        assert not waiter.done(), "returned before the step was marked done"

        handle._mark_generation_done()
        await _settle()

        assert waiter.done()
        assert await waiter is None

    async def test_interrupted_tool_gets_exactly_one_quiet_output(self) -> None:
        call = FunctionCall(call_id="call_1", name="tool", arguments="{}")

        result = make_function_call_output(
            fnc_call=call, output=None, exception=SpeechInterruptedError("speech_1")
        )

        assert result.fnc_call_out is not None
        assert result.fnc_call_out.call_id == call.call_id
        assert result.fnc_call_out.output == ""
        assert not result.fnc_call_out.is_error
        assert not result.fnc_call_out.reply_required

    async def test_no_generation_raises_runtime_error(self) -> None:
        handle = SpeechHandle.create()  # no step authorized
        with pytest.raises(RuntimeError, match="no active generation is running"):
            await _run_context(handle).wait_for_playout()

    async def test_waiters_wake_in_the_order_they_started(self, handle: SpeechHandle) -> None:
        ctx = _run_context(handle)
        ended: list[int] = []

        async def wait(n: int) -> None:
            try:
                await ctx.wait_for_playout()
            finally:
                ended.append(n)

        waiters = [_start(wait(n)) for n in range(16)]
        await _settle()
        handle.interrupt()
        await _settle()

        assert all(waiter.done() for waiter in waiters)
        await asyncio.gather(*waiters, return_exceptions=True)

        assert ended == list(range(16))

    async def test_raising_wait_logs_one_debug_record(
        self, handle: SpeechHandle, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="livekit.agents")
        waiter = _start(_run_context(handle).wait_for_playout())
        await _settle()
        handle.interrupt()
        await _settle()

        with pytest.raises(SpeechInterruptedError):
            await waiter
        records = [r for r in caplog.records if r.levelno == logging.DEBUG]
        assert [r.getMessage() for r in records] == [
            "playout wait interrupted, raising SpeechInterruptedError"
        ]
        assert records[0].name == "livekit.agents"
        assert getattr(records[0], "speech_id", None) == handle.id


class TestSpeechInterruptedError:
    async def test_keeps_its_speech_id_when_copied(self) -> None:
        again = copy.copy(SpeechInterruptedError("speech_1"))

        assert type(again) is SpeechInterruptedError
        assert again.speech_id == "speech_1"
        assert repr(again) == "SpeechInterruptedError('speech_1')"

    async def test_keeps_its_speech_id_when_pickled(self) -> None:
        again = pickle.loads(pickle.dumps(SpeechInterruptedError("speech_1")))

        assert type(again) is SpeechInterruptedError
        assert again.speech_id == "speech_1"


class TestSpeechHandleWaitForPlayout:
    async def test_waits_for_done_after_interrupt(self, handle: SpeechHandle) -> None:
        waiter = _start(handle.wait_for_playout())
        awaited = _start(_await(handle))
        handle.interrupt()
        handle._mark_generation_done()
        await _settle()

        # the audio may still be playing (e.g. an avatar): only done means it stopped
        assert not waiter.done(), "returned before the speech was done"
        assert not awaited.done(), "`await handle` returned before the speech was done"

        handle._mark_done()
        await _settle()

        assert waiter.done() and awaited.done()
        assert await waiter is None
        assert await awaited is handle

    async def test_opt_in_raises_promptly_on_interrupt(self, handle: SpeechHandle) -> None:
        waiter = _start(handle.wait_for_playout(raise_on_interrupt=True))
        await _settle()
        assert not waiter.done()

        handle.interrupt()
        await _settle()

        assert waiter.done(), "still blocked after the interrupt"
        with pytest.raises(SpeechInterruptedError) as raised:
            await waiter
        assert raised.value.speech_id == handle.id
        assert not handle.done()

    async def test_opt_in_returns_when_done_without_interrupt(self, handle: SpeechHandle) -> None:
        waiter = _start(handle.wait_for_playout(raise_on_interrupt=True))
        handle._mark_done()
        await _settle()

        assert waiter.done()
        assert await waiter is None
        # interrupting a finished speech changes nothing, for a later waiter either
        handle.interrupt()
        await handle.wait_for_playout(raise_on_interrupt=True)  # does not raise

    async def test_interrupt_still_arms_the_timeout(self, handle: SpeechHandle) -> None:
        handle.interrupt()

        timer = handle._interrupt_timeout_handle
        assert timer is not None
        delay = timer.when() - asyncio.get_running_loop().time()
        assert INTERRUPTION_TIMEOUT - 0.5 < delay <= INTERRUPTION_TIMEOUT


class TestCancellation:
    async def test_cancelled_waiters_leave_the_handle_alone(self, handle: SpeechHandle) -> None:
        waiters = [
            _start(_run_context(handle).wait_for_playout()),
            _start(handle.wait_for_playout(raise_on_interrupt=True)),
            _start(handle.wait_for_playout()),
        ]
        await _settle()
        for waiter in waiters:
            waiter.cancel()
        await _settle()

        assert all(waiter.cancelled() for waiter in waiters)
        # nothing was cancelled or completed on the handle
        for fut in (handle._interrupt_fut, handle._done_fut, handle._generations[0]):
            assert not fut.done()

        # and it still behaves: a new waiter sees the interrupt
        handle.interrupt()
        waiter = _start(_run_context(handle).wait_for_playout())
        await _settle()
        with pytest.raises(SpeechInterruptedError):
            await waiter

    async def test_every_waiter_ends_once_the_speech_is_done(self, handle: SpeechHandle) -> None:
        ctx = _run_context(handle)
        waiters = [
            _start(ctx.wait_for_playout()),
            _start(ctx.wait_for_playout(raise_on_interrupt=False)),
            _start(handle.wait_for_playout()),
            _start(handle.wait_for_playout(raise_on_interrupt=True)),
            _start(_await(handle)),
        ]
        handle.interrupt()
        handle._mark_done()
        await _settle()

        assert all(waiter.done() for waiter in waiters)
        outcomes = await asyncio.gather(*waiters, return_exceptions=True)
        assert isinstance(outcomes[0], SpeechInterruptedError)
        assert outcomes[1] is None
        assert outcomes[2] is None
        assert isinstance(outcomes[3], SpeechInterruptedError)
        assert outcomes[4] is handle
        assert handle._interrupt_timeout_handle is None


async def _await(handle: SpeechHandle) -> SpeechHandle:
    return await handle
