"""The scenario of livekit/agents#5359 in a real ``AgentSession``, on a virtual clock.

No room, no network, no model: on the pipeline path a scripted LLM and a TTS that makes
constant, near-silent PCM; on the realtime path (the original report's) a realtime model of our
own (fake_realtime.py) that speaks audio and text itself, and sends the function call after the
message (``realtime``, OpenAI's order) or while the audio is still streaming
(``realtime-streaming``). The audio output plays in (virtual) real time. The scenario is the
user's report:

1. the user asks for a report; the model says a preamble and calls ``run_report``, whose body
   awaits ``ctx.wait_for_playout()`` before doing its work;
2. while the preamble plays, the app calls ``session.interrupt(force=True)`` and
   ``session.generate_reply(user_input="Actually, never mind, do something else!")``;
3. we watch for ``OBSERVE_FOR`` virtual seconds and record when each thing happened.

Two audio outputs: one that acknowledges ``clear_buffer()`` at once (reports the cut segment
finished, like the room's audio output), and one that never acknowledges it on its own (like an
avatar or datastream output whose acknowledgement never comes).

Everything runs in a fresh ``looptime`` event loop starting at 0.0: every ``asyncio.sleep`` and
timer (the SDK's 5 s interruption timeout included) costs no wall time, and every time recorded
here is loop time, deterministic from run to run; except for the ``roomio`` output (RoomIO's own,
on a real ``rtc.AudioSource``: room_output.py), whose native source runs on the wall clock, so
that run uses a plain loop. This module imports ``livekit.agents`` and works with releases
1.2.2 to 1.8.9; it bridges their API differences itself.
"""

import asyncio
import collections
import contextlib
import copy
import inspect
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, Literal

import looptime
from fake_realtime import FakeRealtimeModel, Hooks, Order, Script
from livekit import rtc
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    Agent,
    AgentSession,
    APIConnectOptions,
    RunContext,
    function_tool,
    llm,
    tts,
)
from livekit.agents.voice import io, speech_handle

OutputKind = Literal["acknowledging", "non-acknowledging", "roomio"]
"""``roomio``: RoomIO's own output on a real ``rtc.AudioSource`` (wall clock, room_output.py)."""
OUTPUTS: tuple[OutputKind, ...] = ("acknowledging", "non-acknowledging")
PathKind = Literal["pipeline", "realtime", "realtime-streaming"]
"""The SDK's path: scripted LLM + TTS, or a realtime model (fake_realtime.py) in either order."""
PATHS: tuple[PathKind, ...] = ("pipeline", "realtime", "realtime-streaming")
REALTIME_ORDER: dict[PathKind, Order] = {
    "realtime": "after-message",
    "realtime-streaming": "while-streaming",
}

FIRST_INPUT = "Please run the quarterly report."
PREAMBLE = "Sure, let me run that for you now."
SECOND_INPUT = "Actually, never mind, do something else!"
SECOND_REPLY = "Okay, doing something else instead."
TOOL_REPLY = "The report is running."

TOOL_NAME = "run_report"
CALL_ID = "call_run_report_1"

SAMPLE_RATE = 16_000
SECONDS_PER_CHAR = 0.06  # the preamble lasts about 2 s
LLM_LATENCY = 0.05
TTS_LATENCY = 0.05
INTERRUPT_AFTER = 0.5  # seconds of preamble heard before the app interrupts
OBSERVE_FOR = 15.0  # virtual seconds watched after the interrupt (the SDK's timeout is 5 s)
CLOSE_TIMEOUT = 10.0

RELEASE = version("livekit-agents")
PATCHED = hasattr(speech_handle, "SpeechInterruptedError")
INTERRUPTED_ERROR: type[BaseException] | None = getattr(
    speech_handle, "SpeechInterruptedError", None
)
# the speech's forced teardown after an interruption: 1.3.7 on; before, none (it waits forever)
INTERRUPTION_TIMEOUT: float | None = getattr(speech_handle, "INTERRUPTION_TIMEOUT", None)
TIMEOUT_LOG = "speech not done in time after interruption"


def release_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3])


