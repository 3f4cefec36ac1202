"""One run at a time per install: an exclusive ``flock`` on the targets' directory, waited for
at most ``--lock-timeout`` seconds.

The lock is the directory itself, so no lock file is left behind, no name in the package can be
planted to redirect it, and a read-only directory can still be locked (and so be reported as
read-only). A run that is stopped while holding it (``SIGSTOP``, a debugger) would otherwise make
every later run wait forever: the wait is bounded, and the refusal names the holder's pid, which
Linux lists in ``/proc/locks`` by the directory's device and inode (elsewhere it is not known).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ..exits import Exit
from .index import TARGETS
from .target import PatchingError, Target

TIMEOUT = 60.0
"""The default of ``--lock-timeout``: long enough for another run's write, which takes well
under a second, even on a slow disk."""
_POLL = 0.05


def holder(fd: int) -> int | None:
    """The pid holding an ``flock`` on the file open at ``fd``, from ``/proc/locks`` (Linux)."""
    st = os.fstat(fd)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            lines = locks.read(1 << 20).splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue  # "->": a waiter, not the holder
        if fields[5] == key and fields[4].isdigit():
            return int(fields[4])
    return None


@contextlib.contextmanager
def locked(target: Target, timeout: float = TIMEOUT) -> Iterator[None]:
    """Hold the install's lock for the block; past ``timeout`` seconds of waiting (0: do not
    wait) refuse with exit 7, naming the holder."""
    directory = target.path(TARGETS[0]).parent
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as e:
        raise PatchingError(
            Exit.FOREIGN_EDIT,
            f"expected the directory {directory}, found: {e}. Next: {target.reinstall}",
        ) from e
    try:
        _acquire(fd, directory, timeout)
        yield
    finally:
        os.close(fd)


def _acquire(fd: int, directory: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pid = holder(fd)
        remaining = deadline - time.monotonic()
        who = f"pid {pid}" if pid is not None else "a process whose pid is not known"
        if remaining <= 0:
            stopped = (
                f" If it is stopped (`ps -o stat= -p {pid}` says T), `kill -CONT {pid}` or end it."
                if pid is not None
                else ""
            )
            raise PatchingError(
                Exit.IO_ERROR,
                f"expected to lock {directory} within {timeout:g} s, but another "
                f"livekit-agents-patch run ({who}) holds it; nothing was changed. Next: let that "
                f"run finish, then run the same command again (--lock-timeout SECONDS waits "
                f"longer).{stopped}",
            )
        if not waiting:
            print(
                f"waiting for another livekit-agents-patch run ({who}) on {directory}, at most "
                f"{timeout:g} s",
                file=sys.stderr,
                flush=True,
            )
            waiting = True
        time.sleep(min(_POLL, remaining))
