"""The subject a benchmark process measures: stock, patched or vendored, and its two waits.

``stock`` and ``patched`` are the real livekit-agents installed in the bench interpreter; which
one is imported depends on ``PYTHONPATH`` (the driver, ``bench/run.py``, puts the patched
overlay first for ``patched``). :func:`load` checks that the import matches the name, so a
mislabelled run fails instead of producing a wrong table.

The two waits measured:

``ctx``
    ``RunContext.wait_for_playout()`` (the tool's wait; the patch's default raises).
``handle``
    ``SpeechHandle.wait_for_playout(raise_on_interrupt=True)``; stock has no such flag, so its
    equivalent is the default ``SpeechHandle.wait_for_playout()``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from livekit_agents_patch.contract import subjects

SUBJECTS = ("stock", "patched", "vendored")
CONTROL = "leaky-control"  # a deliberately leaky wait: shows the memory check catches leaks
APIS = ("ctx", "handle")


@dataclass(frozen=True)
class Subject:
    name: str
    module_file: str
    version: str
    classes: subjects.Classes
    has_flag: bool

    @property
    def interrupted_error(self) -> type[BaseException]:
        return self.classes.interrupted_error

    def new_handle(self) -> Any:
        """A handle with one authorized step (step 0), as the scheduler leaves it."""
        handle = self.classes.new_handle(allow_interruptions=True)
        handle._authorize_generation()
        return handle

    def new_ctx(self, handle: Any, step: int = 0) -> Any:
        return self.classes.new_run_context(handle, step)

    def waiter(self, api: str, handle: Any) -> Callable[[], Coroutine[Any, Any, None]]:
        """A zero-argument factory of the wait coroutine for ``api`` on ``handle``'s step 0."""
        if api == "ctx":
            ctx = self.new_ctx(handle)
            return ctx.wait_for_playout  # type: ignore[no-any-return]
        if api == "handle":
            if self.has_flag:
                return lambda: handle.wait_for_playout(raise_on_interrupt=True)
            return handle.wait_for_playout  # type: ignore[no-any-return]
        raise ValueError(api)


def load(name: str) -> Subject:
    """Import the subject ``name`` and check it is what it claims to be."""
    logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)
    if name == "vendored":
        from livekit_agents_patch.reference.voice import speech_handle

        return Subject(
            name=name,
            module_file=speech_handle.__file__ or "",
            version=version("livekit-agents-patch"),
            classes=subjects.vendored(),
            has_flag=True,
        )
    if name == CONTROL:
        return _leaky_control()
    if name not in ("stock", "patched"):
        raise ValueError(f"unknown subject {name!r}")
    classes = subjects.installed()
    patched = classes.interrupted_error is not subjects.NeverRaised
    module_file = sys.modules[classes.speech_handle.__module__].__file__ or ""
    if patched != (name == "patched"):
        raise RuntimeError(
            f"asked for {name} but imported {'patched' if patched else 'stock'} "
            f"livekit-agents from {module_file} (PYTHONPATH={os.environ.get('PYTHONPATH')})"
        )
    return Subject(
        name=name,
        module_file=module_file,
        version=version("livekit-agents"),
        classes=classes,
        has_flag=patched,
    )


def emit(result: dict[str, Any], out: str | None) -> None:
    """Write a benchmark process's JSON result to ``out``, or to stdout."""
    text = json.dumps(result, indent=2) + "\n"
    if out:
        with open(out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def callbacks(fut: asyncio.Future[Any]) -> int:
    """How many done callbacks are attached to ``fut`` (C and pure-Python futures alike)."""
    cbs = getattr(fut, "_callbacks", None)
    return len(cbs) if cbs else 0


def _leaky_control() -> Subject:
    """The vendored reference with a wait that never removes its callbacks (negative control).

    Like a rejected attempt at the fix, each wait leaves one callback on ``_interrupt_fut`` and
    one on ``_done_fut`` (and one on the step) whenever the wait ends any other way than by
    that future: the memory benchmark must report them and the bytes they hold.
    """
    from livekit_agents_patch.reference.voice import speech_handle

    class LeakySpeechHandle(speech_handle.SpeechHandle):
        async def _wait_for_playout_or_interrupt(self, playout: asyncio.Future[None]) -> None:
            if playout.done() or self._interrupt_fut.done():
                return
            waiter = asyncio.get_running_loop().create_future()

            def wake(_: asyncio.Future[None]) -> None:
                if not waiter.done():
                    waiter.set_result(None)

            for fut in (playout, self._interrupt_fut, self._done_fut):
                fut.add_done_callback(wake)
            await waiter  # no removal: the leak

    vendored = load("vendored")
    return Subject(
        name=CONTROL,
        module_file=__file__,
        version=vendored.version,
        classes=subjects.vendored(LeakySpeechHandle, name=CONTROL),
        has_flag=True,
    )
