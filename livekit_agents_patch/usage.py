"""The command line's parser and output: under ``--json`` even help, the version and usage
errors are one JSON object on stdout whose ``exit`` is the process's exit code; every result is
printed through ``finish``, which a closed or vanished stdout cannot turn into another exit."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from . import stopping
from .exits import Exit


def wants_json(argv: Sequence[str]) -> bool:
    """Whether ``--json`` was asked for, also when the rest of ``argv`` cannot be parsed."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json" or arg.startswith("--json="):
            return True
    return False


def finish(as_json: bool, code: int, data: dict[str, Any], text: str, error: bool = False) -> int:
    """Print one result: ``data`` as one JSON object with ``exit``, or ``text``; a stopping
    signal from here on ends the process with ``code`` (``stopping.decided``)."""
    stopping.decided(code)
    if as_json:
        write(json.dumps({"exit": code, **data}) + "\n")
    elif text:
        write(text + "\n", sys.stderr if error else sys.stdout)
    return code


def standard_streams() -> None:
    """Open ``/dev/null`` on each standard descriptor the caller closed (``>&-``, ``2>&-``).

    Python starts with ``sys.stdout = None`` when descriptor 1 is closed, so the first print
    would raise and ``print(file=sys.stderr)`` would write to stdout; and the next file the tool
    opened would get the free number 1 or 2, where a stray write would land in it. With
    ``/dev/null`` there, output is discarded as asked and the exit code stands."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        if getattr(sys, name) is None:
            mode = "r" if fd == 0 else "w"
            stream = open(fd, mode, closefd=False, errors="backslashreplace")  # noqa: SIM115
            setattr(sys, name, stream)  # for the whole run: never closed


def write(text: str, stream: Any = None) -> None:
    """Write and flush ``text``; a reader that stopped early (``| head``, a closed pipe) changes
    nothing: the command's exit code stands, no traceback, nothing more is written.

    The stream's descriptor is pointed at ``/dev/null`` so that the interpreter's own flush at
    exit does not fail again (Python's documented way, see the ``signal`` module's notes on
    SIGPIPE). No stream at all (``cmd >&-``: Python then has ``sys.stdout`` ``None``) is the
    same: nothing can be read, the exit code stands."""
    stream = sys.stdout if stream is None else stream
    if stream is None:
        return
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)


class Parser(argparse.ArgumentParser):
    """No abbreviated options (``--js`` is not ``--json``); help, version and errors honour
    ``--json``. Subparsers made with ``parser_class=Parser`` get the same."""

    json_wanted = False
    """Set from the whole command line before parsing (``wants_json``)."""

    def __init__(self, *args: Any, add_help: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        if add_help:
            self.add_argument("-h", "--help", action=_Help, help="show this help message and exit")

    def error(self, message: str) -> NoReturn:
        if not Parser.json_wanted:
            self.print_usage(sys.stderr)
        finish(
            Parser.json_wanted,
            int(Exit.USAGE),
            {"error": message},
            f"{self.prog}: error: {message}",
            error=True,
        )
        raise SystemExit(int(Exit.USAGE))


class _Help(argparse.Action):
    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        text = parser.format_help()
        finish(Parser.json_wanted, 0, {"help": text}, text.rstrip("\n"))
        raise SystemExit(0)


class Version(argparse.Action):
    """``--version``: prints ``version=`` ("prog number"); under ``--json`` both, apart."""

    def __init__(
        self, option_strings: list[str], dest: str, version: str = "", **kwargs: Any
    ) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)
        self.text = version

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        name, number = self.text.rsplit(" ", 1)
        finish(Parser.json_wanted, 0, {"prog": name, "version": number}, self.text)
        raise SystemExit(0)
