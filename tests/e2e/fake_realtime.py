"""A realtime model of our own for the #5359 scenario: the SDK's realtime path, no network.

It drives ``llm.RealtimeModel`` / ``llm.RealtimeSession`` the way the SDK expects a provider to
(read from ``voice/agent_activity.py`` of 1.2.18 and 1.3.12 and ``voice/generation.py`` of
1.8.x): ``generate_reply()`` resolves to a ``GenerationCreatedEvent`` whose message stream
carries one ``MessageGeneration`` (text and audio) and whose function stream carries the tool
call; ``interrupt()`` cancels a response still being generated (its streams end, as OpenAI's
``response.done`` with status ``cancelled`` ends them in the plugin); ``truncate()`` and
``update_chat_ctx()`` change the model's own copy of the conversation, which the model keeps
the way a server does (the assistant message and the function call it generated are in it).

Two orders of the response, as ``order`` says:

- ``"after-message"``: OpenAI's order. The message's text and all its audio come first (a model
  generates faster than real time: ten times here, so the audio output starts playing while
  the rest arrives, as over a real connection), then the function call item, then the
  response ends.
- ``"while-streaming"``: the function call arrives after the first audio frame, while the rest
  of the audio is still being generated (twice as fast as it plays, so the output holds
  unplayed audio, as it would); the response is still open when the app interrupts.

Every response's audio is constant PCM whose sample value is the response's number (1, 2, ...),
so that an audio output can tell whose audio it plays: ``texts[n - 1]`` is response ``n``'s text.
"""

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any, Literal

from livekit import rtc
from livekit.agents import NOT_GIVEN, llm, utils

Order = Literal["after-message", "while-streaming"]
ORDERS: tuple[Order, ...] = ("after-message", "while-streaming")

FRAME = 0.1
"""Seconds of audio per frame the model sends."""
SPEEDUP: dict[Order, float] = {"after-message": 10.0, "while-streaming": 2.0}
"""How many times faster than it plays the model generates audio, per order."""


@dataclasses.dataclass
class Script:
    """What the model answers: ``respond(chat_ctx)`` gives the text and the tool call, if any."""

    respond: Callable[[llm.ChatContext], tuple[str, llm.FunctionCall | None]]
    latency: float
    seconds_per_char: float
    sample_rate: int


@dataclasses.dataclass
class Hooks:
    """The scenario's ears: called when the model is asked, interrupted or truncated."""

    on_generate: Callable[[llm.ChatContext], None]
    on_interrupt: Callable[[bool], None]
    """Called with whether a response was still being generated."""
    on_truncate: Callable[[str, int, str | None], None]
    """(message id, audio_end_ms, transcript)."""


def _capabilities() -> llm.RealtimeCapabilities:
    """OpenAI's: truncation, no server turn detection here (the scenario drives turns)."""
    names = {f.name for f in dataclasses.fields(llm.RealtimeCapabilities)}
    wanted: dict[str, bool] = {
        "message_truncation": True,
        "turn_detection": False,
        "user_transcription": False,
        "auto_tool_reply_generation": False,
        "audio_output": True,
        "manual_function_calls": True,
        # 1.8.x: the session accepts chat context, instructions and tool updates
        "mutable_chat_context": True,
        "mutable_instructions": True,
        "mutable_tools": True,
    }
    return llm.RealtimeCapabilities(**{k: v for k, v in wanted.items() if k in names})


class FakeRealtimeModel(llm.RealtimeModel):
    def __init__(self, *, script: Script, hooks: Hooks, order: Order) -> None:
        super().__init__(capabilities=_capabilities())
        self.script = script
        self.hooks = hooks
        self.order = order
        self.texts: list[str] = []
        self.sessions: list[FakeRealtimeSession] = []

    @property
    def model(self) -> str:
        return "fake-realtime"

    def session(self, **_: Any) -> "FakeRealtimeSession":
        session = FakeRealtimeSession(self)
        self.sessions.append(session)
        return session

    async def aclose(self) -> None:
        for session in self.sessions:
            await session.aclose()


@dataclasses.dataclass
class _Response:
    message_ch: "utils.aio.Chan[llm.MessageGeneration]"
    function_ch: "utils.aio.Chan[llm.FunctionCall]"
    text_ch: "utils.aio.Chan[str]"
    audio_ch: "utils.aio.Chan[rtc.AudioFrame]"
    task: "asyncio.Task[None] | None" = None

    def end(self) -> None:
        for ch in (self.text_ch, self.audio_ch, self.function_ch, self.message_ch):
            if not ch.closed:
                ch.close()