# --- the record -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one run of the scenario did, in loop seconds (``None``: did not happen)."""

    output: OutputKind
    path: PathKind = "pipeline"
    release: str = RELEASE
    patched: bool = PATCHED
    interrupted_at: float | None = None
    tool_started_at: float | None = None
    wait_ended_at: float | None = None
    wait_raised: str | None = None
    """The class name of what ``ctx.wait_for_playout()`` raised, ``None`` if it returned."""
    wait_raised_interrupted_error: bool = False
    """It was the installed ``SpeechInterruptedError``, a ``StopResponse``."""
    wait_error_speech_id: str | None = None
    code_after_wait_ran_at: float | None = None
    tool_finished_at: float | None = None
    tool_result: str | None = None
    speech1_id: str = ""
    speech1_done_at: float | None = None
    await_handle_returned_at: float | None = None
    await_handle_saw_done: bool | None = None
    handle_wait_returned_at: float | None = None
    handle_wait_saw_done: bool | None = None
    raising_wait_ended_at: float | None = None
    """Patched only: ``handle.wait_for_playout(raise_on_interrupt=True)`` of the speech."""
    raising_wait_raised: str | None = None
    speech2_done_at: float | None = None
    reply2_llm_called_at: float | None = None
    reply2_first_frame_at: float | None = None
    clear_buffer_calls: list[float] = field(default_factory=list)
    scheduling_paused_seen: list[float] = field(default_factory=list)
    llm_calls: list[list[tuple[str, str, str]]] = field(default_factory=list)
    """Each LLM call's chat context: (type, role or call id, text) per item."""
    history: list[tuple[str, str, str]] = field(default_factory=list)
    """The session's chat history at the end of the observation window."""
    records: list[tuple[float, int, str, str]] = field(default_factory=list)
    """SDK log records at WARNING or above: (time, level, logger, message)."""
    model_interrupts: list[tuple[float, bool]] = field(default_factory=list)
    """Realtime: each ``RealtimeSession.interrupt()`` (time, a response was still generating)."""
    truncates: list[tuple[float, int, str]] = field(default_factory=list)
    """Realtime: each ``RealtimeSession.truncate()`` (time, audio_end_ms, transcript)."""
    model_items: list[tuple[str, str, str]] = field(default_factory=list)
    """Realtime: the model's own copy of the conversation at the end of the window."""
    closed_cleanly: bool = False
    """Whether ``session.aclose()`` finished within ``CLOSE_TIMEOUT`` after the window."""
    teardown: list[str] = field(default_factory=list)
    """What happened while closing the session after the window (not part of the scenario)."""
    events: list[tuple[float, str]] = field(default_factory=list)

    def since_interrupt(self, at: float | None) -> float | None:
        if at is None or self.interrupted_at is None:
            return None
        return round(at - self.interrupted_at, 6)

    def errors(self) -> list[tuple[float, int, str, str]]:
        return [r for r in self.records if r[1] >= logging.ERROR]

    def timeline(self) -> str:
        return "\n".join(f"{t:8.3f}  {what}" for t, what in self.events)


# --- fakes ----------------------------------------------------------------------------------


class ScriptedLLM(llm.LLM[Any]):
    """Answers from a script keyed by the conversation's last item; records every call."""

    def __init__(self, on_call: Callable[[llm.ChatContext], None]) -> None:
        super().__init__()
        self._on_call = on_call

    @property
    def model(self) -> str:
        return "scripted"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[Any] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        **_: Any,
    ) -> llm.LLMStream:
        self._on_call(chat_ctx)
        return _ScriptedStream(
            self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options
        )


def _last_item(chat_ctx: llm.ChatContext) -> Any:
    items = [i for i in chat_ctx.items if getattr(i, "role", None) not in ("system", "developer")]
    return items[-1] if items else None


def script_reply(chat_ctx: llm.ChatContext) -> tuple[str, bool]:
    """The one script both paths answer from: (text, whether to call the tool)."""
    last = _last_item(chat_ctx)
    if last is not None and last.type == "message" and last.text_content == FIRST_INPUT:
        return PREAMBLE, True
    if last is not None and last.type == "message" and last.text_content == SECOND_INPUT:
        return SECOND_REPLY, False
    if last is not None and last.type == "function_call_output":
        return TOOL_REPLY, False
    return "", False


def _realtime_reply(chat_ctx: llm.ChatContext) -> tuple[str, llm.FunctionCall | None]:
    text, call = script_reply(chat_ctx)
    return text, llm.FunctionCall(call_id=CALL_ID, name=TOOL_NAME, arguments="{}") if call else None


