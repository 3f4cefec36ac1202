"""A failure reads as a story: the shrunk scenario as numbered events, on the virtual clock."""

from __future__ import annotations

import pytest
from variants import CONTROLS

from livekit_agents_patch.contract.scenarios import ISSUE_5359, PropertyViolation, run_scenario


def test_stock_trace_reads_as_the_bug_report() -> None:
    with pytest.raises(PropertyViolation) as caught:
        run_scenario(CONTROLS["stock"].subject, ISSUE_5359)
    assert str(caught.value) == (
        "property violated: outcome follows the order of transitions\n"
        "W1 RunContext.wait_for_playout() for step 0 returns; expected: raises "
        "SpeechInterruptedError, decided by interrupt(force=True) 5.000 virtual seconds earlier\n"
        "subject: stock upstream behaviour; the speech allows interruptions: yes; "
        "interruption timeout: 5.0 s\n"
        "event trace:\n"
        "  1. t=0.000s  authorize the next step\n"
        "  2. t=0.000s  start W1 RunContext.wait_for_playout() for step 0, then 1 loop yield(s)\n"
        "  3. t=0.000s  interrupt(force=True)\n"
        "  4. t=0.000s  advance the clock 6.000 s"
    )


def test_the_same_scenario_passes_on_the_fix() -> None:
    from livekit_agents_patch.contract.subjects import vendored

    run_scenario(vendored(), ISSUE_5359)
