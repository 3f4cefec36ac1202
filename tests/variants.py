"""Negative controls: today's upstream behaviour, and mutants of the fix.

Each variant overrides one thing in the vendored reference. The suite must find a counterexample
for every one of them, so no property can pass vacuously.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from livekit_agents_patch.contract import subjects
from livekit_agents_patch.contract.scenarios import (
    Authorize,
    Cancel,
    Interrupt,
    Kind,
    Scenario,
    StartWaiter,
    Step,
)
from livekit_agents_patch.reference.voice.events import RunContext
from livekit_agents_patch.reference.voice.speech_handle import SpeechHandle, SpeechInterruptedError


class StockHandle(SpeechHandle):
    async def wait_for_playout(self) -> None:  # type: ignore[override]
        await asyncio.shield(self._done_fut)


class StockRunContext(RunContext):
    async def wait_for_playout(self) -> None:  # type: ignore[override]
        await self.speech_handle._wait_for_generation(step_idx=self._initial_step_idx)


class RaiseDropped(SpeechHandle):
    """Returns silently on interrupt, as a closed upstream attempt did."""

    async def _wait_for_step_playout(self, step_idx: int) -> None:
        await self._wait_for_playout_or_interrupt(self._generations[step_idx])


class RaceWithoutCleanup(SpeechHandle):
    """Races with done-callbacks it never removes: one left per future per finished wait."""

    async def _wait_for_playout_or_interrupt(self, playout: asyncio.Future[None]) -> None:
        if playout.done() or self._interrupt_fut.done():
            return
        woken = asyncio.get_running_loop().create_future()

        def wake(_: asyncio.Future[None]) -> None:
            if not woken.done():
                woken.set_result(None)

        playout.add_done_callback(wake)
        self._interrupt_fut.add_done_callback(wake)
        await woken


class FirstLeaverTearsDown(SpeechHandle):
    """The first waiter to leave (say, cancelled) unhooks the shared wake-up of the others."""

    async def _wait_for_playout_or_interrupt(self, playout: asyncio.Future[None]) -> None:
        if playout.done() or self._interrupt_fut.done():
            return
        self._interrupt_fut.add_done_callback(self._wake_playout_waiters)
        if playout not in self._playout_waiters:
            playout.add_done_callback(self._wake_playout_waiters)
        waiter = asyncio.get_running_loop().create_future()
        self._playout_waiters.setdefault(playout, {})[waiter] = None
        try:
            await waiter
        finally:  # the mutation: no "if not waiters", whoever leaves first unhooks everyone
            self._playout_waiters.pop(playout, None)
            playout.remove_done_callback(self._wake_playout_waiters)
            self._interrupt_fut.remove_done_callback(self._wake_playout_waiters)


class WakeWithoutGuard(SpeechHandle):
    """The shared wake-up sets every waiter's result, even one cancelled in the same loop turn:
    ``InvalidStateError`` in the callback, and the waiters after it are never woken."""

    def _wake_playout_waiters(self, fut: asyncio.Future[None]) -> None:
        if fut is self._interrupt_fut:
            woken = [w for waiters in self._playout_waiters.values() for w in waiters]
        else:
            woken = list(self._playout_waiters.get(fut, ()))
        for waiter in woken:
            waiter.set_result(None)  # the mutation: no "if not waiter.done()"


class DefaultInterruptAware(SpeechHandle):
    """``SpeechHandle.wait_for_playout()`` returns at the interrupt, before the audio stopped."""

    async def wait_for_playout(self, *, raise_on_interrupt: bool = False) -> None:
        await self._wait_for_playout_or_interrupt(self._done_fut)
        if raise_on_interrupt and self._interrupt_fut.done():
            raise SpeechInterruptedError(self._id)


class TieByWakeOrder(SpeechHandle):
    """Decides by what it sees when it wakes up: the interrupt wins every tie."""

    async def _wait_for_step_playout(self, step_idx: int) -> None:
        generation = self._generations[step_idx]
        await self._wait_for_playout_or_interrupt(generation)
        if self._interrupt_fut.done():
            raise SpeechInterruptedError(self._id)


class LateWaiterIgnoresInterrupt(SpeechHandle):
    """A waiter that starts after the step ended returns, even if the interrupt came first."""

    async def _wait_for_step_playout(self, step_idx: int) -> None:
        generation = self._generations[step_idx]
        if generation.done():
            return
        await super()._wait_for_step_playout(step_idx)


class CancelsHandleFutures(SpeechHandle):
    """Lets a waiter's cancellation reach the handle's own futures."""

    async def _wait_for_playout_or_interrupt(self, playout: asyncio.Future[None]) -> None:
        try:
            await super()._wait_for_playout_or_interrupt(playout)
        except asyncio.CancelledError:
            playout.cancel()
            raise


class AllocatesOnHotPath(SpeechHandle):
    """Always waits, even for a step that already played (costs a future and a suspension)."""

    async def _wait_for_playout_or_interrupt(self, playout: asyncio.Future[None]) -> None:
        await asyncio.wait((playout, self._interrupt_fut), return_when=asyncio.FIRST_COMPLETED)


class DoneOnInterrupt(SpeechHandle):
    """Marks the speech done at the interrupt (the closed attempts' way to free waiters)."""

    def _cancel(self) -> SpeechHandle:
        super()._cancel()
        self._mark_done()
        return self


class SchedulerInterruptAware(SpeechHandle):
    """``_wait_for_generation`` stops waiting at the interrupt: the next speech would overlap."""

    async def _wait_for_generation(self, step_idx: int = -1) -> None:
        await self._wait_for_playout_or_interrupt(self._generations[step_idx])


class OptInIgnoresDone(SpeechHandle):
    """The opt-in wait watches only the interrupt: a speech that just ends never frees it."""

    async def wait_for_playout(self, *, raise_on_interrupt: bool = False) -> None:
        if not raise_on_interrupt:
            return await super().wait_for_playout()
        await asyncio.shield(self._interrupt_fut)
        raise SpeechInterruptedError(self._id)


class WrongException(SpeechHandle):
    """Raises a plain RuntimeError instead of the documented SpeechInterruptedError."""

    async def _wait_for_step_playout(self, step_idx: int) -> None:
        try:
            await super()._wait_for_step_playout(step_idx)
        except SpeechInterruptedError:
            raise RuntimeError("interrupted") from None


CANCELLED_IN_THE_WAKE_UP = Scenario(
    [
        Step(Authorize()),
        Step(StartWaiter(Kind.TOOL), yields=1),
        Step(StartWaiter(Kind.TOOL), yields=1),
        Step(Interrupt(force=True)),
        Step(Cancel(0), yields=4),
    ]
)
"""Two tools wait on one step; the interrupt, and the first waiter cancelled in the same loop
turn, before the shared wake-up runs. The waiters are woken in the order they started, so the
cancelled one comes first every time: without the ``if not waiter.done()`` guard the wake-up
raises on it and never wakes the second (found by hand: random exploration reaches it rarely,
and with waiters in a ``set`` it was killed only when hash order put the cancelled one first)."""


@dataclass(frozen=True)
class Control:
    subject: subjects.Classes
    caught_by: frozenset[str]
    """The properties whose violation is the expected (shrunk) counterexample."""
    example: Scenario | None = None
    """An explicit scenario that kills the control every time, tried before exploring."""


def _control(
    name: str,
    handle: type[SpeechHandle],
    *caught_by: str,
    example: Scenario | None = None,
    **kw: type,
) -> Control:
    return Control(subjects.vendored(handle, name=name, **kw), frozenset(caught_by), example)


OUTCOME = "outcome follows the order of transitions"
EARLY = "never ends early"

CONTROLS = {
    "stock": _control(
        "stock upstream behaviour", StockHandle, "prompt", OUTCOME, run_context_cls=StockRunContext
    ),
    "raise dropped": _control("mutant: raise dropped", RaiseDropped, OUTCOME),
    "race without cleanup": _control(
        "mutant: race without cleanup", RaceWithoutCleanup, "nothing left behind"
    ),
    "first leaver tears down": _control(
        "mutant: the first waiter to leave unhooks the others", FirstLeaverTearsDown, "prompt"
    ),
    "wake-up without the done guard": _control(
        "mutant: the wake-up sets a cancelled waiter's result",
        WakeWithoutGuard,
        "prompt",
        example=CANCELLED_IN_THE_WAKE_UP,
    ),
    "default interrupt-aware": _control(
        "mutant: SpeechHandle default made interrupt-aware", DefaultInterruptAware, EARLY
    ),
    "tie by wake order": _control("mutant: tie broken by wake order", TieByWakeOrder, OUTCOME),
    "late waiter ignores interrupt": _control(
        "mutant: _interrupt_fut ignored for late waiters", LateWaiterIgnoresInterrupt, OUTCOME
    ),
    "cancels handle futures": _control(
        "mutant: cancellation reaches the handle", CancelsHandleFutures, "cancellation"
    ),
    "allocates on hot path": _control(
        "mutant: allocates on the hot path", AllocatesOnHotPath, "hot path"
    ),
    "done on interrupt": _control(
        "mutant: speech marked done at the interrupt",
        DoneOnInterrupt,
        EARLY,
        "interruption timeout unchanged",
    ),
    "scheduler interrupt-aware": _control(
        "mutant: _wait_for_generation made interrupt-aware", SchedulerInterruptAware, EARLY
    ),
    "opt-in ignores done": _control(
        "mutant: opt-in wait ignores done",
        OptInIgnoresDone,
        "every waiter ends once the speech is done",
        "prompt",
    ),
    "wrong exception": _control(
        "mutant: raises RuntimeError", WrongException, "only documented exceptions"
    ),
}
