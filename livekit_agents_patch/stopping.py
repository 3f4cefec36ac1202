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


def _raise(signum: int, frame: FrameType | None) -> None:
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

    The signals are blocked in the kernel (``pthread_sigmask``), so one that arrives meanwhile
    stays pending and is delivered when the block ends: ``Stopped`` is then raised at the
    block's exit, never inside it. For steps that must not be torn: a rollback, a commit.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
