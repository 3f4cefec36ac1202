"""The regression gate: the contract's properties against the livekit-agents importable here.

Runs in the target environment (``livekit-agents-patch verify`` starts it there); exit 0 only if
every property holds in every explored scenario, else 1 with the shrunk counterexample.
"""

from __future__ import annotations

import argparse
import json
import logging

from hypothesis import HealthCheck, Verbosity, given, settings

from . import strategies, subjects
from .scenarios import PropertyViolation, run_scenario


def explore(subject: subjects.Classes, examples: int, derandomize: bool = True) -> None:
    """Raise the shrunk ``PropertyViolation`` if any explored scenario breaks the contract."""

    @settings(
        max_examples=examples,
        derandomize=derandomize,
        deadline=None,
        database=None,
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategies.scenarios)
    def contract_holds(scenario: object) -> None:
        run_scenario(subject, scenario)  # type: ignore[arg-type]

    contract_holds()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m livekit_agents_patch.verify")
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the interruption timeout's ERROR log is expected here
    subject = subjects.installed()
    try:
        explore(subject, args.examples)
    except PropertyViolation as e:
        if args.json:
            print(json.dumps({"ok": False, "subject": subject.name, "property": e.prop,
                              "detail": e.detail, "trace": e.trace}))
        else:
            print(f"FAIL: {subject.name}\n{e}")
        return 1
    if args.json:
        print(json.dumps({"ok": True, "subject": subject.name, "scenarios": args.examples}))
    else:
        print(f"ok: every property holds in {args.examples} scenarios on {subject.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
