"""Every negative control is killed: Hypothesis finds a counterexample, shown as a trace."""

from __future__ import annotations

import pytest
from variants import CONTROLS

from livekit_agents_patch.contract.scenarios import PropertyViolation, run_scenario
from livekit_agents_patch.contract.verify import explore


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_control_is_killed(name: str) -> None:
    control = CONTROLS[name]
    with pytest.raises(PropertyViolation) as caught:
        if control.example is not None:  # deterministic: the explicit example first
            run_scenario(control.subject, control.example)
        explore(control.subject, examples=2000)
    print(caught.value)  # the shrunk counterexample, in words
    assert caught.value.prop in control.caught_by, str(caught.value)
