"""The oracle of the scenarios: how each waiter must end, and which property an observed run
breaks.

``Model`` follows the transitions of one speech (interrupted, steps authorized and marked done,
done) and decides from their order alone how a waiter of each ``Kind`` must end;
``waiter_violation`` compares what a waiter did (``Waiter``, with the ``Mark`` of the transition
that decided it and of its end) with that decision. ``scenarios`` interprets the events, drives
the real subject, and asks this module for the verdicts.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field

PROMPT_YIELDS = 3
"""A decided waiter must have ended within this many loop iterations, with no virtual time."""

CLOCK_RESOLUTION = 1e-6
"""looptime's resolution: times closer than this are the same instant (float sums drift)."""


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


class PropertyViolation(AssertionError):
    """A property of the contract failed; the message carries the scenario as an event trace."""

    def __init__(self, prop: str, detail: str, trace: str) -> None:
        super().__init__(f"property violated: {prop}\n{detail}\n{trace}")
        self.prop = prop
        self.detail = detail
        self.trace = trace


@dataclass
class Generation:
    done: bool = False
    cut: bool = False
    """Marked done after the interrupt: its playout did not finish."""


@dataclass
class Model:
    allow_interruptions: bool
    interrupted: bool = False
    done: bool = False
    deadline: float | None = None
    generations: list[Generation] = field(default_factory=list)

    def end_step(self) -> None:
        if self.generations and not self.generations[-1].done:
            self.generations[-1] = Generation(done=True, cut=self.interrupted)

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
class Mark:
    yields: int
    time: float
    cause: str


@dataclass
class Waiter:
    number: int
    kind: Kind
    step: int
    task: asyncio.Task[None] | None = None
    expected: Outcome | None = None
    decided: Mark | None = None
    ended: Outcome | None = None
    ended_at: Mark | None = None
    unexpected: BaseException | None = None

    @property
    def label(self) -> str:
        where = f" for step {self.step}" if self.kind.per_step else ""
        return f"W{self.number} {self.kind.value}{where}"


def waiter_violation(waiter: Waiter, now: Mark) -> tuple[str, str] | None:
    """The property a waiter breaks, given what was observed up to ``now``, and the detail in
    words; ``None`` if it keeps every one so far."""
    if waiter.unexpected is not None:
        error = waiter.unexpected
        return (
            "only documented exceptions",
            f"{waiter.label} raised {type(error).__name__}: {error}",
        )
    decided, ended = waiter.decided, waiter.ended_at
    if ended is not None:
        if decided is None:
            return (
                "never ends early",
                f"{waiter.label} ended ({describe_outcome(waiter.ended)}) before any transition "
                "decided it",
            )
        late = ended.time - decided.time
        if waiter.ended is not waiter.expected:
            when = f" {late:.3f} virtual seconds earlier" if late > CLOCK_RESOLUTION else ""
            return (
                "outcome follows the order of transitions",
                f"{waiter.label} {describe_outcome(waiter.ended)}; expected: "
                f"{describe_outcome(waiter.expected)}, decided by {decided.cause}{when}",
            )
        if late > CLOCK_RESOLUTION or ended.yields - decided.yields > PROMPT_YIELDS:
            return (
                "prompt",
                f"{waiter.label} ended {late:.3f} virtual seconds and "
                f"{ended.yields - decided.yields} loop yields after {decided.cause} "
                f"decided it ({describe_outcome(waiter.expected)}); expected within "
                f"{PROMPT_YIELDS} loop iterations and no virtual time",
            )
    elif decided is not None:
        blocked = now.time - decided.time
        if blocked > CLOCK_RESOLUTION or now.yields - decided.yields >= PROMPT_YIELDS:
            return (
                "prompt",
                f"{waiter.label} is still blocked {blocked:.3f} virtual seconds and "
                f"{now.yields - decided.yields} loop yields after {decided.cause} decided "
                f"it ({describe_outcome(waiter.expected)})",
            )
    return None


def describe_outcome(outcome: Outcome | None) -> str:
    return outcome.value if outcome is not None else "undecided"
