"""Scenarios of external events on one speech, run on a virtual clock, checked against the fix's
contract after every step.

A scenario is the order and timing of what happens *to* a speech from the outside: waiters start,
the speech is interrupted, its steps are authorized and marked done, the clock moves, waiters
are cancelled, with a chosen number of loop yields between events. asyncio's ready queue is never
reordered: everything inside one loop turn runs in the order real asyncio runs it. A model of the
handle (the oracle) decides, from the order of the transitions alone, how each waiter must end;
``run_scenario`` raises ``PropertyViolation`` with the scenario written out in words as soon as the
real subject disagrees.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

import looptime

PROMPT_YIELDS = 3
"""A decided waiter must have ended within this many loop iterations, with no virtual time."""

CLOCK_RESOLUTION = 1e-6
"""looptime's resolution: times closer than this are the same instant (float sums drift)."""


class Subject(Protocol):
    """What the scenarios run against: the vendored copy, a variant of it, or real upstream."""

    @property
    def name(self) -> str: ...

    @property
    def timeout(self) -> float | None:
        """Seconds after an interrupt at which the speech is forced done; ``None``: never."""

    @property
    def interrupted_error(self) -> type[BaseException]: ...

    def new_handle(self, allow_interruptions: bool) -> Any: ...

    def new_run_context(self, handle: Any, step: int) -> Any: ...


class Kind(enum.Enum):
    """The waits the contract speaks about, each named as a user would call it."""

    TOOL = "RunContext.wait_for_playout()"
    TOOL_COMPAT = "RunContext.wait_for_playout(raise_on_interrupt=False)"
    HANDLE = "SpeechHandle.wait_for_playout()"
    HANDLE_OPT_IN = "SpeechHandle.wait_for_playout(raise_on_interrupt=True)"
    AWAIT_HANDLE = "await handle"
    SCHEDULER = "SpeechHandle._wait_for_generation()"

    @property
    def per_step(self) -> bool:
        return self in (Kind.TOOL, Kind.TOOL_COMPAT, Kind.SCHEDULER)


class Outcome(enum.Enum):
    RETURNED = "returns"
    RAISED = "raises SpeechInterruptedError"
    CANCELLED = "raises CancelledError"


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartWaiter:
    kind: Kind
    step: int = 0
    """For per-step kinds: the step, modulo the steps authorized so far."""


@dataclass(frozen=True)
class Interrupt:
    force: bool = False


@dataclass(frozen=True)
class Authorize:
    """The owner authorizes the speech's next step (generation)."""


@dataclass(frozen=True)
class MarkGenerationDone:
    """The owner marks the current step's playout finished."""


@dataclass(frozen=True)
class MarkDone:
    """The owner marks the whole speech done (its teardown finished)."""


@dataclass(frozen=True)
class Advance:
    seconds: float


@dataclass(frozen=True)
class Cancel:
    waiter: int
    """Index among the waiters started so far, modulo their number."""


# Union, not `|`: this module runs in the target, which may be Python 3.9
Event = Union[StartWaiter, Interrupt, Authorize, MarkGenerationDone, MarkDone, Advance, Cancel]


@dataclass(frozen=True)
class Step:
    event: Event
    yields: int = 0
    """Loop iterations the driver lets pass after the event."""


@dataclass(frozen=True)
class Scenario:
    steps: Sequence[Step]
    allow_interruptions: bool = True


ISSUE_5359 = Scenario(
    [
        Step(Authorize()),
        Step(StartWaiter(Kind.TOOL), yields=1),
        Step(Interrupt(force=True)),
        Step(Advance(6.0)),
    ]
)
"""The report of livekit/agents#5359 in miniature: a tool waits for its preamble's playout, the
speech is interrupted, the owner never marks the step done."""


class PropertyViolation(AssertionError):
    """A property of the contract failed; the message carries the scenario as an event trace."""

    def __init__(self, prop: str, detail: str, trace: str) -> None:
        super().__init__(f"property violated: {prop}\n{detail}\n{trace}")
        self.prop = prop
        self.detail = detail
        self.trace = trace


# --- the oracle ---------------------------------------------------------------------------------


@dataclass
class _Generation:
    done: bool = False
    cut: bool = False
    """Marked done after the interrupt: its playout did not finish."""


@dataclass
class _Model:
    allow_interruptions: bool
    interrupted: bool = False
    done: bool = False
    deadline: float | None = None
    generations: list[_Generation] = field(default_factory=list)

    def end_step(self) -> None:
        if self.generations and not self.generations[-1].done:
            self.generations[-1] = _Generation(done=True, cut=self.interrupted)

    def decide(self, kind: Kind, step: int) -> Outcome | None:
        """How a waiter must end, given the transitions so far; ``None``: not decided yet."""
        if kind is Kind.TOOL:
            generation = self.generations[step]
            if generation.done:
                return Outcome.RAISED if generation.cut else Outcome.RETURNED
            return Outcome.RAISED if self.interrupted else None
        if kind in (Kind.TOOL_COMPAT, Kind.SCHEDULER):
            return Outcome.RETURNED if self.generations[step].done else None
        if kind is Kind.HANDLE_OPT_IN and self.interrupted:
            return Outcome.RAISED
        return Outcome.RETURNED if self.done else None


@dataclass
class _Mark:
    yields: int
    time: float
    cause: str


