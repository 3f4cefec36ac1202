"""The command line's grammar: every command, option and value type, and the exit table's help.

``cli`` parses with ``build_parser()`` and runs what it names; ``usage`` gives the parser its
``--json``-aware help, version and usage errors. A value type refuses what would silently act on
something else than meant: an empty ``--python`` is not "this interpreter".
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import __version__, usage
from .install import lock, unlisted, verify_target
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


def examples(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a number of scenarios >= 1, found {number}")
    return number


def _add_lock_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lock-timeout",
        type=seconds_or_zero,
        default=lock.TIMEOUT,
        metavar="SECONDS",
        help="wait at most this long for another run on the same install (default: "
        f"{lock.TIMEOUT:g}; 0: do not wait); past it, exit 7 naming that run's pid",
    )


def build_parser() -> argparse.ArgumentParser:
    common = usage.Parser(add_help=False)
    common.add_argument(
        "--python",
        type=interpreter,
        default=argparse.SUPPRESS,
        help="the target environment's interpreter (default: this one)",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object"
    )
    parser = usage.Parser(
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
    commands = parser.add_subparsers(dest="command", required=True, parser_class=usage.Parser)
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
    verify.add_argument("--examples", type=examples, default=500, help="scenarios to explore")
    verify.add_argument(
        "--timeout",
        type=seconds,
        default=verify_target.DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"end the checks after this long, exit 9 (default: {verify_target.DEFAULT_TIMEOUT:g})",
    )
    show = commands.add_parser(
        "show", help="print the patch for the installed version (for git apply)", parents=[common]
    )
    show.add_argument(
        "--release",
        type=release,
        help="print the patch for this livekit-agents release instead",
    )
    json_only = usage.Parser(add_help=False)
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
        type=release,
        required=True,
        metavar="X",
        help="the livekit-agents release, e.g. 1.8.9",
    )
    build.add_argument(
        "--output",
        type=directory,
        default=Path("."),
        metavar="DIR",
        help="directory to write it to (default: .)",
    )
    build.add_argument(
        "--from",
        dest="source",
        type=wheel_file,
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
        type=interpreter,
        default=argparse.SUPPRESS,
        help="with --allow-unlisted: the interpreter that checks the contract (default: this one)",
    )
    _add_scan(commands)
    return parser


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
    scan.add_argument(
        "paths", nargs="+", type=scan_path, metavar="PATH", help="files or directories"
    )
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
        type=selectors,
        default=None,
        metavar="CODES",
        help="comma-separated codes or prefixes to report (as ruff: LKP001,LKP00; default ALL)",
    )
    scan.add_argument(
        "--ignore",
        type=selectors,
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
        type=positive_int,
        default=scan_source.MAX_BYTES,
        metavar="BYTES",
        help=f"larger files are an LKP900 error, not read (default {scan_source.MAX_BYTES})",
    )


def selectors(text: str) -> list[str]:
    codes = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in codes if not scan_report.valid_selector(c)]
    if not codes or bad:
        raise argparse.ArgumentTypeError(
            f"expected codes or prefixes such as LKP001 or LKP00, found {text!r}"
        )
    return [c.upper() for c in codes]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of bytes, found {text!r}")
    return value


# --- value types ----------------------------------------------------------------------------------


def _given(value: str, expected: str, example: str, otherwise: str) -> str:
    """``value`` unless it is empty or blank: a mistake (an unset or mistyped variable), never
    the option's default, which would act on something else than was meant."""
    if not value.strip():
        raise argparse.ArgumentTypeError(
            f"expected {expected}, found an empty value ({value!r}): likely an unset or "
            f"mistyped variable, e.g. {example}. Next: {otherwise}"
        )
    return value


def interpreter(value: str) -> str:
    """``--python``'s value: never "this interpreter", which would patch or check the wrong
    environment."""
    return _given(
        value,
        "the target's interpreter",
        '--python "$APP_PY"',
        "pass the path of the environment's python, or leave --python out to mean this interpreter",
    )


def scan_path(value: str) -> str:
    """``scan``'s paths: an empty one is not the working directory (it read as "." before)."""
    return _given(
        value,
        "a file or directory to scan",
        'scan "$SRC"',
        "pass the directory of your agent's code (or its .py files)",
    )


def release(value: str) -> str:
    """``--release``'s value: never "the installed release" (``show``)."""
    return _given(
        value,
        "a livekit-agents release such as 1.8.9",
        '--release "$LK_VERSION"',
        "pass the release (`pip show livekit-agents` names the installed one)",
    )


def directory(value: str) -> Path:
    """``wheel --output``: never the working directory, nor a new directory named " "."""
    return Path(
        _given(
            value,
            "the directory to write the wheel to",
            '--output "$DIST"',
            "pass a directory, or leave --output out to mean the working directory",
        )
    )


def wheel_file(value: str) -> Path:
    """``wheel --from``: never ``.``, which ``Path("")`` is."""
    return Path(
        _given(
            value,
            "upstream's wheel file (a .whl)",
            '--from "$WHEEL"',
            "pass the .whl file, or leave --from out to download it",
        )
    )


MAX_SECONDS = 1_000_000.0
"""The longest ``--timeout`` (11.5 days): the operating system bounds a wait only up to
INT_MAX milliseconds (24.8 days); past that, waiting raises ``OverflowError``."""


def seconds(value: str) -> float:
    """A bound such as ``verify --timeout``: more than zero, at most ``MAX_SECONDS``."""
    return _seconds(value, zero=False)


def seconds_or_zero(value: str) -> float:
    """A wait such as ``--lock-timeout``, where 0 means "do not wait"."""
    return _seconds(value, zero=True)


def _seconds(value: str, zero: bool) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {value!r}") from None
    least = number >= 0 if zero else number > 0  # also False for nan
    if not (least and number <= MAX_SECONDS):
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds {'>=' if zero else '>'} 0 and at most "
            f"{MAX_SECONDS:,.0f}, found {value!r}"
        )
    return number
