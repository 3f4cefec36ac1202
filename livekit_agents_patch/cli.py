"""``livekit-agents-patch``: status, check, apply, revert, verify and show, for one environment.

Plain short text by default (results on stdout, refusals on stderr); ``--json`` prints exactly
one JSON object on stdout, always with ``exit``, the process's exit code (see ``Exit``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from . import __version__, environment, harness, patching, usage, writer
from .index import TARGETS, load
from .patching import State
from .target import Exit, PatchingError, Target

PROG = "livekit-agents-patch"

EXIT_HELP = """exit codes:
  0  ok: done, already done, or (status) patched; (verify) every property holds
  1  verify: a property does not hold (the counterexample is printed)
  2  usage: bad arguments, an interpreter that cannot be run
  3  livekit-agents is not installed (or not importable, for verify)
  4  this livekit-agents release is not supported
  5  foreign edit: a file is neither pristine nor patched, or missing
  6  status: pristine, the fix is not applied
  7  cannot write (read-only, another owner, symlink out of the package); nothing changed
  8  status: a run was interrupted mid-write; the next apply or revert rolls it back
  9  verify: the checks could not run on this target (harness error, hypothesis or
     looptime missing there, unsupported Python); never a verdict on the fix"""


_Parser = usage.Parser


def _examples(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a number of scenarios >= 1, found {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--python",
        default=argparse.SUPPRESS,
        help="the target environment's interpreter (default: this one)",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object"
    )
    parser = _Parser(
        prog=PROG,
        description="Apply, check and verify the fix for livekit/agents#5359 in an installed\n"
        "livekit-agents. Needs no git and no patch program.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument(
        "--version", action=usage.Version, version=f"{PROG} {__version__}", help="print the version"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands.add_parser(
        "status",
        help="version, path, and each file: pristine, patched, foreign edit",
        parents=[common],
    )
    commands.add_parser(
        "check", help="dry run of apply: would it apply, and why not", parents=[common]
    )
    commands.add_parser(
        "apply", help="patch both files, all or nothing (idempotent)", parents=[common]
    )
    commands.add_parser("revert", help="restore the pristine bytes (idempotent)", parents=[common])
    verify = commands.add_parser(
        "verify", help="the regression gate: property checks on a virtual clock", parents=[common]
    )
    verify.add_argument("--examples", type=_examples, default=500, help="scenarios to explore")
    show = commands.add_parser(
        "show", help="print the patch for the installed version (for git apply)", parents=[common]
    )
    show.add_argument("--release", help="print the patch for this livekit-agents release instead")
    return parser


def _command(args: argparse.Namespace, command: str) -> str:
    """How to run ``command`` on the same target, for the "Next:" hints."""
    python = getattr(args, "python", None)
    return f"{PROG} " + (f"--python {shlex.quote(python)} " if python else "") + command


# --- status ----------------------------------------------------------------------------------


def _status(target: Target, args: argparse.Namespace) -> tuple[Exit, dict[str, Any], str]:
    release = load().releases.get(target.version)
    supported = release is not None and release.patch is not None
    judged = release if supported else None
    reports = patching.judge(target, judged, patching.read(target))
    kinds = {r.state for r in reports}
    files = []
    for r in reports:
        entry: dict[str, Any] = {
            "file": r.relative,
            "path": str(r.path),
            "state": r.state.value,
            "sha256": r.sha256,
            "note": r.note,
        }
        if judged is not None:
            entry["expected"] = {
                "pristine": judged.pristine[r.relative],
                "patched": judged.patched[r.relative],
            }
        real = r.path.resolve()
        if not real.is_relative_to(target.package_dir.resolve()):
            entry["note"] = f"a link to {real}, outside the package: apply refuses to write it"
        files.append(entry)
    if not supported:
        code, state = Exit.UNSUPPORTED, "unsupported"
        reason = release.unsupported if release else "not in the patch index"
        summary = f"unsupported: livekit-agents {target.version}: {reason}"
        next_step = (
            f"upgrade livekit-agents to {load().supported()[0]} or later"
            if release
            else f"run `{_command(args, 'verify')}` to see whether this release needs the fix"
        )
    elif writer.interrupted(target):
        code, state = Exit.INTERRUPTED, "interrupted"
        summary = (
            "interrupted: a run was killed between its two file writes (journal "
            f"{target.path(TARGETS[0]).parent / writer.JOURNAL})"
        )
        next_step = f"`{_command(args, 'apply')}` (or revert): it rolls the files back first"
    elif kinds == {State.PATCHED}:
        code, state = Exit.OK, "patched"
        summary = "patched: the fix for livekit/agents#5359 is in place"
        next_step = f"`{_command(args, 'verify')}` to check it"
    elif kinds == {State.PRISTINE}:
        code, state = Exit.PRISTINE, "pristine"
        summary = "pristine: the fix for livekit/agents#5359 is NOT applied"
        next_step = f"`{_command(args, 'apply')}`"
    else:
        code = Exit.FOREIGN_EDIT
        state = "missing" if State.MISSING in kinds else "foreign edit"
        summary = f"{state}: expected both files pristine or both patched"
        next_step = f"put back the wheel's files: {target.reinstall}"
    notes = list(target.notes) + [
        f"{tmp} ({tmp.stat().st_size} bytes) was left by a killed run; the next apply or revert "
        "removes it"
        for tmp in writer.leftovers(target)
    ]
    data = {
        "state": state,
        "version": target.version,
        "root": str(target.root),
        "dist_root": str(target.dist_root) if target.dist_root else None,
        "files_version": target.files_version,
        "python": target.python,
        "supported": supported,
        "unsupported_reason": None if supported else reason,
        "patch": release.patch if release else None,
        "files": files,
        "notes": notes,
        "summary": summary,
        "next": next_step,
    }
    lines = [f"livekit-agents {target.version} at {target.root}"]
    lines += [f"  note: {note}" for note in notes]
    if target.files_version and target.files_version != target.version:
        lines.append(f"  note: livekit/agents/version.py says {target.files_version}")
    for r, entry in zip(reports, files, strict=True):
        line = f"  {patching.describe(r, judged, short=True)}"
        if entry["note"] and entry["note"] != r.note:
            line += f" ({entry['note']})"
        lines.append(line)
    lines.append(summary)
    lines.append(f"Next: {next_step}")
    return code, data, "\n".join(lines)


# --- verify ----------------------------------------------------------------------------------


def _verify(args: argparse.Namespace, as_json: bool) -> int:
    """Run the property checks inside the target interpreter (``harness``) and report them."""
    try:
        code, data = harness.run(getattr(args, "python", None), args.examples)
    except PatchingError as e:
        return _emit(as_json, e.code, {"command": "verify", "error": str(e)}, f"error: {e}", True)
    except Exception as e:  # a crash here is no verdict: never exit 1, which means one
        message = f"verify failed before a verdict: {type(e).__name__}: {e}. Next: report this."
        data = {"command": "verify", "ok": False, "error": message}
        return _emit(as_json, Exit.CANNOT_VERIFY, data, f"error: {message}", True)
    data = {"command": "verify", **data}
    if code is Exit.OK:
        text = f"ok: every property holds in {data['scenarios']} scenarios on {data['subject']}"
    elif code is Exit.VIOLATION:
        text = f"FAIL: {data['subject']}\n{data['report']}\n{data['next']}"
    else:
        return _emit(as_json, code, data, f"error: {data['error']}", error=True)
    return _emit(as_json, code, data, text)


# --- output ----------------------------------------------------------------------------------


def _emit(as_json: bool, code: Exit, data: dict[str, Any], text: str, error: bool = False) -> int:
    return usage.finish(as_json, int(code), data, text, error)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _Parser.json_wanted = usage.wants_json(argv)
    args = build_parser().parse_args(argv)
    as_json: bool = getattr(args, "json", False)
    if args.command == "verify":
        return _verify(args, as_json)
    target: Target | None = None
    try:
        if args.command == "show" and args.release:
            version = args.release
        else:
            target = environment.find(getattr(args, "python", None))
            version = target.version
        if args.command == "status":
            assert target is not None
            code, data, text = _status(target, args)
            return _emit(as_json, code, {"command": "status", **data}, text)
        if args.command == "show":
            release = patching.release_for(
                target or Target(version=version, root=Path("."), record={})
            )
            patch = load().patch_text(release.patch or "")
            data = {"command": "show", "version": version, "patch_file": release.patch}
            if as_json:
                return _emit(True, Exit.OK, {**data, "patch": patch}, "")
            sys.stdout.write(patch)
            return 0
        assert target is not None
        action = {"check": patching.check, "apply": patching.apply, "revert": patching.revert}
        done = action[args.command](target)
    except PatchingError as e:
        text = f"error: {e}"
        revert_refused = args.command == "revert" and e.code is Exit.FOREIGN_EDIT
        if revert_refused and target is not None and target.reinstall not in text:
            text += f"\nFallback: {target.reinstall}"
        data = {"command": args.command, "error": str(e)}
        if target is not None:
            data.update(version=target.version, root=str(target.root))
        return _emit(as_json, e.code, data, text, error=True)
    except OSError as e:
        message = (
            f"{e}. Next: check that path and its permissions, then run the same command again "
            "(a run interrupted mid-write is rolled back first)."
        )
        return _emit(
            as_json,
            Exit.IO_ERROR,
            {"command": args.command, "error": message},
            f"error: {message}",
            error=True,
        )
    files = [str(target.path(rel)) for rel in TARGETS]
    text = f"{done}: livekit-agents {target.version} at {target.root}"
    if args.command == "revert" and done.startswith("reverted"):
        text += f"\nIf anything else was changed, reinstall instead: {target.reinstall}"
    if args.command == "apply" and done.startswith("applied"):
        text += f"\nNext: `{_command(args, 'verify')}`"
    data = {"command": args.command, "result": done, "version": target.version, "files": files}
    return _emit(as_json, Exit.OK, data, text)
