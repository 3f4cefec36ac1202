"""Child processes that end when the tool says so: a time bound, and nothing left behind.

A child of ``subprocess.run`` that outlives its parent's wait (a timeout, Ctrl-C, SIGTERM) is
killed alone: its own children (the checks a nested ``verify`` started, a target's helper) live
on as orphans. ``run`` starts the child as the leader of a new session and process group
(``start_new_session=True``) and, on a timeout or any ``BaseException`` (``stopping.Stopped``,
``KeyboardInterrupt``), ends the whole group before it returns or re-raises.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any


def run(
    argv: Sequence[str], *, timeout: float | None, grace: float = 0.0, **popen: Any
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(argv, capture_output=True, text=True)`` in its own process group.

    Raises ``subprocess.TimeoutExpired`` past ``timeout`` seconds, after the group was ended.
    ``grace``: seconds between SIGTERM and SIGKILL, for a child that cleans up on SIGTERM
    (this tool's own CLI); 0 kills at once.
    """
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **popen,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except BaseException:
        end(process, grace)
        raise
    _signal_group(process.pid, signal.SIGKILL)  # anything it left running in its group
    return subprocess.CompletedProcess(list(argv), process.returncode, out, err)


def end(process: subprocess.Popen[str], grace: float = 0.0) -> None:
    """End ``process``'s whole group (SIGTERM, then SIGKILL after ``grace`` s) and reap it."""
    if grace > 0:
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    _signal_group(process.pid, signal.SIGKILL)
    try:
        process.communicate(timeout=5)  # reaps it and closes the pipes
    except subprocess.TimeoutExpired:  # a member that left the group still holds a pipe
        process.kill()
        process.wait()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(pgid, signum)


class Answer:
    """A pipe a child writes its answer to (its number in ``fd``; pass it in ``pass_fds``), read
    on a thread while the child runs: whatever the child prints on stdout (a ``sitecustomize``
    at import or at exit) cannot disturb it. ``text`` is complete once the ``with`` ends."""

    def __init__(self) -> None:
        self._read, self.fd = os.pipe()
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while chunk := os.read(self._read, 65536):
            self._chunks.append(chunk)

    def __enter__(self) -> Answer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        os.close(self.fd)  # EOF for the reader, once the child's copy is closed too
        self._reader.join(timeout=5)
        if not self._reader.is_alive():  # else a process that left the group holds it open
            os.close(self._read)

    @property
    def text(self) -> str:
        return b"".join(self._chunks).decode("utf-8", "replace")