@dataclass
class _Waiter:
    number: int
    kind: Kind
    step: int
    task: asyncio.Task[None] | None = None
    expected: Outcome | None = None
    decided: _Mark | None = None
    ended: Outcome | None = None
    ended_at: _Mark | None = None
    unexpected: BaseException | None = None

    @property
    def label(self) -> str:
        where = f" for step {self.step}" if self.kind.per_step else ""
        return f"W{self.number} {self.kind.value}{where}"


# --- the runner ---------------------------------------------------------------------------------


def _accepts(method: Callable[..., Any], name: str) -> bool:
    return name in inspect.signature(method).parameters


class _Run:
    def __init__(self, subject: Subject, scenario: Scenario) -> None:
        self.subject = subject
        self.scenario = scenario
        self.loop = asyncio.get_running_loop()
        self.model = _Model(scenario.allow_interruptions)
        self.handle = subject.new_handle(scenario.allow_interruptions)
        self.waiters: list[_Waiter] = []
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

    def mark(self, cause: str, time: float | None = None) -> _Mark:
        return _Mark(self.yields, self.loop.time() if time is None else time, cause)

    # transitions

    def decide_all(self, cause: _Mark, observed_late: bool = False) -> None:
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

    def end_speech(self, cause: _Mark, observed_late: bool = False) -> None:
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
            model.generations.append(_Generation())
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
                timeout = _Mark(self.yields - 1, deadline, "the interruption timeout")
                self.end_speech(timeout, observed_late=True)
            await self.pass_turns(1)
            return None
        else:
            return self.cancel(event.waiter)
        self.decide_all(self.mark(_describe(event)))
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
        waiter = _Waiter(len(self.waiters) + 1, event.kind, step)
        self.waiters.append(waiter)
        self.lines[-1] = self.lines[-1].replace(_describe(event), f"start {waiter.label}")
        outcome = self.model.decide(waiter.kind, waiter.step)
        if outcome is not None:
            waiter.expected, waiter.decided = outcome, self.mark("its start")
            if self.already_played(waiter):
                self.probe_hot_path(waiter, outcome)
        waiter.task = self.loop.create_task(self.run_waiter(waiter))
        waiter.task.add_done_callback(lambda _: self.cancelled_before_start(waiter))
        return None

    def cancelled_before_start(self, waiter: _Waiter) -> None:
        if waiter.ended_at is None:  # cancelled before its first step: run_waiter never ran
            waiter.ended, waiter.ended_at = Outcome.CANCELLED, self.mark("")

    def already_played(self, waiter: _Waiter) -> bool:
        if waiter.kind in (Kind.TOOL, Kind.TOOL_COMPAT):
            return self.model.generations[waiter.step].done
        return waiter.kind is Kind.HANDLE_OPT_IN and self.model.done

    def probe_hot_path(self, waiter: _Waiter, outcome: Outcome) -> None:
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

    async def run_waiter(self, waiter: _Waiter) -> None:
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

    def check_waiter(self, waiter: _Waiter, now: _Mark) -> None:
        if waiter.unexpected is not None:
            error = waiter.unexpected
            raise self.fail(
                "only documented exceptions",
                f"{waiter.label} raised {type(error).__name__}: {error}",
            )
        decided, ended = waiter.decided, waiter.ended_at
        if ended is not None:
            if decided is None:
                raise self.fail(
                    "never ends early",
                    f"{waiter.label} ended ({_outcome(waiter.ended)}) before any transition "
                    "decided it",
                )
            late = ended.time - decided.time
            if waiter.ended is not waiter.expected:
                when = f" {late:.3f} virtual seconds earlier" if late > CLOCK_RESOLUTION else ""
                raise self.fail(
                    "outcome follows the order of transitions",
                    f"{waiter.label} {_outcome(waiter.ended)}; expected: "
                    f"{_outcome(waiter.expected)}, decided by {decided.cause}{when}",
                )
            if late > CLOCK_RESOLUTION or ended.yields - decided.yields > PROMPT_YIELDS:
                raise self.fail(
                    "prompt",
                    f"{waiter.label} ended {late:.3f} virtual seconds and "
                    f"{ended.yields - decided.yields} loop yields after {decided.cause} "
                    f"decided it ({_outcome(waiter.expected)}); expected within "
                    f"{PROMPT_YIELDS} loop iterations and no virtual time",
                )
        elif decided is not None:
            blocked = now.time - decided.time
            if blocked > CLOCK_RESOLUTION or now.yields - decided.yields >= PROMPT_YIELDS:
                raise self.fail(
                    "prompt",
                    f"{waiter.label} is still blocked {blocked:.3f} virtual seconds and "
                    f"{now.yields - decided.yields} loop yields after {decided.cause} decided "
                    f"it ({_outcome(waiter.expected)})",
                )

    # the whole run

    async def run(self) -> None:
        create_future = self.loop.create_future

        def counting_create_future() -> asyncio.Future[Any]:
            self.futures_created += 1
            return create_future()

        self.loop.create_future = counting_create_future  # type: ignore[method-assign]
        for step in self.scenario.steps:
            self.log(_describe(step.event))
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


def _outcome(outcome: Outcome | None) -> str:
    return outcome.value if outcome is not None else "undecided"


def _describe(event: Event) -> str:
    if isinstance(event, Interrupt):
        return f"interrupt(force={event.force})"
    if isinstance(event, Authorize):
        return "authorize the next step"
    if isinstance(event, MarkGenerationDone):
        return "mark the current step's playout done"
    if isinstance(event, MarkDone):
        return "mark the speech done"
    if isinstance(event, Advance):
        return f"advance the clock {event.seconds:.3f} s"
    if isinstance(event, Cancel):
        return "cancel a waiter"
    return f"start {event.kind.value}"


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