class _ScriptedStream(llm.LLMStream):
    async def _run(self) -> None:
        await asyncio.sleep(LLM_LATENCY)
        text, call = script_reply(self._chat_ctx)
        request_id = f"req_{id(self)}"
        for word in text.split(" "):
            delta = llm.ChoiceDelta(role="assistant", content=word + " ")
            self._event_ch.send_nowait(llm.ChatChunk(id=request_id, delta=delta))
        if call:
            tool_call = llm.FunctionToolCall(name=TOOL_NAME, arguments="{}", call_id=CALL_ID)
            delta = llm.ChoiceDelta(role="assistant", tool_calls=[tool_call])
            self._event_ch.send_nowait(llm.ChatChunk(id=request_id, delta=delta))


class MarkedTTS(tts.TTS[Any]):
    """Non-streaming TTS: ``SECONDS_PER_CHAR`` of constant PCM per character, after a latency.

    Every synthesis gets its own sample value (1, 2, ...), so the audio output can tell whose
    audio it is playing; ``texts[n - 1]`` is the text of synthesis ``n``.
    """

    def __init__(self) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=SAMPLE_RATE,
            num_channels=1,
        )
        self.texts: list[str] = []

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS, **_: Any
    ) -> tts.ChunkedStream:
        self.texts.append(text.strip())
        return _MarkedStream(
            tts=self, input_text=text, conn_options=conn_options, marker=len(self.texts)
        )


