"""The regression gate's checks, run inside the target interpreter.

``livekit-agents-patch verify`` (``install/verify_target.py``) starts this module in the
interpreter ``--python`` names, with nothing of the tool's environment on the path but this
package. ``main`` writes exactly one JSON object (echoing ``--nonce``, and naming this file as
``harness``) whose ``exit`` is its exit code, to the pipe ``--answer-fd`` names (else as the last
line of stdout):

- 0: every property holds in every explored scenario;
- 1: a property does not hold (``property``, ``detail``, ``trace``: the shrunk counterexample);
- 2: bad arguments;
- 3: livekit-agents cannot be imported here;
- 9: the checks cannot run here: ``hypothesis``/``looptime`` missing (``REQUIREMENTS``), a
  release without the API they drive, or the harness itself failed.

Runs on Python 3.9+ (``make lint`` checks it): the third-party imports happen in ``run`` only
after they were found, so that their absence is reported, not raised.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import traceback
from typing import TYPE_CHECKING, Any

from ..exits import Exit

if TYPE_CHECKING:
    from .subjects import Classes

PHASE = "livekit-agents-patch verify: "
"""The prefix of the lines on stderr that say what the checks are doing, so that a run ended
by ``verify --timeout`` can be reported by the step it hung in."""


def _phase(doing: str) -> None:
    sys.stderr.write(f"{PHASE}{doing}\n")
    sys.stderr.flush()


REQUIREMENTS = ("hypothesis>=6.100", "looptime>=0.3,<=0.9")
"""What the checks need in the target; pyproject.toml's ``[verify]`` extra says the same."""


def explore(subject: Classes, examples: int, derandomize: bool = True) -> None:
    """Raise the shrunk ``PropertyViolation`` if any explored scenario breaks the contract."""
    from hypothesis import HealthCheck, Verbosity, given, settings

    from . import strategies
    from .scenarios import run_scenario

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


def _summary(e: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(e), e)).strip()


def _cannot(message: str, **extra: Any) -> dict[str, Any]:
    return {"exit": Exit.CANNOT_VERIFY, "ok": False, "error": message, **extra}


def _missing_requirements() -> dict[str, Any] | None:
    """Exit 9 with the command that installs the checks' dependencies, if any is unusable."""
    broken = []
    for name in ("hypothesis", "looptime"):
        try:
            importlib.import_module(name)
        except Exception as e:  # missing, or a release that does not run on this Python
            broken.append(f"{name} ({_summary(e)})")
    if not broken:
        return None
    install = f"{sys.executable} -m pip install " + " ".join(f"'{r}'" for r in REQUIREMENTS)
    return _cannot(
        f"expected {' and '.join(REQUIREMENTS)} importable in {sys.executable} (the property "
        f"checks run there), found: {'; '.join(broken)}. Next: {install} (or "
        "`pip install 'livekit-agents-patch[verify]'` there), then verify again.",
        missing=[b.split(" ")[0] for b in broken],
        next=install,
    )


def run(examples: int, state: str | None = None) -> dict[str, Any]:
    """The verdict on the livekit-agents importable here, as data with ``exit``.

    ``state``: what the tool found in its files (``pristine``, ``patched, revision 2``, ``foreign
    edit`` ...), named in the subject line; only the tool has the index to judge them."""
    if examples < 1:
        return {
            "exit": Exit.USAGE,
            "ok": False,
            "error": f"expected --examples >= 1, found {examples}",
        }
    logging.disable(logging.CRITICAL)  # the interruption timeout's ERROR log is expected here
    _phase(f"importing livekit.agents in {sys.executable}")
    try:
        importlib.import_module("livekit.agents.voice.speech_handle")
        importlib.import_module("livekit.agents.voice.events")
    except Exception as e:  # not installed, or installed without its dependencies
        return {
            "exit": Exit.NOT_INSTALLED,
            "ok": False,
            "error": f"expected an importable livekit-agents in {sys.executable}, found: "
            f"{_summary(e)}. Next: install livekit-agents there, or point --python at the "
            "environment that has it.",
        }
    _phase("importing hypothesis and looptime")
    missing = _missing_requirements()
    if missing is not None:
        return missing
    try:
        from . import subjects
        from .scenarios import ISSUE_5359, PropertyViolation, run_scenario

        subject = subjects.installed(state)
    except Exception as e:
        return _cannot(
            f"the property checks cannot be loaded in {sys.executable}: {_summary(e)}. Next: "
            "report this with the output of `pip list` in that environment."
        )
    lacking = subjects.lacking(subject)
    if lacking:
        return _cannot(
            f"the property checks cannot run on {subject.name}: it has no "
            f"{', '.join(lacking)}, which the checks drive; nothing was checked.",
            subject=subject.name,
            lacking=lacking,
        )
    _phase(f"exploring {examples} scenarios on {subject.name}")
    try:
        # the user's own story first, so an unpatched install is reported in its words
        run_scenario(subject, ISSUE_5359)
        explore(subject, examples)
    except PropertyViolation as e:
        fix = (
            "Next: livekit-agents-patch apply, then verify again."
            if subject.interrupted_error is subjects.NeverRaised
            else "The fix is present but does not hold: report this trace."
        )
        return {
            "exit": Exit.VIOLATION,
            "ok": False,
            "subject": subject.name,
            "property": e.prop,
            "detail": e.detail,
            "trace": e.trace,
            "report": str(e),
            "next": fix,
        }
    except Exception as e:  # the harness failed: no verdict on the fix either way
        where = traceback.extract_tb(e.__traceback__)[-1]
        return _cannot(
            f"the property checks failed on {subject.name} with {_summary(e)} (at "
            f"{where.filename}:{where.lineno}), so nothing was decided about the fix. Next: "
            "report this.",
            subject=subject.name,
        )
    return {"exit": Exit.OK, "ok": True, "subject": subject.name, "scenarios": examples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m livekit_agents_patch.contract.verify")
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--nonce", default="")
    parser.add_argument("--state", default=None)
    parser.add_argument(
        "--answer-fd",
        type=int,
        default=None,
        help="write the JSON object to this descriptor (a pipe the tool reads) instead of stdout",
    )
    args = parser.parse_args(argv)
    result = run(args.examples, args.state)
    answer = json.dumps({**result, "nonce": args.nonce, "harness": __file__})
    sys.stdout.flush()
    if args.answer_fd is None:
        print(answer)
    else:  # out of reach of what the target itself prints (a sitecustomize's atexit line)
        data = answer.encode("utf-8")
        while data:
            data = data[os.write(args.answer_fd, data) :]
        os.close(args.answer_fd)
    return int(result["exit"])


if __name__ == "__main__":
    raise SystemExit(main())
