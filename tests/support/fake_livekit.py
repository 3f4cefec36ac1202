"""Importable stand-ins for livekit-agents, for the ``verify`` tests: a directory to put on
``PYTHONPATH`` holding ``livekit/agents/voice/{speech_handle,events}.py`` with the given sources
and a ``livekit_agents-X.dist-info`` that says release X. Nothing else of livekit is there."""

from __future__ import annotations

from pathlib import Path

HANDLE = """
class SpeechHandle:
    @staticmethod
    def create(allow_interruptions=True):
        {create}

    def interrupt(self, force=False): ...
    def done(self): ...
    def interrupted(self): ...
    async def wait_for_playout(self): ...
    def _authorize_generation(self): ...
    def _mark_generation_done(self): ...
    def _mark_done(self): ...
    async def _wait_for_generation(self, step_idx=-1): ...
"""

CONTEXT = """
class RunContext:
    def __init__(self, *, speech_handle, session, function_call):
        self._speech_handle = speech_handle
{wait}
"""

WAIT = """
    async def wait_for_playout(self):
        await self._speech_handle._wait_for_generation(self._initial_step_idx)
"""


def make(
    dest: Path, version: str, *, create: str = "return SpeechHandle()", wait: bool = True
) -> Path:
    """A fake release ``version`` in ``dest``; return ``dest``.

    ``create``: the body of ``SpeechHandle.create`` (e.g. a ``raise``, for a harness crash);
    ``wait``: whether ``RunContext`` has ``wait_for_playout`` (1.2.2 on; not 1.1.x).
    """
    voice = dest / "livekit" / "agents" / "voice"
    voice.mkdir(parents=True)
    (dest / "livekit" / "agents" / "__init__.py").write_text("", encoding="utf-8")
    (voice / "__init__.py").write_text("", encoding="utf-8")
    (voice / "speech_handle.py").write_text(HANDLE.format(create=create), encoding="utf-8")
    context = CONTEXT.format(wait=WAIT if wait else "")
    (voice / "events.py").write_text(context, encoding="utf-8")
    info = dest / f"livekit_agents-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: livekit-agents\nVersion: {version}\n", encoding="utf-8"
    )
    return dest