class _MarkedStream(tts.ChunkedStream):
    def __init__(self, *, marker: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._marker = marker

    async def _run(self, output_emitter: Any) -> None:
        await asyncio.sleep(TTS_LATENCY)
        output_emitter.initialize(
            request_id=f"tts_{self._marker}",
            sample_rate=SAMPLE_RATE,
            num_channels=1,
            mime_type="audio/pcm",
        )
        samples = round(len(self.input_text.strip()) * SECONDS_PER_CHAR * SAMPLE_RATE)
        output_emitter.push(self._marker.to_bytes(2, "little", signed=True) * samples)
        output_emitter.flush()


def marker_of(frame: rtc.AudioFrame) -> int:
    return int(memoryview(frame.data).cast("B").cast("h")[0]) if frame.samples_per_channel else 0


_HAS_CAPABILITIES = "capabilities" in inspect.signature(io.AudioOutput.__init__).parameters


@dataclass
class _Segment:
    pushed: float = 0.0
    position: float = 0.0
    flushed: bool = False
    cleared: bool = False
    started: bool = False
    marker: int = 0


class PlayingAudioOutput(io.AudioOutput):
    """An audio sink that plays what it is given in (loop) real time, segment after segment.

    ``acknowledges_clear=True``: ``clear_buffer()`` stops the audio and reports the cut segments
    finished at once (``interrupted=True``), as the room's audio output does.

    ``acknowledges_clear=False``: ``clear_buffer()`` stops the audio but reports nothing, as an
    avatar or datastream output whose acknowledgement never arrives. The cut segments are
    reported finished only when the next segment's audio arrives, so that the base class's
    segment count stays balanced and later replies can play out; the SDK sends that audio only
    after it has torn the interrupted speech down, so this late report frees nothing earlier.
    """

    def __init__(
        self,
        *,
        acknowledges_clear: bool,
        clock: Callable[[], float],
        on_first_frame: Callable[[int, float], None],
        on_clear: Callable[[float], None],
    ) -> None:
        kwargs: dict[str, Any] = {"label": f"playing({acknowledges_clear=})", "sample_rate": None}
        if _HAS_CAPABILITIES:
            kwargs["capabilities"] = getattr(io, "AudioOutputCapabilities")(pause=False)  # noqa: B009
        super().__init__(**kwargs)
        self._acks = acknowledges_clear
        self._clock = clock
        self._on_first_frame = on_first_frame
        self._on_clear = on_clear
        self._capturing: _Segment | None = None
        self._queue: collections.deque[_Segment] = collections.deque()
        self._unacknowledged: list[_Segment] = []
        self._wakeup = asyncio.Event()
        self._player: asyncio.Task[None] | None = None
        self._head_started_at: float | None = None  # when the segment playing now started

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        seg = self._capturing
        if seg is None:
            if self._unacknowledged:  # the late report, see the class docstring
                for stale in self._unacknowledged:
                    self.on_playback_finished(playback_position=stale.position, interrupted=True)
                self._unacknowledged.clear()
            seg = self._capturing = _Segment(marker=marker_of(frame))
            self._queue.append(seg)
        if seg.cleared:
            return
        seg.pushed += frame.duration
        self._wakeup.set()
        if self._player is None or self._player.done():
            self._player = asyncio.create_task(self._play(), name="PlayingAudioOutput._play")

    def flush(self) -> None:
        super().flush()
        if self._capturing is not None:
            self._capturing.flushed = True
            self._capturing = None
            self._wakeup.set()

    def clear_buffer(self) -> None:
        self._on_clear(self._clock())
        if self._player is not None:
            self._player.cancel()
            self._player = None
        cut = list(self._queue)
        self._queue.clear()
        for i, seg in enumerate(cut):
            if i == 0 and seg.started and self._head_started_at is not None:
                seg.position = min(seg.pushed, self._clock() - self._head_started_at)
            seg.cleared = True
        if self._acks:
            for seg in cut:
                self.on_playback_finished(playback_position=seg.position, interrupted=True)
        else:
            self._unacknowledged.extend(cut)

    async def _play(self) -> None:
        while self._queue:
            seg = self._queue[0]
            if not seg.started:
                seg.started = True
                self._head_started_at = self._clock()
                self._on_first_frame(seg.marker, self._clock())
                if hasattr(self, "on_playback_started"):
                    self.on_playback_started(created_at=time.time())
            if seg.position < seg.pushed:
                chunk = seg.pushed - seg.position
                await asyncio.sleep(chunk)
                seg.position += chunk
            elif seg.flushed:
                self._queue.popleft()
                self.on_playback_finished(playback_position=seg.position, interrupted=False)
            else:
                self._wakeup.clear()
                await self._wakeup.wait()


# --- the agent ------------------------------------------------------------------------------


class ReportAgent(Agent):
    def __init__(self, run: "_Run") -> None:
        super().__init__(instructions="You run reports.")
        self._run = run

    @function_tool
    async def run_report(self, context: RunContext[Any]) -> str:
        """Run the quarterly report."""
        run = self._run
        run.note("tool started")
        run.outcome.tool_started_at = run.now()
        run.tool_started.set()
        try:
            await context.wait_for_playout()
        except BaseException as e:
            run.outcome.wait_ended_at = run.now()
            run.outcome.wait_raised = type(e).__name__
            run.outcome.wait_raised_interrupted_error = INTERRUPTED_ERROR is not None and (
                isinstance(e, INTERRUPTED_ERROR) and isinstance(e, llm.StopResponse)
            )
            run.outcome.wait_error_speech_id = getattr(e, "speech_id", None)
            run.note(f"tool's wait raised {type(e).__name__}")
            raise
        run.outcome.wait_ended_at = run.now()
        run.note("tool's wait returned")
        # the tool's own work, which must not run once the user has moved on
        run.outcome.code_after_wait_ran_at = run.now()
        run.note("tool's code after the wait ran")
        run.outcome.tool_finished_at = run.now()
        run.outcome.tool_result = "report started"
        return "report started"


# --- the run --------------------------------------------------------------------------------


class _Capture(logging.Handler):
    """Keeps the SDK's records at WARNING and above, stamped with the loop's time."""

    def __init__(self, holder: "list[_Run]") -> None:
        super().__init__(logging.WARNING)
        self._holder = holder

    def emit(self, record: logging.LogRecord) -> None:
        if self._holder:
            run = self._holder[0]
            message = record.getMessage()
            run.outcome.records.append((run.now(), record.levelno, record.name, message))
            run.note(f"log {record.levelname}: {message}")


def _summary(items: list[Any]) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for item in items:
        if item.type == "message":
            out.append(("message", item.role, item.text_content or ""))
        elif item.type == "function_call":
            out.append(("function_call", item.call_id, item.name))
        elif item.type == "function_call_output":
            out.append(("function_call_output", item.call_id, str(item.output)))
        else:
            out.append((item.type, "", ""))
    return out


def _session_kwargs(llm_: Any, tts_: tts.TTS[Any] | None) -> dict[str, Any]:
    params = inspect.signature(AgentSession.__init__).parameters
    kwargs: dict[str, Any] = {"llm": llm_, "user_away_timeout": None}
    if tts_ is not None:
        kwargs["tts"] = tts_
    if "turn_handling" in params:  # newer releases: turn settings live in turn_handling
        kwargs["turn_handling"] = {"turn_detection": "manual"}
    else:
        kwargs["turn_detection"] = "manual"
    if "None" in str(params["vad"].annotation):  # releases that load a VAD unless vad=None
        kwargs["vad"] = None
    return kwargs


class _Run:
    def __init__(self, output: OutputKind, path: PathKind, observe_for: float) -> None:
        self.outcome = Outcome(output=output, path=path)
        self.observe_for = observe_for
        self.tool_started = asyncio.Event()
        self.preamble_playing = asyncio.Event()
        self.tts = MarkedTTS()
        self.realtime: FakeRealtimeModel | None = None
        if path != "pipeline":
            self.realtime = FakeRealtimeModel(
                script=Script(
                    respond=_realtime_reply,
                    latency=LLM_LATENCY,
                    seconds_per_char=SECONDS_PER_CHAR,
                    sample_rate=SAMPLE_RATE,
                ),
                hooks=Hooks(
                    on_generate=self.on_llm_call,
                    on_interrupt=self.on_model_interrupt,
                    on_truncate=self.on_truncate,
                ),
                order=REALTIME_ORDER[path],
            )
        self.texts = self.tts.texts if self.realtime is None else self.realtime.texts
        """``texts[n - 1]``: the text whose audio carries marker ``n``."""
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()  # 0.0 on the virtual clock
        self.snapshot = self.outcome

    def on_model_interrupt(self, generating: bool) -> None:
        self.note(f"model interrupt() ({'while generating' if generating else 'idle'})")
        self.outcome.model_interrupts.append((self.now(), generating))

    def on_truncate(self, message_id: str, audio_end_ms: int, transcript: str | None) -> None:
        self.note(f"model truncate({message_id}, audio_end_ms={audio_end_ms})")
        self.outcome.truncates.append((self.now(), audio_end_ms, transcript or ""))

    def now(self) -> float:
        return round(self.loop.time() - self.t0, 6)

    def note(self, what: str) -> None:
        self.outcome.events.append((self.now(), what))

    def on_llm_call(self, chat_ctx: llm.ChatContext) -> None:
        summary = _summary(list(chat_ctx.items))
        self.outcome.llm_calls.append(summary)
        last = _last_item(chat_ctx)
        self.note(f"LLM called after {_summary([last]) if last is not None else []}")
        if last is not None and last.type == "message" and last.text_content == SECOND_INPUT:
            self.outcome.reply2_llm_called_at = self.now()

    def on_first_frame(self, marker: int, at: float) -> None:
        text = self.texts[marker - 1] if 0 < marker <= len(self.texts) else "?"
        self.note(f"audio starts playing: {text!r}")
        if text == PREAMBLE:
            self.preamble_playing.set()
        elif text == SECOND_REPLY and self.outcome.reply2_first_frame_at is None:
            self.outcome.reply2_first_frame_at = at

    def on_clear(self, at: float) -> None:
        self.note("clear_buffer()")
        self.outcome.clear_buffer_calls.append(at)

    async def watch_scheduling(self, session: AgentSession[Any]) -> None:
        while True:
            activity = getattr(session, "_activity", None)
            if activity is not None and activity.scheduling_paused:  # a property since 1.0
                self.outcome.scheduling_paused_seen.append(self.now())
            await asyncio.sleep(0.01)

    async def main(self) -> Outcome:
        """Run the scenario; return the record as it stood at the end of the window."""
        out = self.outcome
        output: io.AudioOutput
        if out.output == "roomio":
            from room_output import RoomAudioOutput

            room_output = RoomAudioOutput(
                sample_rate=SAMPLE_RATE,
                clock=self.now,
                on_first_frame=self.on_first_frame,
                on_clear=self.on_clear,
            )
            room_output.start_without_room()
            output = room_output
        else:
            output = PlayingAudioOutput(
                acknowledges_clear=out.output == "acknowledging",
                clock=self.now,
                on_first_frame=self.on_first_frame,
                on_clear=self.on_clear,
            )
        if self.realtime is None:
            kwargs = _session_kwargs(ScriptedLLM(self.on_llm_call), self.tts)
        else:
            kwargs = _session_kwargs(self.realtime, None)
        session = AgentSession(**kwargs)
        session.output.audio = output
        await session.start(agent=ReportAgent(self))
        watcher = asyncio.create_task(self.watch_scheduling(session))
        try:
            await self._scenario(session)
        finally:
            out.history = _summary(list(session.history.items))
            if self.realtime is not None and self.realtime.sessions:
                out.model_items = _summary(list(self.realtime.sessions[-1].chat_ctx.items))
            if watcher.done():
                watcher.result()  # a broken watcher must not pass for "never paused"
            watcher.cancel()
            self.snapshot = copy.deepcopy(out)
            self.note("[teardown] session.aclose()")
            try:
                await asyncio.wait_for(session.aclose(), CLOSE_TIMEOUT)
                self.snapshot.closed_cleanly = True
            except asyncio.TimeoutError:
                self.note(f"[teardown] session.aclose() did not finish in {CLOSE_TIMEOUT} s")
        return self.snapshot

    async def _scenario(self, session: AgentSession[Any]) -> None:
        out = self.outcome
        handle1 = session.generate_reply(user_input=FIRST_INPUT)
        out.speech1_id = handle1.id
        handle1.add_done_callback(lambda _: self._speech1_done())
        await asyncio.wait_for(self.tool_started.wait(), 5)
        await asyncio.wait_for(self.preamble_playing.wait(), 5)
        await asyncio.sleep(INTERRUPT_AFTER)

        out.interrupted_at = self.now()
        self.note("session.interrupt(force=True); session.generate_reply(second input)")
        interrupt: Callable[..., object] = session.interrupt
        if "force" in inspect.signature(interrupt).parameters:
            interrupt(force=True)
        else:  # 1.2: no force; the speech allows interruptions anyway
            interrupt()
        handle2 = session.generate_reply(user_input=SECOND_INPUT)
        handle2.add_done_callback(lambda _: self._speech2_done())

        async def await_handle() -> None:
            await handle1
            out.await_handle_returned_at = self.now()
            out.await_handle_saw_done = handle1.done()

        async def handle_wait() -> None:
            await handle1.wait_for_playout()
            out.handle_wait_returned_at = self.now()
            out.handle_wait_saw_done = handle1.done()

        async def handle_wait_raising() -> None:  # the patch's opt-in
            try:
                await handle1.wait_for_playout(raise_on_interrupt=True)
            except Exception as e:  # recorded, not re-raised: nobody awaits this task
                out.raising_wait_raised = type(e).__name__
            out.raising_wait_ended_at = self.now()

        waiters = [asyncio.create_task(await_handle()), asyncio.create_task(handle_wait())]
        if PATCHED:
            waiters.append(asyncio.create_task(handle_wait_raising()))
        await asyncio.sleep(self.observe_for)
        for task in waiters:
            task.cancel()
        self.note("end of the observation window")

    def _speech1_done(self) -> None:
        self.outcome.speech1_done_at = self.now()
        self.note("interrupted speech done")

    def _speech2_done(self) -> None:
        self.outcome.speech2_done_at = self.now()
        self.note("second speech done")


@contextlib.contextmanager
def _sdk_logs(holder: "list[_Run]") -> Iterator[None]:
    """Capture the SDK's log records (tests/conftest.py quiets that logger to CRITICAL)."""
    handler = _Capture(holder)
    loggers = [logging.getLogger(name) for name in ("livekit.agents", "asyncio")]
    old_levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, old_levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def run_scenario(
    output: OutputKind, path: PathKind = "pipeline", observe_for: float = OBSERVE_FOR
) -> Outcome:
    """Run the scenario once, in a fresh loop, and return what happened.

    The loop is virtual (``looptime``) but for the ``roomio`` output, whose native audio
    source runs on the wall clock: that run's times are real seconds, with their spread.
    """
    wall = output == "roomio"
    loop = asyncio.new_event_loop() if wall else looptime.new_event_loop(start=0.0)
    holder: list[_Run] = []

    async def entry() -> Outcome:
        run = _Run(output, path, observe_for)
        holder.append(run)
        return await run.main()

    with _sdk_logs(holder):
        try:
            asyncio.set_event_loop(loop)
            outcome = loop.run_until_complete(entry())
        finally:
            _shutdown(loop)
    # what happened after the window (closing the session, cancelling what it left behind)
    live = holder[0].outcome
    outcome.teardown = [f"{t:8.3f}  {what}" for t, what in live.events[len(outcome.events) :]]
    return outcome


def _shutdown(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel whatever the SDK left running (a parked speech on releases with no timeout)."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=CLOSE_TIMEOUT))
    with contextlib.suppress(Exception):
        loop.run_until_complete(loop.shutdown_asyncgens())
    asyncio.set_event_loop(None)
    loop.close()
