"""The regression gate: the contract's properties against the livekit-agents importable here.

Runs in the target environment (``livekit-agents-patch verify`` starts it there); exit 0 only if
every property holds in every explored scenario, else 1 with the shrunk counterexample.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback

from hypothesis import HealthCheck, Verbosity, given, settings

from . import strategies, subjects
from .scenarios import ISSUE_5359, PropertyViolation, run_scenario


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


def _print(as_json: bool, data: dict[str, object], text: str) -> None:
    print(json.dumps(data) if as_json else text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m livekit_agents_patch.verify")
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the interruption timeout's ERROR log is expected here
    try:
        subject = subjects.installed()
    except Exception as e:  # not installed, or installed without its dependencies
        message = (
            f"expected an importable livekit-agents in {sys.executable}, found: "
            f"{type(e).__name__}: {e}. Next: install livekit-agents there, or point --python "
            "at the environment that has it."
        )
        _print(args.json, {"exit": 3, "ok": False, "error": message}, f"error: {message}")
        return 3
    try:
        # the user's own story first, so an unpatched install is reported in its words
        run_scenario(subject, ISSUE_5359)
        explore(subject, args.examples)
    except PropertyViolation as e:
        fix = (
            "Next: livekit-agents-patch apply, then verify again."
            if subject.interrupted_error is subjects.NeverRaised
            else "The fix is present but does not hold: report this trace."
        )
        data = {
            "exit": 1,
            "ok": False,
            "subject": subject.name,
            "property": e.prop,
            "detail": e.detail,
            "trace": e.trace,
            "next": fix,
        }
        _print(args.json, data, f"FAIL: {subject.name}\n{e}\n{fix}")
        return 1
    except Exception as e:  # the checks could not even run: the gate fails too
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        message = f"the property checks raised {detail} on {subject.name}"
        _print(
            args.json,
            {"exit": 1, "ok": False, "subject": subject.name, "error": message},
            f"FAIL: {message}",
        )
        return 1
    data = {"exit": 0, "ok": True, "subject": subject.name, "scenarios": args.examples}
    _print(
        args.json, data, f"ok: every property holds in {args.examples} scenarios on {subject.name}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
