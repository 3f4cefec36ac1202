"""The subjects scenarios run against: the vendored reference, or the installed livekit-agents."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from ..reference.voice import events, speech_handle


@dataclass(frozen=True)
class Classes:
    """A subject given by its ``SpeechHandle`` and ``RunContext`` classes."""

    name: str
    speech_handle: type[Any]
    run_context: type[Any]
    interrupted_error: type[BaseException]
    timeout: float | None
    upstream: bool = False
    """Upstream's constructors: ``SpeechHandle.create()``, ``RunContext(session=...)``."""

    def new_handle(self, allow_interruptions: bool) -> Any:
        if self.upstream:
            return self.speech_handle.create(allow_interruptions=allow_interruptions)
        return self.speech_handle(speech_id="speech_test", allow_interruptions=allow_interruptions)

    def new_run_context(self, handle: Any, step: int) -> Any:
        if self.upstream:
            # a tool's context; the wait uses only the handle and the step
            ctx = self.run_context(speech_handle=handle, session=_NoSession(), function_call=None)
        else:
            ctx = self.run_context(speech_handle=handle)
        ctx._initial_step_idx = step
        return ctx


def vendored(
    speech_handle_cls: type[Any] = speech_handle.SpeechHandle,
    run_context_cls: type[Any] = events.RunContext,
    name: str = "vendored reference",
) -> Classes:
    return Classes(
        name=name,
        speech_handle=speech_handle_cls,
        run_context=run_context_cls,
        interrupted_error=speech_handle.SpeechInterruptedError,
        timeout=speech_handle.INTERRUPTION_TIMEOUT,
    )


class _NoSession:
    """A session stand-in: RunContext's constructor reads a few of its attributes."""

    def __getattr__(self, name: str) -> None:
        return None


class NeverRaised(Exception):
    """Stands for ``SpeechInterruptedError`` on a stock install, which has none."""


_DRIVEN = {
    "speech_handle": (
        "create",
        "interrupt",
        "done",
        "interrupted",
        "wait_for_playout",
        "_authorize_generation",
        "_mark_generation_done",
        "_mark_done",
        "_wait_for_generation",
    ),
    "run_context": ("wait_for_playout",),
}
"""What the scenarios call on an upstream subject's classes."""


def lacking(subject: Classes) -> list[str]:
    """The methods the scenarios drive that ``subject`` does not have (an older release)."""
    if not subject.upstream:
        return []
    classes = {"speech_handle": subject.speech_handle, "run_context": subject.run_context}
    return [
        f"{classes[role].__name__}.{name}"
        for role, names in _DRIVEN.items()
        for name in names
        if not hasattr(classes[role], name)
    ]


def installed(state: str | None = None) -> Classes:
    """The livekit-agents importable here, patched or not.

    ``state`` names what its files are, as the tool judged them against the index (``pristine``,
    ``patched, revision 2``, ``foreign edit``); without it, the name says only whether the
    module defines ``SpeechInterruptedError``, which someone else's edit may do too."""
    from importlib.metadata import version

    handles = importlib.import_module("livekit.agents.voice.speech_handle")
    contexts = importlib.import_module("livekit.agents.voice.events")
    if state is None:
        has = hasattr(handles, "SpeechInterruptedError")
        state = "files not judged; " + ("has" if has else "no") + " SpeechInterruptedError"
    return Classes(
        name=f"livekit-agents {version('livekit-agents')} ({state}) at {handles.__file__}",
        speech_handle=handles.SpeechHandle,
        run_context=contexts.RunContext,
        interrupted_error=getattr(handles, "SpeechInterruptedError", NeverRaised),
        timeout=getattr(handles, "INTERRUPTION_TIMEOUT", None),
        upstream=True,
    )