class FakeRealtimeSession(llm.RealtimeSession):
    def __init__(self, model: FakeRealtimeModel) -> None:
        super().__init__(model)
        self._model = model
        self._chat_ctx = llm.ChatContext.empty()
        self._tools = llm.ToolContext.empty()
        self._responses: list[_Response] = []

    @property
    def chat_ctx(self) -> llm.ChatContext:
        return self._chat_ctx.copy()

    @property
    def tools(self) -> llm.ToolContext:
        return self._tools.copy()

    async def update_instructions(self, instructions: str) -> None:
        pass

    async def update_chat_ctx(self, chat_ctx: llm.ChatContext) -> None:
        self._chat_ctx = chat_ctx.copy()

    async def update_tools(self, tools: list[Any]) -> None:
        self._tools = llm.ToolContext(tools)

    def update_options(self, **_: Any) -> None:
        pass

    def push_audio(self, frame: rtc.AudioFrame) -> None:
        pass

    def push_video(self, frame: rtc.VideoFrame) -> None:
        pass

    def commit_audio(self) -> None:
        pass

    def clear_audio(self) -> None:
        pass

    def generate_reply(self, **_: Any) -> "asyncio.Future[llm.GenerationCreatedEvent]":
        self._model.hooks.on_generate(self._chat_ctx)
        answer = self._model.script.respond(self._chat_ctx)  # the context at response.create
        fut: asyncio.Future[llm.GenerationCreatedEvent] = asyncio.get_running_loop().create_future()
        response = _Response(
            message_ch=utils.aio.Chan(),
            function_ch=utils.aio.Chan(),
            text_ch=utils.aio.Chan(),
            audio_ch=utils.aio.Chan(),
        )
        self._responses.append(response)
        response.task = asyncio.create_task(
            self._respond(response, answer, fut), name="fake.respond"
        )
        return fut

    def interrupt(self) -> None:
        live = [r for r in self._responses if r.task is not None and not r.task.done()]
        self._model.hooks.on_interrupt(bool(live))
        for response in live:
            assert response.task is not None
            response.task.cancel()

    def truncate(
        self,
        *,
        message_id: str,
        modalities: list[Any],
        audio_end_ms: int,
        audio_transcript: Any = NOT_GIVEN,
    ) -> None:
        transcript = audio_transcript if isinstance(audio_transcript, str) else None
        self._model.hooks.on_truncate(message_id, audio_end_ms, transcript)
        for item in self._chat_ctx.items:
            if item.id == message_id and item.type == "message":
                item.content = [transcript or ""]

    async def aclose(self) -> None:
        for response in self._responses:
            if response.task is not None:
                response.task.cancel()
        await asyncio.gather(
            *(r.task for r in self._responses if r.task is not None), return_exceptions=True
        )

    async def _respond(
        self,
        response: _Response,
        answer: tuple[str, llm.FunctionCall | None],
        fut: "asyncio.Future[llm.GenerationCreatedEvent]",
    ) -> None:
        try:
            await self._generate(response, answer, fut)
        finally:
            response.end()  # a cancelled response ends its streams, as response.done does

    async def _generate(
        self,
        response: _Response,
        answer: tuple[str, llm.FunctionCall | None],
        fut: "asyncio.Future[llm.GenerationCreatedEvent]",
    ) -> None:
        script = self._model.script
        await asyncio.sleep(script.latency)
        text, call = answer
        number = len(self._model.texts) + 1
        self._model.texts.append(text)
        response_id = f"resp_{number}"
        message_id = f"item_msg_{number}"
        fut.set_result(
            llm.GenerationCreatedEvent(
                message_stream=response.message_ch,
                function_stream=response.function_ch,
                user_initiated=True,
                response_id=response_id,
            )
        )
        modalities: asyncio.Future[list[Literal["text", "audio"]]] = (
            asyncio.get_running_loop().create_future()
        )
        modalities.set_result(["audio", "text"])
        response.message_ch.send_nowait(
            llm.MessageGeneration(
                message_id=message_id,
                text_stream=response.text_ch,
                audio_stream=response.audio_ch,
                modalities=modalities,
            )
        )
        # the server's conversation holds what it generated, heard or not
        self._chat_ctx.items.append(
            llm.ChatMessage(role="assistant", content=[text], id=message_id)
        )
        for word in text.split(" "):
            response.text_ch.send_nowait(word + " ")
        frames = _frames(text, number, script)
        streaming = self._model.order == "while-streaming"
        for i, frame in enumerate(frames):
            response.audio_ch.send_nowait(frame)
            if streaming and i == 0 and call is not None:
                self._send_call(response, call)
            await asyncio.sleep(FRAME / SPEEDUP[self._model.order])
        response.text_ch.close()
        response.audio_ch.close()
        if not streaming and call is not None:
            self._send_call(response, call)
        response.end()

    def _send_call(self, response: _Response, call: llm.FunctionCall) -> None:
        self._chat_ctx.items.append(call.model_copy())
        response.function_ch.send_nowait(call)


def _frames(text: str, marker: int, script: Script) -> list[rtc.AudioFrame]:
    total = round(len(text.strip()) * script.seconds_per_char * script.sample_rate)
    per_frame = round(FRAME * script.sample_rate)
    frames: list[rtc.AudioFrame] = []
    for start in range(0, total, per_frame):
        samples = min(per_frame, total - start)
        frames.append(
            rtc.AudioFrame(
                data=marker.to_bytes(2, "little", signed=True) * samples,
                sample_rate=script.sample_rate,
                num_channels=1,
                samples_per_channel=samples,
            )
        )
    return frames
