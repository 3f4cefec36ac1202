"""``livekit-agents-patch``: status, check, apply, revert, verify and show, for one environment."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

from . import environment, patching
from .index import TARGETS, load
from .patching import Exit, PatchingError, State, Target

_STATUS_EXIT = {
    State.PATCHED: Exit.OK,
    State.PRISTINE: Exit.PRISTINE,
    State.FOREIGN: Exit.FOREIGN_EDIT,
    State.MISSING: Exit.FOREIGN_EDIT,
}


def _status(target: Target) -> tuple[Exit, dict[str, Any], str]:
    release = load().releases.get(target.version)
    supported = release is not None and release.patch is not None
    found = patching.states(target, release)
    kinds = set(found.values())
    if not supported:
        code = Exit.UNSUPPORTED
    elif len(kinds) == 1:
        code = _STATUS_EXIT[kinds.pop()]
    else:
        code = Exit.FOREIGN_EDIT
    data = {
        "version": target.version,
        "root": str(target.root),
        "supported": supported,
        "unsupported_reason": release.unsupported if release else "not in the patch index",
        "files": {str(target.path(rel)): state.value for rel, state in found.items()},
        "patch": release.patch if release else None,
    }
    summary = {
        Exit.OK: "patched: the fix for livekit/agents#5359 is in place",
        Exit.PRISTINE: "pristine: the fix is NOT applied (run `livekit-agents-patch apply`)",
        Exit.FOREIGN_EDIT: "foreign edit: the files are neither pristine nor patched",
        Exit.UNSUPPORTED: f"unsupported: {data['unsupported_reason']}",
    }[code]
    lines = [f"livekit-agents {target.version} at {target.root}"]
    lines += [f"  {path}: {state}" for path, state in data["files"].items()]
    lines.append(summary)
    return code, data, "\n".join(lines)


def _verify(python: str | None, examples: int, as_json: bool) -> int:
    """Run the property checks inside the target interpreter, lending it our own modules."""
    paths = []
    for name in ("livekit_agents_patch", "hypothesis", "looptime", "sortedcontainers", "attr"):
        try:
            module = import_module(name)
        except ImportError:  # not every hypothesis release needs every one of these
            continue
        parent = str(Path(module.__file__ or "").resolve().parent.parent)
        if parent not in paths:
            paths.append(parent)
    code = (
        "import os, sys; sys.path.extend(sys.argv[1].split(os.pathsep)); "
        "from livekit_agents_patch.verify import main; "
        "raise SystemExit(main(sys.argv[2:]))"
    )
    args = [python or sys.executable, "-c", code, os.pathsep.join(paths), "--examples", str(examples)]
    return subprocess.run(args + (["--json"] if as_json else [])).returncode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livekit-agents-patch",
        description="Apply, check and verify the fix for livekit/agents#5359.",
    )
    parser.add_argument("--python", help="the target environment's interpreter (default: this one)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="version, and each file: pristine, patched, foreign edit")
    commands.add_parser("check", help="dry run of apply: would it apply, and why not")
    commands.add_parser("apply", help="patch both files, all or nothing (idempotent)")
    commands.add_parser("revert", help="restore the pristine bytes (idempotent)")
    verify = commands.add_parser("verify", help="run the property checks on a virtual clock")
    verify.add_argument("--examples", type=int, default=500, help="scenarios to explore")
    commands.add_parser("show", help="print the patch that fits the installed version")
    return parser


def _emit(as_json: bool, code: Exit, data: dict[str, Any], text: str) -> int:
    if as_json:
        print(json.dumps({"exit": int(code), **data}))
    else:
        print(text, file=sys.stdout if code is Exit.OK else sys.stderr)
    return int(code)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "verify":
        return _verify(args.python, args.examples, args.json)
    target: Target | None = None
    try:
        target = environment.find(args.python)
        if args.command == "status":
            code, data, text = _status(target)
            return _emit(args.json, code, data, text)
        if args.command == "show":
            release = patching.release_for(target)
            patch = load().patch_text(release.patch or "")
            if args.json:
                return _emit(True, Exit.OK, {"patch_file": release.patch, "patch": patch}, "")
            sys.stdout.write(patch)
            return 0
        action = {"check": patching.check, "apply": patching.apply, "revert": patching.revert}
        done = action[args.command](target)
    except PatchingError as e:
        text = f"error: {e}"
        if args.command == "revert" and e.code is Exit.FOREIGN_EDIT and target is not None:
            text += "\nFallback: pip install --force-reinstall --no-deps livekit-agents==" + (
                target.version
            )
        return _emit(args.json, e.code, {"error": str(e)}, text)
    assert target is not None
    files = [str(target.path(rel)) for rel in TARGETS]
    text = f"{done}: livekit-agents {target.version} at {target.root}"
    if args.command == "revert" and done == "reverted":
        text += (
            "\nIf anything else was changed, reinstall instead: pip install --force-reinstall "
            f"--no-deps livekit-agents=={target.version}"
        )
    return _emit(args.json, Exit.OK, {"result": done, "files": files}, text)
