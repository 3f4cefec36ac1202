"""Hypothesis strategies for scenarios: the order and timing of external events, and the loop
yields between them. asyncio's own ready queue is never reordered."""

from __future__ import annotations

from hypothesis import strategies as st

from .scenarios import (
    Advance,
    Authorize,
    Cancel,
    Event,
    Interrupt,
    Kind,
    MarkDone,
    MarkGenerationDone,
    Scenario,
    StartWaiter,
    Step,
)

# steps of the clock around the 5 s interruption timeout, so it fires early, late or exactly
CLOCK_STEPS = (0.001, 0.5, 2.5, 4.999, 5.0, 6.0)

events: st.SearchStrategy[Event] = st.one_of(
    st.just(Authorize()),
    st.builds(StartWaiter, st.sampled_from(Kind), st.integers(0, 3)),
    st.just(MarkGenerationDone()),
    st.builds(Interrupt, st.booleans()),
    st.just(MarkDone()),
    st.builds(Advance, st.sampled_from(CLOCK_STEPS)),
    st.builds(Cancel, st.integers(0, 7)),
)

scenarios: st.SearchStrategy[Scenario] = st.builds(
    Scenario,
    st.lists(st.builds(Step, events, st.integers(0, 4)), max_size=24),
    st.booleans(),
)
