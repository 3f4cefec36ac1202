"""``verify`` from the tool's side: run the checks in the target interpreter, lending it only this
package, and turn what comes back into an exit and data.

The target imports its own livekit-agents, hypothesis and looptime: a temporary directory holding
a copy of ``livekit_agents_patch`` (and nothing else) goes first on its ``sys.path``, and none of
the tool's site-packages is added, so a target without livekit-agents cannot check the tool's.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..contract.verify import PHASE
from ..exits import Exit
from . import bounded, environment, status
from .index import load
from .target import PatchingError

OLDEST_PYTHON = (3, 9)
"""The oldest Python the checks run on (livekit-agents 1.2.18 to 1.3.12 support 3.9)."""

_OUTCOMES = {Exit.OK, Exit.VIOLATION, Exit.USAGE, Exit.NOT_INSTALLED, Exit.CANNOT_VERIFY}

# runs in the target: argv[1] is the directory holding the copy of this package
_RUNNER = (
    "import sys\n"
    "if sys.path and sys.path[0] == '':\n"  # -c puts the working directory first
    "    del sys.path[0]\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "sys.dont_write_bytecode = True\n"
    "from livekit_agents_patch.contract.verify import main\n"
    "raise SystemExit(main(sys.argv[2:]))\n"
)


DEFAULT_TIMEOUT = 300.0
"""Seconds the property checks may run (``verify --timeout``): 500 scenarios take seconds."""


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if not line.startswith(PHASE)]
    return " | ".join(lines[-3:]) if lines else "nothing"


def _phase(stderr: str) -> str:
    """What the checks were doing, from the last phase line they wrote to stderr."""
    phases = [line[len(PHASE) :] for line in stderr.splitlines() if line.startswith(PHASE)]
    return phases[-1] if phases else "starting the interpreter"


def run(
    python: str | None, examples: int, timeout: float = DEFAULT_TIMEOUT
) -> tuple[Exit, dict[str, Any]]:
    """The verdict of the checks on the livekit-agents ``python`` imports.

    Raises ``PatchingError(Exit.USAGE)`` if ``python`` is not a working Python interpreter.
    The checks run in a process group of their own: past ``timeout`` seconds, or when this
    process is stopped (``stopping.Stopped``), the group is killed and the lent directory
    removed before this returns (exit 9) or re-raises.
    """
    found = environment.probe(python)
    interpreter: str = found["python"]  # its sys.executable, for messages
    version = tuple(found["python_version"])
    if version < OLDEST_PYTHON:
        shown = ".".join(map(str, version))
        return Exit.CANNOT_VERIFY, {
            "ok": False,
            "python": interpreter,
            "error": f"expected Python {'.'.join(map(str, OLDEST_PYTHON))} or newer for the "
            f"property checks, found Python {shown} at {interpreter}; no supported "
            "livekit-agents release runs there either. Next: point --python at the "
            "environment that runs livekit-agents.",
        }
    try:  # what the files are, judged against the index, which only the tool has
        state = status.label(status.status(environment.find(python), lambda name: name))
    except PatchingError:  # e.g. not installed: the checks say so in their own words
        state = None
    nonce = secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="livekit-agents-patch-") as lent:
        package = Path(__file__).resolve().parents[1]  # the whole package: contract/ and reference/
        shutil.copytree(
            package,
            Path(lent) / package.name,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        command = interpreter if python is None else python  # a wrapper may set the environment
        argv = [command, "-c", _RUNNER, lent, "--examples", str(examples), "--nonce", nonce]
        argv += ["--state", state] if state else []
        try:
            with bounded.Answer() as answer:
                argv += ["--answer-fd", str(answer.fd)]
                done = bounded.run(argv, timeout=timeout, pass_fds=(answer.fd,))
        except OSError as e:  # it ran the probe a moment ago
            return Exit.CANNOT_VERIFY, {"ok": False, "python": interpreter, "error": str(e)}
        except subprocess.TimeoutExpired as e:
            stderr = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else ""
            stderr = e.stderr if isinstance(e.stderr, str) else stderr
            return Exit.CANNOT_VERIFY, {
                "ok": False,
                "python": interpreter,
                "timed_out": True,
                "running": _phase(stderr),
                "error": f"the property checks did not finish within {timeout:g} s in "
                f"{interpreter}: they were {_phase(stderr)}. Their processes were ended and "
                "nothing was decided about the fix. Next: if that step hangs there (e.g. "
                f"`{interpreter} -c 'import livekit.agents'` never returns), fix that "
                "environment; if it is only slow, raise --timeout.",
            }
    try:
        result = json.loads(answer.text) if answer.text.strip() else None
    except ValueError:
        result = None
    if (
        not isinstance(result, dict)
        or result.pop("nonce", None) != nonce
        or result.get("exit") != done.returncode
        or done.returncode not in {int(e) for e in _OUTCOMES}
    ):
        return Exit.CANNOT_VERIFY, {
            "ok": False,
            "python": interpreter,
            "error": f"the property checks did not finish in {interpreter}: exit "
            f"{done.returncode}, stderr: {_tail(done.stderr)}; nothing was decided about the "
            "fix. Next: report this with that output.",
        }
    harness = str(result.pop("harness", ""))
    if not harness.startswith(lent + os.sep):  # an import hook there preferred another copy
        return Exit.CANNOT_VERIFY, {
            "ok": False,
            "python": interpreter,
            "error": f"expected {interpreter} to run the checks lent to it, found it ran "
            f"{harness or 'unknown code'} (another livekit_agents_patch took precedence); "
            "nothing was decided about the fix. Next: uninstall livekit-agents-patch from that "
            "environment, or check its import hooks.",
        }
    code = Exit(result.pop("exit"))
    if result.get(
        "lacking"
    ):  # an older release: only the target knows, only the tool has the index
        supported = load().supported()
        result["next"] = f"upgrade livekit-agents to {supported[0]} or later"
        result["error"] += f" Next: {result['next']} (the fix supports {supported[0]} to " + (
            f"{supported[-1]})."
        )
    return code, {"python": interpreter, **result}
