"""The scenario language: what happens *to* a speech from the outside, as data.

Waiters start, the speech is interrupted, its steps are authorized and marked done, the clock
moves, waiters are cancelled; each event is followed by a chosen number of loop yields. Hypothesis
draws these (``strategies``), ``scenarios`` interprets them, and ``describe`` writes each one in
the words a failure's event trace prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Union

from .oracle import Kind


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


def describe(event: Event) -> str:
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
