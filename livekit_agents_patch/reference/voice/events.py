"""The part of upstream's ``RunContext`` that waits for a tool's playout, with the fix."""

from __future__ import annotations

from .speech_handle import SpeechHandle


class RunContext:
    def __init__(self, *, speech_handle: SpeechHandle) -> None:
        self._speech_handle = speech_handle
        self._initial_step_idx = speech_handle.num_steps - 1

    @property
    def speech_handle(self) -> SpeechHandle:
        return self._speech_handle

    async def wait_for_playout(self, *, raise_on_interrupt: bool = True) -> None:
        """Wait until the speech that preceded this tool call has finished playing out.

        Args:
            raise_on_interrupt: Raise if the speech is interrupted before that playout finished,
                so that the tool stops at once instead of running on as if it had been heard.
                With ``False`` this returns once the step is over, interrupted or not.

        Raises:
            SpeechInterruptedError: If ``raise_on_interrupt`` is set and the speech was
                interrupted before the playout finished. Left uncaught it ends the tool call
                quietly, with no reply.
        """
        if raise_on_interrupt:
            await self.speech_handle._wait_for_step_playout(self._initial_step_idx)
        else:
            await self.speech_handle._wait_for_generation(step_idx=self._initial_step_idx)
