"""Scenarios of external events on one speech, run on a virtual clock, checked against the fix's
contract after every step.

A scenario is the order and timing of what happens *to* a speech from the outside: waiters start,
the speech is interrupted, its steps are authorized and marked done, the clock moves, waiters
are cancelled, with a chosen number of loop yields between events. asyncio's ready queue is never
reordered: everything inside one loop turn runs in the order real asyncio runs it. The events are
data (``events.py``); this module is the interpreter: it drives the subject through them and
records what each waiter does. The oracle (``oracle.py``: a model of the handle) decides, from the
order of the transitions alone, how each waiter must end, and which property an observed run
breaks; ``run_scenario`` raises ``PropertyViolation`` with the scenario written out in words as
soon as the real subject disagrees.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import looptime

# re-exported: the names of the scenario language and its verdicts, used with the events
from .events import ISSUE_5359 as ISSUE_5359
from .events import Advance as Advance
from .events import Authorize as Authorize
from .events import Cancel as Cancel
from .events import Event as Event
from .events import Interrupt as Interrupt
from .events import MarkDone as MarkDone
from .events import MarkGenerationDone as MarkGenerationDone
from .events import Scenario as Scenario
from .events import StartWaiter as StartWaiter
from .events import Step as Step
from .events import Subject as Subject
from .events import describe
from .oracle import CLOCK_RESOLUTION as CLOCK_RESOLUTION
from .oracle import PROMPT_YIELDS as PROMPT_YIELDS
from .oracle import Generation, Mark, Model, Waiter, waiter_violation
from .oracle import Kind as Kind
from .oracle import Outcome as Outcome
from .oracle import PropertyViolation as PropertyViolation

# --- the runner ---------------------------------------------------------------------------------


def _accepts(method: Callable[..., Any], name: str) -> bool:
    return name in inspect.signature(method).parameters


class _Run:
    def __init__(self, subject: Subject, scenario: Scenario) -> None:
        self.subject = subject
        self.scenario = scenario
        self.loop = asyncio.get_running_loop()
        self.model = Model(scenario.allow_interruptions)
        self.handle = subject.new_handle(scenario.allow_interruptions)
        self.waiters: list[Waiter] = []
        self.yields = 0
        self.lines: list[str] = []
        self.baseline: dict[int, int] = {}
        self.futures_created = 0
        self._remember_baseline(self.handle._interrupt_fut)
        self._remember_baseline(self.handle._done_fut)

    # tracing

    def log(self, text: str) -> None:
        self.lines.append(f"{len(self.lines) + 1:>3}. t={self.loop.time():.3f}s  {text}")

    def trace(self) -> str:
        allowed = "yes" if self.scenario.allow_interruptions else "no"
        head = (
            f"subject: {self.subject.name}; the speech allows interruptions: {allowed}; "
            f"interruption timeout: {self.subject.timeout} s\nevent trace:"
        )
        return "\n".join([head, *self.lines])

    def fail(self, prop: str, detail: str) -> PropertyViolation:
        return PropertyViolation(prop, detail, self.trace())

    # clock and yields

    async def pass_turns(self, count: int) -> None:
        for _ in range(count):
            await asyncio.sleep(0)
            self.yields += 1

    def mark(self, cause: str, time: float | None = None) -> Mark:
        return Mark(self.yields, self.loop.time() if time is None else time, cause)

    # transitions

    def decide_all(self, cause: Mark, observed_late: bool = False) -> None:
        """Record the decisions the last transition made.

        ``observed_late``: the transition happened while the driver slept (the timeout), so
        waiters that ended since then were still undecided when it happened.
        """
        for waiter in self.waiters:
            ended = waiter.ended_at
            since = (
                observed_late and ended is not None and ended.time >= cause.time - CLOCK_RESOLUTION
            )
            if waiter.expected is None and (ended is None or since):
                outcome = self.model.decide(waiter.kind, waiter.step)
                if outcome is not None:
                    waiter.expected, waiter.decided = outcome, cause

    def _remember_baseline(self, fut: asyncio.Future[Any]) -> None:
        self.baseline[id(fut)] = len(fut._callbacks or [])

    def _futures(self) -> list[asyncio.Future[Any]]:
        return [self.handle._interrupt_fut, self.handle._done_fut, *self.handle._generations]

    def interrupt(self, force: bool) -> str | None:
        model = self.model
        forceable = _accepts(self.handle.interrupt, "force")  # 1.2.x cannot force
        refused = not (force and forceable) and not model.allow_interruptions
        takes_effect = not refused and not model.done and not model.interrupted
        try:
            if forceable:
                self.handle.interrupt(force=force)
            else:
                self.handle.interrupt()
        except RuntimeError:
            if not refused:
                raise
            return "refused (RuntimeError): the speech does not allow interruptions"
        if takes_effect:
            model.interrupted = True
            if self.subject.timeout is not None:
                # at the clock's resolution, as looptime keeps it: float sums drift
                model.deadline = round(self.loop.time() + self.subject.timeout, 6)
        return None if takes_effect else "no effect: already interrupted or done"

    def end_speech(self, cause: Mark, observed_late: bool = False) -> None:
        self.model.end_step()
        self.model.done = True
        self.model.deadline = None
        self.decide_all(cause, observed_late)

    async def apply(self, event: Event) -> str | None:
        """Carry out one event; return why it was skipped or had no effect, if so."""
        model, handle = self.model, self.handle
        if isinstance(event, StartWaiter):
            return self.start_waiter(event)
        if isinstance(event, Interrupt):
            note = self.interrupt(event.force)
        elif isinstance(event, Authorize):
            if model.done or (model.generations and not model.generations[-1].done):
                return "skipped: the speech is done or its current step has not ended"
            if model.generations:
                handle._num_steps += 1
            handle._authorize_generation()
            model.generations.append(Generation())
            self._remember_baseline(handle._generations[-1])
            note = None
        elif isinstance(event, MarkGenerationDone):
            if not model.generations or model.generations[-1].done:
                return "skipped: no step is running"
            handle._mark_generation_done()
            model.end_step()
            note = None
        elif isinstance(event, MarkDone):
            if model.done:
                return "skipped: the speech is already done"
            note = self.mark_done()
            self.end_speech(self.mark("mark done"))
            return note
        elif isinstance(event, Advance):
            deadline = model.deadline
            await asyncio.sleep(event.seconds)
            self.yields += 1
            if (
                deadline is not None
                and not model.done
                and self.loop.time() >= deadline - CLOCK_RESOLUTION
            ):
                timeout = Mark(self.yields - 1, deadline, "the interruption timeout")
                self.end_speech(timeout, observed_late=True)
            await self.pass_turns(1)
            return None
        else:
            return self.cancel(event.waiter)
        self.decide_all(self.mark(describe(event)))
        return note

    def mark_done(self) -> str | None:
        try:
            self.handle._mark_done()
        except RuntimeError:
            # 1.2.2-1.2.6 end the current step unconditionally and raise when there is none,
            # after the speech is marked done
            if self.model.generations or not self.handle.done():
                raise
            return "this release's _mark_done raised RuntimeError: no step to end"
        return None

    def cancel(self, index: int) -> str | None:
        if not self.waiters:
            return "skipped: no waiter yet"
        waiter = self.waiters[index % len(self.waiters)]
        if waiter.ended is not None or waiter.task is None:
            return f"no effect: W{waiter.number} has already ended"
        waiter.task.cancel()
        waiter.expected = Outcome.CANCELLED
        waiter.decided = self.mark(f"cancelling W{waiter.number}")
        return f"cancels W{waiter.number}"

    # waiters

    def call(self, kind: Kind, step: int) -> Coroutine[Any, Any, Any]:
        handle = self.handle
        if kind is Kind.TOOL or kind is Kind.TOOL_COMPAT:
            wait = self.subject.new_run_context(handle, step).wait_for_playout
            if _accepts(wait, "raise_on_interrupt"):
                return wait(raise_on_interrupt=kind is Kind.TOOL)  # type: ignore[no-any-return]
            return wait()  # type: ignore[no-any-return]
        if kind is Kind.SCHEDULER:
            return handle._wait_for_generation(step_idx=step)  # type: ignore[no-any-return]
        if kind is Kind.AWAIT_HANDLE:

            async def _await_handle() -> None:
                await handle

            return _await_handle()
        if kind is Kind.HANDLE_OPT_IN and _accepts(handle.wait_for_playout, "raise_on_interrupt"):
            return handle.wait_for_playout(raise_on_interrupt=True)  # type: ignore[no-any-return]
        return handle.wait_for_playout()  # type: ignore[no-any-return]

    def start_waiter(self, event: StartWaiter) -> str | None:
        steps = len(self.model.generations)
        if event.kind.per_step and not steps:
            return "skipped: no step authorized yet"
        step = event.step % steps if event.kind.per_step else 0
        waiter = Waiter(len(self.waiters) + 1, event.kind, step)
        self.waiters.append(waiter)
        self.lines[-1] = self.lines[-1].replace(describe(event), f"start {waiter.label}")
        outcome = self.model.decide(waiter.kind, waiter.step)
        if outcome is not None:
            waiter.expected, waiter.decided = outcome, self.mark("its start")
            if self.already_played(waiter):
                self.probe_hot_path(waiter, outcome)
        waiter.task = self.loop.create_task(self.run_waiter(waiter))
        waiter.task.add_done_callback(lambda _: self.cancelled_before_start(waiter))
        return None

    def cancelled_before_start(self, waiter: Waiter) -> None:
        if waiter.ended_at is None:  # cancelled before its first step: run_waiter never ran
            waiter.ended, waiter.ended_at = Outcome.CANCELLED, self.mark("")

    def already_played(self, waiter: Waiter) -> bool:
        if waiter.kind in (Kind.TOOL, Kind.TOOL_COMPAT):
            return self.model.generations[waiter.step].done
        return waiter.kind is Kind.HANDLE_OPT_IN and self.model.done

    def probe_hot_path(self, waiter: Waiter, outcome: Outcome) -> None:
        """An already decided call must finish without suspending, creating no task or future."""
        futures, tasks = self.futures_created, len(asyncio.all_tasks())
        coro = self.call(waiter.kind, waiter.step)
        try:
            coro.send(None)
        except StopIteration:
            got = Outcome.RETURNED
        except self.subject.interrupted_error:
            got = Outcome.RAISED
        else:
            coro.close()
            raise self.fail(
                "hot path",
                f"{waiter.label} suspended although what it waits for had already played "
                f"({outcome.value} expected)",
            ) from None
        if got is not outcome:
            raise self.fail(
                "outcome follows the order of transitions",
                f"{waiter.label} {got.value} when started; expected: {outcome.value}",
            )
        created = self.futures_created - futures, len(asyncio.all_tasks()) - tasks
        if created != (0, 0):
            raise self.fail(
                "hot path",
                f"{waiter.label} created {created[0]} future(s) and {created[1]} task(s) "
                "although what it waits for had already played",
            )

    async def run_waiter(self, waiter: Waiter) -> None:
        try:
            await self.call(waiter.kind, waiter.step)
            waiter.ended = Outcome.RETURNED
        except asyncio.CancelledError:
            waiter.ended = Outcome.CANCELLED
        except self.subject.interrupted_error:
            waiter.ended = Outcome.RAISED
        except Exception as e:  # recorded, reported by check()
            waiter.unexpected = e
        waiter.ended_at = self.mark("")

    # checks

    def check(self) -> None:
        now = self.mark("")
        for waiter in self.waiters:
            self.check_waiter(waiter, now)
        for fut in self._futures():
            if fut.cancelled():
                raise self.fail("cancellation", "a future of the speech handle was cancelled")
        live = sum(1 for w in self.waiters if w.ended_at is None)
        for fut in self._futures():
            extra = len(fut._callbacks or []) - self.baseline[id(fut)]
            if extra > live:
                raise self.fail(
                    "nothing left behind",
                    f"{extra} callback(s) from waiters on a future of the handle, "
                    f"but only {live} waiter(s) still running",
                )
        if self.handle.done() != self.model.done:
            state = "done" if self.handle.done() else "not done"
            raise self.fail(
                "interruption timeout unchanged",
                f"the speech is {state} at t={now.time:.3f}s; expected "
                + ("done" if self.model.done else "not done")
                + " (it ends when marked done, or INTERRUPTION_TIMEOUT after the interrupt)",
            )
        if self.handle.interrupted != self.model.interrupted:
            raise self.fail("interrupt unchanged", "the handle's interrupted flag is wrong")

    def check_waiter(self, waiter: Waiter, now: Mark) -> None:
        found = waiter_violation(waiter, now)
        if found is not None:
            raise self.fail(*found)

    # the whole run

    async def run(self) -> None:
        create_future = self.loop.create_future

        def counting_create_future() -> asyncio.Future[Any]:
            self.futures_created += 1
            return create_future()

        self.loop.create_future = counting_create_future  # type: ignore[method-assign]
        for step in self.scenario.steps:
            self.log(describe(step.event))
            note = await self.apply(step.event)
            if note:
                self.lines[-1] += f"  ({note})"
            if step.yields:
                self.lines[-1] += f", then {step.yields} loop yield(s)"
            await self.pass_turns(step.yields)
            self.check()
        await self.teardown()

    async def teardown(self) -> None:
        self.log(f"end of scenario: {PROMPT_YIELDS} loop yields")
        await self.pass_turns(PROMPT_YIELDS)
        self.check()
        if not self.model.done:
            self.log(f"teardown: mark done, then {PROMPT_YIELDS} loop yields")
            self.mark_done()
            self.end_speech(self.mark("teardown's mark done"))
            await self.pass_turns(PROMPT_YIELDS)
            self.check()
        for waiter in self.waiters:
            if waiter.ended_at is None:
                raise self.fail(
                    "every waiter ends once the speech is done",
                    f"{waiter.label} is still running after the speech is done",
                )
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        if pending:
            raise self.fail("nothing left behind", f"{len(pending)} task(s) still pending")


def run_scenario(subject: Subject, scenario: Scenario) -> None:
    """Run one scenario on a fresh virtual-clock loop; raise ``PropertyViolation`` if it fails."""
    loop = looptime.new_event_loop(start=0.0)

    async def main() -> None:
        try:
            await _Run(subject, scenario).run()
        finally:  # a violation leaves waiters behind: end them before the loop closes
            current = asyncio.current_task()
            leftovers = [t for t in asyncio.all_tasks() if t is not current]
            for task in leftovers:
                task.cancel()
            await asyncio.gather(*leftovers, return_exceptions=True)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
