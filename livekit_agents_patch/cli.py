"""``livekit-agents-patch``: status, check, apply, revert, verify and show, for one environment;
``wheel``, a patched wheel of a release for lockfiles.

Plain short text by default (results on stdout, refusals on stderr); ``--json`` prints exactly
one JSON object on stdout, always with ``exit``, the process's exit code (see ``Exit``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import traceback
from pathlib import Path
from typing import Any

from . import __version__, stopping, usage
from .arguments import PROG, build_parser
from .exits import Exit
from .install import environment, patching, status, unlisted, verify_target, wheel
from .install.index import TARGETS, load
from .install.target import PatchingError, Target
from .scan import files as scanning
from .scan import report as scan_report


def _command(args: argparse.Namespace, command: str) -> str:
    """How to run ``command`` on the same target, for the "Next:" hints."""
    python = getattr(args, "python", None)
    return f"{PROG} " + (f"--python {shlex.quote(python)} " if python else "") + command


# --- status ----------------------------------------------------------------------------------


def _status(target: Target, args: argparse.Namespace) -> tuple[Exit, dict[str, Any], str]:
    found = status.status(target, lambda name: _command(args, name))
    lines = [f"livekit-agents {target.wheel_version or target.version} at {target.root}"]
    lines += [f"  {line}" for line in found.lines]
    lines += [found.summary, f"Next: {found.next_step}"]
    return found.code, found.data, "\n".join(lines)


# --- verify ----------------------------------------------------------------------------------


def _verify(args: argparse.Namespace, as_json: bool) -> int:
    """Run the property checks inside the target interpreter (``install.verify_target``), report."""
    try:
        code, data = verify_target.run(getattr(args, "python", None), args.examples, args.timeout)
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


# --- wheel -----------------------------------------------------------------------------------


def _wheel(args: argparse.Namespace, as_json: bool) -> int:
    try:
        built = wheel.build(
            args.release,
            args.output,
            args.source,
            allow_unlisted=args.allow_unlisted,
            python=getattr(args, "python", None),
        )
    except PatchingError as e:
        data = {"command": "wheel", "release": args.release, "error": str(e)}
        return _emit(as_json, e.code, data, f"error: {e}", error=True)
    data = {
        "command": "wheel",
        "path": str(built.path),
        "sha256": built.sha256,
        "release": built.release,
        "version": built.version,
        "revision": built.revision,
        "patch": built.patch,
        "source": str(built.source),
        "source_sha256": built.source_sha256,
        "source_pinned": built.pinned,
        "snippets": built.snippets,
    }
    snippets = built.snippets
    if built.pinned:
        origin = f"  from {built.source}: sha256 {built.source_sha256}, the index's pin"
    else:
        origin = (
            f"  from {built.source}: NOT PINNED, sha256 {built.source_sha256}: livekit-agents "
            f"{built.release} is not in the index, so this source was checked for a true "
            "RECORD and safe names only, not against a published hash"
        )
    text = "\n".join(
        [
            f"built {built.path}",
            f"  livekit-agents {built.version}: upstream's {built.release} with {built.patch}",
            origin,
            f"  sha256 {built.sha256}",
            "",
            "pip (requirements.txt, install with --require-hashes):",
            f"  {snippets['pip']}",
            "",
            "uv (pyproject.toml; keep livekit-agents in [project] dependencies):",
            *(f"  {line}" for line in snippets["uv"].splitlines()),
            "",
            "poetry (pyproject.toml):",
            *(f"  {line}" for line in snippets["poetry"].splitlines()),
        ]
    )
    return _emit(as_json, Exit.OK, data, text)


# --- scan ------------------------------------------------------------------------------------


def _scan(args: argparse.Namespace, as_json: bool) -> int:
    try:
        result = scanning.scan(args.paths, max_bytes=args.max_file_size)
    except scanning.ScanError as e:
        return _emit(as_json, Exit.USAGE, {"error": str(e)}, f"error: {e}", error=True)
    kept = scan_report.select(result.findings, args.select, args.ignore, args.min_severity)
    result = scanning.ScanResult(result.files, kept)
    if as_json:
        data = {"files": result.files, "findings": scan_report.as_json(kept)}
        return _emit(True, result.exit, data, "")
    if args.format == "sarif":
        text = json.dumps(scan_report.sarif(kept, __version__), indent=2)
        return _emit(False, result.exit, {}, text)
    lines = scan_report.lines(kept, github=args.format == "github")
    lines.append(scan_report.summary(result.files, kept))
    return _emit(False, result.exit, {}, _printable("\n".join(lines)))


def _printable(text: str) -> str:
    """``text`` as the standard output's encoding can print it (``\\uNNNN`` otherwise): a
    path in a C locale must not end the run with an encoding error."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    return text.encode(encoding, "backslashreplace").decode(encoding)


