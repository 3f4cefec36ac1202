"""The SDK's own RoomIO audio output, backed by a real ``rtc.AudioSource``, without a room.

``_ParticipantAudioOutput`` is what ``RoomIO`` gives an ``AgentSession``: frames go through a
native ``rtc.AudioSource`` whose queue paces them in real time, and ``clear_buffer()`` is
acknowledged by its own playout task with the position actually played. Publishing the track
is the only part that needs a room; this skips it (the source is drained all the same), so the
"acknowledging" output of the report's wall-clock row is the real component, not a fake.

The native source runs on the wall clock, so a scenario using it runs on a plain event loop.
"""

import asyncio
from collections.abc import Callable

from issue5359 import marker_of
from livekit import rtc
from livekit.agents.voice.room_io._output import _ParticipantAudioOutput


class RoomAudioOutput(_ParticipantAudioOutput):
    """RoomIO's audio output with the scenario's ears: whose audio starts, when it is cleared."""

    def __init__(
        self,
        *,
        sample_rate: int,
        clock: Callable[[], float],
        on_first_frame: Callable[[int, float], None],
        on_clear: Callable[[float], None],
    ) -> None:
        super().__init__(
            rtc.Room(),
            sample_rate=sample_rate,
            num_channels=1,
            track_publish_options=rtc.TrackPublishOptions(),
        )
        self._clock = clock
        self._on_clear = on_clear
        self._segment_marker = 0
        self._new_segment = True
        self.on("playback_started", lambda _: on_first_frame(self._segment_marker, clock()))

    def start_without_room(self) -> None:
        """What ``start()`` does but publishing: the forwarding task, and no subscriber to await."""
        self._subscribed_fut.set_result(None)
        self._forwarding_task = asyncio.create_task(self._forward_audio())

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        if self._new_segment:
            self._new_segment = False
            self._segment_marker = marker_of(frame)
        await super().capture_frame(frame)

    def flush(self) -> None:
        self._new_segment = True
        super().flush()

    def clear_buffer(self) -> None:
        self._on_clear(self._clock())
        self._new_segment = True
        super().clear_buffer()
