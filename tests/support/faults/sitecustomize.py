"""Fault injection for the CLI subprocess tests: wrap a function and misbehave at its N-th call.

Put this directory on ``PYTHONPATH`` (``support.cli.faults`` does) and name the faults in
``LKP_FAULTS``, rules separated by ``;``::

    FUNC[~SUFFIX]#N:WHEN=ACTION

- ``FUNC``: a module-level function, ``os.replace``, ``os.fsync``, ``os.open``, ``fcntl.flock``...,
  or a method of a standard stream, ``sys.stdout.write``, ``sys.stdout.flush`` (the stream is
  replaced by a proxy: a fault right after the command's output is printed).
- ``~SUFFIX``: count only the calls with a path argument ending in ``SUFFIX`` (``~events.py``).
- ``#N``: the N-th counted call (1-based).
- ``WHEN``: ``before`` or ``after`` the real call.
- ``ACTION``: ``raise`` (``OSError(EIO)``; ``raise:ENOSPC`` for another errno), ``exit``
  (``os._exit(70)``: no cleanup runs, as for SIGKILL), ``SIGINT`` / ``SIGTERM`` / ``SIGHUP`` /
  ``SIGKILL`` (delivered to this process, so Python's own handling runs: ``KeyboardInterrupt``
  for SIGINT), or ``hold:FIFO`` (print ``fault: holding at FUNC#N`` on stderr, then wait until
  something writes to the FIFO).

``LKP_FAULTS_TRACE=FILE`` appends one line per call of each function in ``TRACED`` (name and
path arguments), so a test can enumerate a command's write steps and then fault each one.

This lives in the tests, never in the shipped package: the tool's code has no test hooks.
"""

from __future__ import annotations

import errno
import importlib
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

TRACED = (
    "os.open",
    "os.replace",
    "os.rename",
    "os.unlink",
    "os.rmdir",
    "os.mkdir",
    "os.fsync",
    "os.chmod",
    "os.fchmod",
    "os.chown",
    "os.fchown",
    "os.write",
    "fcntl.flock",
)
EXIT_CODE = 70
"""``exit``'s status, which no command of the tool uses."""


def _paths(args: tuple[Any, ...]) -> list[str]:
    return [os.fsdecode(a) for a in args if isinstance(a, (str, bytes, os.PathLike))]


class _Rule:
    def __init__(self, text: str) -> None:
        target, _, rest = text.partition("#")
        count, _, action = rest.partition("=")
        number, _, self.when = count.partition(":")
        self.func, _, self.suffix = target.partition("~")
        self.number = int(number)
        self.action = action
        self.seen = 0
        if self.when not in ("before", "after") or not action:
            raise ValueError(f"LKP_FAULTS: cannot read the rule {text!r}")

    def matches(self, args: tuple[Any, ...]) -> bool:
        if self.suffix and not any(p.endswith(self.suffix) for p in _paths(args)):
            return False
        self.seen += 1
        return self.seen == self.number

    def fire(self) -> None:
        where = f"{self.func}{'~' + self.suffix if self.suffix else ''}#{self.number}"
        if self.action == "raise" or self.action.startswith("raise:"):
            code = getattr(errno, self.action.partition(":")[2] or "EIO")
            raise OSError(code, f"injected fault at {where}")
        if self.action == "exit":
            os._exit(EXIT_CODE)
        if self.action.startswith("hold:"):
            print(f"fault: holding at {where}", file=sys.stderr, flush=True)
            with open(self.action[len("hold:") :]) as fifo:
                fifo.read()
            return
        os.kill(os.getpid(), getattr(signal, self.action))


class _Stream:
    """A standard stream whose methods can be wrapped (``TextIOWrapper``'s cannot)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _owner(module_name: str) -> Any:
    if module_name in ("sys.stdout", "sys.stderr"):
        stream_name = module_name.split(".")[1]
        stream = getattr(sys, stream_name)
        if not isinstance(stream, _Stream):
            stream = _Stream(stream)
            setattr(sys, stream_name, stream)
        return stream
    return importlib.import_module(module_name)


def _wrap(name: str, rules: list[_Rule], trace: str | None) -> None:
    module_name, _, attr = name.rpartition(".")
    module = _owner(module_name)
    real: Callable[..., Any] = getattr(module, attr)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if trace is not None:
            with open(trace, "a", encoding="utf-8") as log:  # builtin open: not traced itself
                print(name, *_paths(args), file=log)
        due = [rule for rule in rules if rule.matches(args)]
        for rule in due:
            if rule.when == "before":
                rule.fire()
        result = real(*args, **kwargs)
        for rule in due:
            if rule.when == "after":
                rule.fire()
        return result

    setattr(module, attr, wrapper)


def _install() -> None:
    spec = os.environ.get("LKP_FAULTS", "")
    trace = os.environ.get("LKP_FAULTS_TRACE") or None
    rules = [_Rule(text) for text in spec.split(";") if text.strip()]
    names = {rule.func for rule in rules} | (set(TRACED) if trace else set())
    for name in sorted(names):
        _wrap(name, [rule for rule in rules if rule.func == name], trace)


_install()
