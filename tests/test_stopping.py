"""``stopping.deferred``: a signal that arrives while a step must not be torn is raised after it.

In-process, with the real handlers: each test sends itself a signal with ``os.kill``. Before,
``deferred`` blocked the signals with ``pthread_sigmask``: a handler that CPython ran right after
that call raised ``Stopped`` out of the call, leaving the signals blocked for the rest of the
process and the block unrun (the rollback skipped); the tests below also check that no signal is
left blocked.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from livekit_agents_patch import stopping


@pytest.fixture(autouse=True)
def handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in stopping.SIGNALS}
    stopping.raise_on_signals()
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def _blocked() -> set[int]:
    return {int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])} & set(stopping.SIGNALS)


def test_a_signal_in_the_block_is_raised_once_the_block_has_run() -> None:
    ran = []
    with pytest.raises(stopping.Stopped) as stopped, stopping.deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        ran.append("after the signal")  # bytecodes at which an unheld handler would raise
        ran.append("the end of the block")
    assert ran == ["after the signal", "the end of the block"]
    assert stopped.value.signum == signal.SIGTERM
    assert _blocked() == set()


def test_nested_holds_raise_at_the_outermost_end_only_the_first_signal() -> None:
    ran = []
    with pytest.raises(stopping.Stopped) as stopped, stopping.deferred():
        with stopping.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            ran.append("inner")
        os.kill(os.getpid(), signal.SIGHUP)
        ran.append("outer")
    assert ran == ["inner", "outer"] and stopped.value.signum == signal.SIGINT
    with stopping.deferred():  # nothing left over from the first hold
        ran.append("again")
    assert ran[-1] == "again" and _blocked() == set()


def test_an_exception_from_the_block_wins_and_leaves_no_signal_behind() -> None:
    with pytest.raises(OSError), stopping.deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        raise OSError("the block failed")
    with stopping.deferred():
        pass  # a held signal left over would be raised here
    assert _blocked() == set()


def test_outside_a_hold_a_signal_raises_at_once() -> None:
    """The control: without ``deferred`` the same signal stops the code where it is."""
    ran = []
    with pytest.raises(stopping.Stopped):
        os.kill(os.getpid(), signal.SIGTERM)
        ran.append("never")
    assert ran == []
