"""The contract of the fix, explored by Hypothesis on a virtual clock.

One property test for every subject: the vendored reference (default), or the installed
livekit-agents with ``--expect patched`` (the properties hold) or ``--expect stock`` (the
negative control: Hypothesis must find a counterexample, printed as an event trace).
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from variants import CANCELLED_IN_THE_WAKE_UP

from livekit_agents_patch.contract import strategies, subjects
from livekit_agents_patch.contract.scenarios import (
    Advance,
    Authorize,
    Interrupt,
    Kind,
    PropertyViolation,
    Scenario,
    StartWaiter,
    Step,
    run_scenario,
)
from livekit_agents_patch.contract.verify import explore

# found by `make deep`: the interruption timeout due at a float sum of clock steps
DEEP_FINDINGS = [
    Scenario(
        [
            Step(Authorize()),
            Step(Advance(4.999)),
            Step(StartWaiter(Kind.TOOL_COMPAT)),
            Step(Interrupt(force=False)),
            Step(Advance(5.0)),
        ]
    ),
    Scenario(
        [
            Step(Advance(0.001)),
            Step(Advance(5.0)),
            Step(StartWaiter(Kind.HANDLE)),
            Step(Interrupt(force=True)),
            Step(Advance(6.0)),
        ],
        allow_interruptions=False,
    ),
]


@given(strategies.scenarios)
@example(DEEP_FINDINGS[0])
@example(DEEP_FINDINGS[1])
@example(CANCELLED_IN_THE_WAKE_UP)  # kills the wake-up without its done guard (tests/variants.py)
def _contract_holds(subject: subjects.Classes, scenario: Scenario) -> None:
    run_scenario(subject, scenario)


def test_contract(subject: subjects.Classes, expect: str | None) -> None:
    if expect == "stock":
        with pytest.raises(PropertyViolation) as caught:
            explore(subject, examples=2000)
        print(caught.value)  # the shrunk counterexample, in words
        assert caught.value.prop in {"prompt", "outcome follows the order of transitions"}
        assert "RunContext.wait_for_playout()" in caught.value.detail or (
            "raise_on_interrupt=True" in caught.value.detail
        )
    else:
        _contract_holds(subject)
