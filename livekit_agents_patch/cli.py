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
from .exits import Exit
from .install import environment, lock, patching, status, unlisted, verify_target, wheel
from .install.index import TARGETS, load
from .install.target import PatchingError, Target
from .scan import files as scanning
from .scan import report as scan_report
from .scan import source as scan_source

PROG = "livekit-agents-patch"

EXIT_HELP = """exit codes:
  0  ok: done, already done, or (status) patched; (verify) every property holds
  1  verify: a property does not hold (the counterexample is printed);
     scan: a warning (the fix swallowed) or an error (a file not read or parsed)
  2  usage: bad arguments (an empty --python too), an interpreter that cannot be run;
     (wheel) upstream's wheel cannot be downloaded, is not a regular file or a zip, or is
     not the release asked for
  3  livekit-agents is not installed (or not importable, for verify)
  4  this livekit-agents release is not supported
  5  foreign edit: a file is neither pristine nor patched, or missing; (wheel) upstream's
     wheel is not as published (not the pinned sha256, unsafe names, an untrue RECORD, a
     damaged entry); (revert) installed from a patched wheel
  6  status: pristine, the fix is not applied
  7  cannot write (read-only, another owner, symlink out of the package, a full disk), or
     another run holds the lock past --lock-timeout; nothing changed
  8  status: a run was killed mid-write; the next apply or revert rolls it back
  9  the checks could not run on this target (harness error, hypothesis or looptime
     missing there, unsupported Python, verify --timeout passed; for --allow-unlisted, on
     the patched copy); never a verdict on the fix
 10  internal error: a bug in this tool (the traceback is printed); report it
129  stopped by SIGHUP; 130: by SIGINT (Ctrl-C); 143: by SIGTERM (a write in progress is
     rolled back first; the last line says what the files are now)"""


_Parser = usage.Parser


def _examples(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a number of scenarios >= 1, found {number}")
    return number


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {value!r}") from None
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, found {value!r}")
    return number


def _add_lock_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=lock.TIMEOUT,
        metavar="SECONDS",
        help="wait at most this long for another run on the same install (default: "
        f"{lock.TIMEOUT:g}; 0: do not wait); past it, exit 7 naming that run's pid",
    )


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--python",
        type=usage.interpreter,
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
    unlisted_help = (
        "also a release the patch index does not list, if every hunk applies exactly and the "
        "contract holds on the patched files here (checked before writing)"
    )
    check = commands.add_parser(
        "check", help="dry run of apply: would it apply, and why not", parents=[common]
    )
    check.add_argument(unlisted.FLAG, action="store_true", help=unlisted_help)
    _add_lock_timeout(check)
    apply = commands.add_parser(
        "apply", help="patch both files, all or nothing (idempotent)", parents=[common]
    )
    apply.add_argument(unlisted.FLAG, action="store_true", help=unlisted_help)
    _add_lock_timeout(apply)
    revert = commands.add_parser(
        "revert", help="restore the pristine bytes (idempotent)", parents=[common]
    )
    _add_lock_timeout(revert)
    verify = commands.add_parser(
        "verify", help="the regression gate: property checks on a virtual clock", parents=[common]
    )
    verify.add_argument("--examples", type=_examples, default=500, help="scenarios to explore")
    verify.add_argument(
        "--timeout",
        type=usage.seconds,
        default=verify_target.DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"end the checks after this long, exit 9 (default: {verify_target.DEFAULT_TIMEOUT:g})",
    )
    show = commands.add_parser(
        "show", help="print the patch for the installed version (for git apply)", parents=[common]
    )
    show.add_argument(
        "--release",
        type=usage.release,
        help="print the patch for this livekit-agents release instead",
    )
    json_only = _Parser(add_help=False)
    json_only.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object"
    )
    build = commands.add_parser(
        "wheel",
        help="build the patched wheel of a release (X+fix5359.rN) for lockfiles and images",
        parents=[json_only],
    )
    build.add_argument(
        "--release",
        type=usage.release,
        required=True,
        metavar="X",
        help="the livekit-agents release, e.g. 1.8.9",
    )
    build.add_argument(
        "--output",
        type=usage.directory,
        default=Path("."),
        metavar="DIR",
        help="directory to write it to (default: .)",
    )
    build.add_argument(
        "--from",
        dest="source",
        type=usage.wheel_file,
        metavar="FILE.whl",
        help="upstream's wheel of the release, instead of downloading it (air-gapped builds)",
    )
    build.add_argument(
        unlisted.FLAG,
        action="store_true",
        help=f"{unlisted_help}; the contract runs with --python's environment, which needs "
        "that release's dependencies",
    )
    build.add_argument(
        "--python",
        type=usage.interpreter,
        default=argparse.SUPPRESS,
        help="with --allow-unlisted: the interpreter that checks the contract (default: this one)",
    )
    _add_scan(commands)
    return parser


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


def _add_scan(commands: Any) -> None:
    scan = commands.add_parser(
        "scan",
        help="static: which tools change behaviour with the fix, and where it is swallowed",
        description="Find each `await ctx.wait_for_playout()` on a RunContext parameter, with "
        "the scanned tree as one program: LKP001 warning, the fix is swallowed (broad except, "
        "suppress, a decorator or a caller in another file); LKP002 info, behaviour change; "
        "LKP003 info, a #5359 workaround now unnecessary; LKP004 warning, a RunContext that is "
        "a method's first parameter; LKP005 info, a wait in a background task; LKP900 error, "
        "a file or directory that cannot be read or parsed. Exit 0: no warning and no error "
        "(among the selected findings); 1: either; 2: usage.",
    )
    scan.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    output = scan.add_mutually_exclusive_group()
    output.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object"
    )
    output.add_argument(
        "--format",
        choices=("text", "github", "sarif"),
        default="text",
        help="text: `path:line:col: CODE message` (default); github: Actions annotations; "
        "sarif: SARIF 2.1.0 for GitHub code scanning",
    )
    scan.add_argument(
        "--select",
        type=_selectors,
        default=None,
        metavar="CODES",
        help="comma-separated codes or prefixes to report (as ruff: LKP001,LKP00; default ALL)",
    )
    scan.add_argument(
        "--ignore",
        type=_selectors,
        default=None,
        metavar="CODES",
        help="comma-separated codes or prefixes not to report (the longer match wins)",
    )
    scan.add_argument(
        "--min-severity",
        choices=tuple(scan_report.RANKS),
        default="info",
        help="report only findings at least this severe (warning: no info annotations)",
    )
    scan.add_argument(
        "--max-file-size",
        type=_positive_int,
        default=scan_source.MAX_BYTES,
        metavar="BYTES",
        help=f"larger files are an LKP900 error, not read (default {scan_source.MAX_BYTES})",
    )


def _selectors(text: str) -> list[str]:
    codes = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in codes if not scan_report.valid_selector(c)]
    if not codes or bad:
        raise argparse.ArgumentTypeError(
            f"expected codes or prefixes such as LKP001 or LKP00, found {text!r}"
        )
    return [c.upper() for c in codes]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of bytes, found {text!r}")
    return value


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
    _Parser.json_wanted = usage.wants_json(argv)
    args: argparse.Namespace | None = None
    try:
        stopping.raise_on_signals()
        args = build_parser().parse_args(argv)
        return _main(args)
    except stopping.Stopped as e:
        message = _stopped(e)
        code = Exit(128 + e.signum)
        return _emit(_Parser.json_wanted, code, {"error": message}, f"error: {message}", True)
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
        return _emit(_Parser.json_wanted, Exit.INTERNAL, data, f"{trace}error: {message}", True)


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
