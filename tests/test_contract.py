"""The contract of the fix, explored by Hypothesis on a virtual clock.

One property test for every subject: the vendored reference (default), or the installed
livekit-agents with ``--expect patched`` (the properties hold) or ``--expect stock`` (the
negative control: Hypothesis must find a counterexample, printed as an event trace).
"""

from __future__ import annotations

import pytest
from hypothesis import given

from livekit_agents_patch import strategies, subjects
from livekit_agents_patch.scenarios import PropertyViolation, Scenario, run_scenario
from livekit_agents_patch.verify import explore


@given(strategies.scenarios)
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
