"""Signals that stop a command, as an exception: SIGINT, SIGTERM and SIGHUP all raise ``Stopped``.

Python turns only SIGINT into an exception (``KeyboardInterrupt``); SIGTERM and SIGHUP kill the
process where it stands, so no ``finally`` runs: no temporary file is removed, no child process
is ended, no line is printed. With ``raise_on_signals()`` all three raise ``Stopped`` at the next
bytecode boundary of the main thread, and the CLI ends with one line (one JSON object under
``--json``) and exit 128 + the signal's number. ``Stopped`` is a ``BaseException``: an
``except Exception`` on the way does not swallow it.
"""

from __future__ import annotations

import signal
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """A signal asked this process to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

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