# --- output ----------------------------------------------------------------------------------


def _emit(as_json: bool, code: Exit, data: dict[str, Any], text: str, error: bool = False) -> int:
    return usage.finish(as_json, int(code), data, text, error)


def _files_now(target: Target, args: argparse.Namespace) -> str:
    """What the files are after a stopped run, judged from their bytes (as ``status`` does), so
    the last line says the truth wherever the signal landed."""
    try:
        with stopping.deferred():
            found = status.status(target, lambda name: _command(args, name))
    except (PatchingError, OSError) as e:
        return f"unknown ({e})"
    return found.summary


def _stopped(e: stopping.Stopped) -> str:
    message = f"stopped by {e.name} before it finished"
    if e.files_now is None:
        return (
            f"{message}. Next: `{PROG} status` says what the files are now; run the same command "
            "again to finish it."
        )
    if e.files_now.startswith("interrupted"):
        # only the rollback of an earlier interrupted run is stopped this way: this run's own
        # write is rolled back with the signals held
        return (
            f"{message}, while rolling back an interrupted run; nothing is lost: {e.files_now}. "
            "Next: run the same command again; it rolls back first."
        )
    return f"{message}; the files are now {e.files_now}. Next: run the same command again."


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    usage.standard_streams()
    usage.Parser.json_wanted = usage.wants_json(argv)
    args: argparse.Namespace | None = None
    try:
        stopping.raise_on_signals()
        args = build_parser().parse_args(argv)
        return _main(args)
    except stopping.Stopped as e:
        message = _stopped(e)
        code = Exit(128 + e.signum)
        return _emit(usage.Parser.json_wanted, code, {"error": message}, f"error: {message}", True)
    except Exception as e:  # a bug of this tool: still one JSON object, still a documented exit
        trace = traceback.format_exc()
        command = getattr(args, "command", None)
        if command in WRITES_THE_INSTALL:  # only they can have been writing
            state = "A failed write was rolled back before this point."
        else:
            state = f"`{command or PROG}` changes no file of the install."
        message = (
            f"internal error: {type(e).__name__}: {e}. {state} Next: report this with the "
            "traceback."
        )
        data = {"error": message, "traceback": trace}
        return _emit(
            usage.Parser.json_wanted, Exit.INTERNAL, data, f"{trace}error: {message}", True
        )


WRITES_THE_INSTALL = ("apply", "revert")
"""The commands that write an install's files (``wheel`` writes only its own output file)."""


def _main(args: argparse.Namespace) -> int:
    as_json: bool = getattr(args, "json", False)
    if args.command == "verify":
        return _verify(args, as_json)
    if args.command == "wheel":
        return _wheel(args, as_json)
    if args.command == "scan":
        return _scan(args, as_json)
    target: Target | None = None
    try:
        if args.command == "show" and args.release:
            version = args.release
            if version not in load().releases and not load().predates(version):
                raise unlisted.show_refusal(version, load())
        else:
            target = environment.find(getattr(args, "python", None))
            version = target.version
        if args.command == "status":
            assert target is not None
            code, data, text = _status(target, args)
            return _emit(as_json, code, {"command": "status", **data}, text)
        if args.command == "show":
            listed = version in load().releases or load().predates(version)
            if target is not None and not listed:
                raise unlisted.show_refusal(version, load())
            release = patching.release_for(
                target or Target(version=version, root=Path("."), record={})
            )
            patch = load().patch_text(release.patch or "")
            data = {"command": "show", "version": version, "patch_file": release.patch}
            if as_json:
                return _emit(True, Exit.OK, {**data, "patch": patch}, "")
            stopping.decided(Exit.OK)
            usage.write(patch)
            return 0
        assert target is not None
        try:
            if args.command == "revert":
                done = patching.revert(target, lock_timeout=args.lock_timeout)
            else:
                action = {"check": patching.check, "apply": patching.apply}[args.command]
                done = action(
                    target, allow_unlisted=args.allow_unlisted, lock_timeout=args.lock_timeout
                )
        except stopping.Stopped as e:
            e.files_now = _files_now(target, args)
            raise
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
