"""Signals that stop a command, as an exception: SIGINT, SIGTERM and SIGHUP all raise ``Stopped``.

Python turns only SIGINT into an exception (``KeyboardInterrupt``); SIGTERM and SIGHUP kill the
process where it stands, so no ``finally`` runs: no temporary file is removed, no child process
is ended, no line is printed. With ``raise_on_signals()`` all three raise ``Stopped`` at the next
bytecode boundary of the main thread, and the CLI ends with one line (one JSON object under
``--json``) and exit 128 + the signal's number. ``Stopped`` is a ``BaseException``: an
``except Exception`` on the way does not swallow it.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """A signal asked this process to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.files_now: str | None = None
        """What the files are once the command stopped (``apply``/``revert``), in words."""

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


_holding: list[bool] = []
"""Non-empty while a step that must not be torn runs (``deferred``): the handler then records."""
_held: list[int] = []
"""The signals that arrived meanwhile, raised once the last hold ends."""


def _raise(signum: int, frame: FrameType | None) -> None:
    if _holding:
        _held.append(signum)
        return
    raise Stopped(signum)


def raise_on_signals() -> None:
    """From now on, SIGINT, SIGTERM and SIGHUP raise ``Stopped`` in the main thread.

    A signal the process inherited as ignored stays ignored: ``nohup`` ignores SIGHUP, and a
    shell ignores SIGINT for a job it starts in the background; both mean "do not stop me".
    """
    for signum in SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _raise)


def decided(code: int) -> None:
    """The command's result is decided and is being printed: from now on SIGINT, SIGTERM and
    SIGHUP end the process with that result's ``code`` (``SystemExit``), never with a second
    result ("stopped before it finished") after the first, whose exit would then be untrue.

    Only the handlers ``raise_on_signals`` set are changed: an ignored signal stays ignored.
    """

    def _exit(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(code)

    for signum in SIGNALS:
        if signal.getsignal(signum) is _raise:
            signal.signal(signum, _exit)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP for the block; one that arrived is raised right after.

    The handler records a signal instead of raising while a hold is on, and the first one
    recorded is raised as ``Stopped`` when the outermost hold ends, never inside the block. For
    steps that must not be torn: a rollback, a commit.

    Why a flag and not the kernel's mask (``pthread_sigmask``): CPython runs a pending handler
    right after that call has changed the mask, so ``Stopped`` could come out of the call
    itself, with the mask left blocked and the block never run. The flag is set by one call
    (``list.append``), inside which no handler runs; what remains is the few bytecodes before
    it, where ``Stopped`` can still be raised as the hold begins: a caller whose block must run
    (``install.writer``'s rollback) runs it again then.
    """
    _holding.append(True)
    signum = None
    try:
        yield
    finally:
        _holding.pop()
        if not _holding and _held:  # an exception from the block wins; the held ones go
            signum = _held[0]
            _held.clear()
    if signum is not None:
        raise Stopped(signum)
