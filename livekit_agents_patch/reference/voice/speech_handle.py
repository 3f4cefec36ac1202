"""The part of upstream's ``SpeechHandle`` that playout waits depend on, with the fix.

Methods marked "as upstream" model upstream's behaviour (written fresh, trimmed of telemetry and
bookkeeping the waits do not use). The other methods, and the new statements in ``__init__``
and ``wait_for_playout``, are the fix itself: the patch puts these very statements upstream,
which ``tests/test_equality_guard.py`` checks statement by statement.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator

from .. import llm
from ..log import logger

INTERRUPTION_TIMEOUT = 5.0  # seconds


class SpeechInterruptedError(llm.StopResponse):
    """Raised by a playout wait when the speech is interrupted before that playout finished.

    It derives from ``StopResponse`` so that a function tool it escapes from ends quietly on
    every supported release, exactly as when a tool raises ``StopResponse`` itself: the tool
    runner logs nothing and asks the LLM for no reply (before 1.7.0 no output is recorded for
    the call; from 1.7.0 on it gets one empty output that asks for no reply). Any other base
    would be noisy somewhere: a plain exception is logged at ERROR with a traceback by every
    release, and ``ToolError`` is logged at ERROR by 1.3.x and shown to the model as a failed
    call by newer releases. ``StopResponse.__init__`` takes no message, so the static message
    comes from ``__str__``; ``args`` holds the speech id, so the error pickles (livekit's IPC
    log queue pickles log records) and copies with it, and its repr names it.

    Attributes:
        speech_id: The id of the interrupted speech.
    """

    def __init__(self, speech_id: str) -> None:
        super().__init__()
        self.args = (speech_id,)
        self.speech_id = speech_id

    def __str__(self) -> str:
        return "the speech was interrupted before its playout finished"


class SpeechHandle:
    def __init__(self, *, speech_id: str, allow_interruptions: bool) -> None:
        self._id = speech_id
        self._allow_interruptions = allow_interruptions

        self._interrupt_fut = asyncio.Future[None]()
        self._done_fut = asyncio.Future[None]()

        self._generations: list[asyncio.Future[None]] = []
        # generations marked done after the speech was interrupted: their playout was cut short
        self._interrupted_generations: set[asyncio.Future[None]] = set()
        # the waiters of each pending playout, in the order they started, woken together by
        # one callback per future
        self._playout_waiters: dict[asyncio.Future[None], dict[asyncio.Future[None], None]] = {}

        self._tasks: list[asyncio.Task] = []  # type: ignore[type-arg]  # as upstream
        self._num_steps = 1
        self._interrupt_timeout_handle: asyncio.TimerHandle | None = None

    @property
    def id(self) -> str:
        return self._id

    @property
    def num_steps(self) -> int:
        return self._num_steps

    @property
    def interrupted(self) -> bool:
        return self._interrupt_fut.done()

    @property
    def allow_interruptions(self) -> bool:
        return self._allow_interruptions

    def done(self) -> bool:
        return self._done_fut.done()

    def interrupt(self, *, force: bool = False) -> SpeechHandle:
        """As upstream: refuse unless allowed or forced, then cancel."""
        if not force and not self._allow_interruptions:
            raise RuntimeError("This generation handle does not allow interruptions")

        self._cancel()
        return self

    async def wait_for_playout(self, *, raise_on_interrupt: bool = False) -> None:
        """Wait until the whole assistant turn has finished playing out.

        Upstream's circular-wait guard stands first in the real method; the patch keeps it.

        Args:
            raise_on_interrupt: Raise as soon as the speech is interrupted instead of waiting
                until its audio has actually stopped. Off by default: by default this returns
                only once the speech is done, which is what avatars and buffer drains rely on.

        Raises:
            SpeechInterruptedError: If ``raise_on_interrupt`` is set and the speech was
                interrupted before it was done.
        """
        if raise_on_interrupt:
            await self._wait_for_playout_or_interrupt(self._done_fut)
            if self._interrupt_fut.done():
                raise self._interrupted_error()
        else:
            await asyncio.shield(self._done_fut)

    def __await__(self) -> Generator[None, None, SpeechHandle]:
        """As upstream: awaiting the handle waits for the default playout."""

        async def _await_impl() -> SpeechHandle:
            await self.wait_for_playout()
            return self

        return _await_impl().__await__()

    def _cancel(self) -> SpeechHandle:
        """As upstream (1.3.7 on): interrupt, and force the speech done after a timeout."""
        if self.done():
            return self

        if not self._interrupt_fut.done():
            self._interrupt_fut.set_result(None)

            def _on_timeout() -> None:
                logger.error(
                    "speech not done in time after interruption, cancelling the speech",
                    extra={"speech_id": self._id, "timeout": INTERRUPTION_TIMEOUT},
                )
                for task in self._tasks:
                    task.cancel()
                self._mark_done()

            self._interrupt_timeout_handle = asyncio.get_running_loop().call_later(
                INTERRUPTION_TIMEOUT, _on_timeout
            )

        return self

    def _authorize_generation(self) -> None:
        """As upstream: a new step of the speech may generate and play."""
        self._generations.append(asyncio.Future[None]())

    async def _wait_for_generation(self, step_idx: int = -1) -> None:
        """As upstream: what the scheduler waits on before the next speech may play."""
        if not self._generations:
            raise RuntimeError("cannot use wait_for_generation: no active generation is running.")

        await asyncio.shield(self._generations[step_idx])

    async def _wait_for_playout_or_interrupt(self, playout: asyncio.Future[None]) -> None:
        """Wait until ``playout`` is done or the speech is interrupted, whichever is first.

        The waiters of one playout share one callback on each future, so the cost per waiter
        does not grow with their number. Neither future is cancelled, no callback is left once
        the last waiter has returned or been cancelled, and nothing is allocated when
        ``playout`` is already done.
        """
        if playout.done() or self._interrupt_fut.done():
            return
        if not self._playout_waiters:
            self._interrupt_fut.add_done_callback(self._wake_playout_waiters)
        waiters = self._playout_waiters.get(playout)
        if waiters is None:
            waiters = self._playout_waiters[playout] = {}
            playout.add_done_callback(self._wake_playout_waiters)
        waiter = asyncio.get_running_loop().create_future()
        waiters[waiter] = None
        try:
            await waiter
        finally:
            del waiters[waiter]
            if not waiters:
                del self._playout_waiters[playout]
                playout.remove_done_callback(self._wake_playout_waiters)
                if not self._playout_waiters:
                    self._interrupt_fut.remove_done_callback(self._wake_playout_waiters)

    def _wake_playout_waiters(self, fut: asyncio.Future[None]) -> None:
        if fut is self._interrupt_fut:
            woken = [w for waiters in self._playout_waiters.values() for w in waiters]
        else:
            woken = list(self._playout_waiters.get(fut, ()))
        for waiter in woken:
            if not waiter.done():
                waiter.set_result(None)

    async def _wait_for_step_playout(self, step_idx: int) -> None:
        """Wait for the playout of one step; raise if the speech was interrupted before it ended.

        The outcome follows the order of the transitions, which the handle remembers, not the
        order in which the waiter wakes up: a step that finished before the interrupt returns,
        even for a waiter that starts after both.

        Raises:
            SpeechInterruptedError: If the speech was interrupted before the step's playout
                finished.
        """
        if not self._generations:
            raise RuntimeError("cannot use wait_for_generation: no active generation is running.")

        generation = self._generations[step_idx]
        await self._wait_for_playout_or_interrupt(generation)
        if not generation.done() or generation in self._interrupted_generations:
            raise self._interrupted_error()

    def _interrupted_error(self) -> SpeechInterruptedError:
        """The error a playout wait raises on interruption, after one DEBUG record saying so.

        The record answers "why did my tool stop?" in the logs: a static message, the speech id
        in ``extra``. The logger is imported here because releases before 1.3.7 do not import
        it in this module.
        """
        from ..log import logger

        logger.debug(
            "playout wait interrupted, raising SpeechInterruptedError",
            extra={"speech_id": self._id},
        )
        return SpeechInterruptedError(self._id)

    def _mark_generation_done(self) -> None:
        if not self._generations:
            raise RuntimeError("cannot use mark_generation_done: no active generation is running.")

        generation = self._generations[-1]
        if self._interrupt_fut.done() and not generation.done():
            self._interrupted_generations.add(generation)
        with contextlib.suppress(asyncio.InvalidStateError):
            generation.set_result(None)

    def _mark_done(self) -> None:
        """As upstream: the speech is torn down; its last step ends with it."""
        with contextlib.suppress(asyncio.InvalidStateError):
            self._done_fut.set_result(None)
            if self._generations:
                self._mark_generation_done()

        if self._interrupt_timeout_handle is not None:
            self._interrupt_timeout_handle.cancel()
            self._interrupt_timeout_handle = None
