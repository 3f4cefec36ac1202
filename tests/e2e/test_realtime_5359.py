"""livekit/agents#5359 on the SDK's realtime-model path, as the original report has it.

The same scenario and contract as test_issue_5359.py, with a realtime model (fake_realtime.py)
instead of an LLM and a TTS: the model speaks the preamble (audio and text) and calls the tool
either after the message, as OpenAI orders it (``realtime``), or while the preamble's audio is
still being generated (``realtime-streaming``). Run with ``--expect patched`` or ``--expect
stock`` (the negative control). All releases the suite supports, 1.2.18 included: their
``RealtimeModel`` / ``RealtimeSession`` API is the same for what the scenario needs.
"""

from collections.abc import Callable
from typing import Any

import pytest
from issue5359 import (
    CALL_ID,
    INTERRUPTION_TIMEOUT,
    LLM_LATENCY,
    RELEASE,
    SECOND_INPUT,
    SECOND_REPLY,
    TIMEOUT_LOG,
    Outcome,
    OutputKind,
    PathKind,
)

Outcomes = Callable[[OutputKind, PathKind], Outcome]
ACK: OutputKind = "acknowledging"
NO_ACK: OutputKind = "non-acknowledging"
PROMPT = 0.05
"""How soon "at once" is, in loop seconds (the measured delay is 0.0)."""
HAS_TIMEOUT = INTERRUPTION_TIMEOUT is not None
NEVER_TORN_DOWN = (
    f"livekit-agents {RELEASE} has no interruption timeout (added in 1.3.7): with an output that "
    "never acknowledges clear_buffer() the interrupted realtime speech is never torn down, so "
    "the model is never asked for the next reply, stock and patched alike"
)
PATHS: tuple[PathKind, ...] = ("realtime", "realtime-streaming")


def _cases(no_ack_xfail: str | None = None) -> list[Any]:
    marks = [pytest.mark.xfail(strict=True, reason=no_ack_xfail)] if no_ack_xfail else []
    return [
        pytest.param(path, kind, id=f"{path}-{kind}", marks=marks if kind == NO_ACK else [])
        for path in PATHS
        for kind in (ACK, NO_ACK)
    ]


def _why(o: Outcome) -> str:
    return f"\nlivekit-agents {o.release}, {o.path}, {o.output} output; timeline:\n{o.timeline()}"


# --- the scenario did what it says ----------------------------------------------------------


@pytest.mark.parametrize(("path", "kind"), _cases())
def test_the_interrupt_lands_while_the_tool_waits_on_the_preamble(
    outcomes: Outcomes, path: PathKind, kind: OutputKind
) -> None:
    o = outcomes(kind, path)
    started = [t for t, e in o.events if "starts playing" in e]
    assert o.tool_started_at is not None and o.interrupted_at is not None, _why(o)
    assert o.tool_started_at < o.interrupted_at and started[0] < o.interrupted_at, _why(o)
    assert o.clear_buffer_calls and o.clear_buffer_calls[0] == o.interrupted_at, _why(o)
    # the SDK cancels the model's response; only the streaming order is still generating
    assert o.model_interrupts[0] == (o.interrupted_at, path == "realtime-streaming"), _why(o)


# --- the fix (--expect patched) -------------------------------------------------------------


@pytest.mark.expect("patched")
@pytest.mark.parametrize(("path", "kind"), _cases())
def test_tool_wait_raises_speech_interrupted_error_at_once(
    outcomes: Outcomes, path: PathKind, kind: OutputKind
) -> None:
    o = outcomes(kind, path)
    assert o.wait_raised == "SpeechInterruptedError", _why(o)
    assert o.wait_raised_interrupted_error and o.wait_error_speech_id == o.speech1_id, _why(o)
    waited = o.since_interrupt(o.wait_ended_at)
    assert waited is not None and 0 <= waited <= PROMPT, _why(o)


@pytest.mark.expect("patched")
@pytest.mark.parametrize(("path", "kind"), _cases())
def test_tool_code_after_the_wait_never_runs(
    outcomes: Outcomes, path: PathKind, kind: OutputKind
) -> None:
    o = outcomes(kind, path)
    assert o.code_after_wait_ran_at is None and o.tool_result is None, _why(o)


@pytest.mark.expect("patched")
@pytest.mark.parametrize(("path", "kind"), _cases())
def test_no_sdk_error_from_the_tool_abort(
    outcomes: Outcomes, path: PathKind, kind: OutputKind
) -> None:
    """Any ERROR record but the non-acknowledging output's own timeout is a failure."""
    o = outcomes(kind, path)
    errors = [r for r in o.errors() if not (kind == NO_ACK and TIMEOUT_LOG in r[3])]
    assert errors == [], _why(o)


# --- the negative control (--expect stock) --------------------------------------------------


@pytest.mark.expect("stock")
@pytest.mark.parametrize("path", PATHS)
def test_stock_tool_runs_on_at_once_with_an_acknowledging_output(
    outcomes: Outcomes, path: PathKind
) -> None:
    o = outcomes(ACK, path)
    assert o.wait_raised is None, _why(o)
    assert o.since_interrupt(o.wait_ended_at) == 0, _why(o)
    assert o.code_after_wait_ran_at == o.wait_ended_at, _why(o)
    assert o.tool_result == "report started", _why(o)


@pytest.mark.expect("stock")
@pytest.mark.parametrize("path", PATHS)
def test_stock_tool_waits_for_the_timeout_then_runs_on(outcomes: Outcomes, path: PathKind) -> None:
    """1.3.7 on: the tool hangs INTERRUPTION_TIMEOUT (5 s), then runs on; before: forever."""
    o = outcomes(NO_ACK, path)
    assert o.wait_raised is None, _why(o)
    if HAS_TIMEOUT:
        assert o.since_interrupt(o.wait_ended_at) == INTERRUPTION_TIMEOUT, _why(o)
        assert o.code_after_wait_ran_at == o.wait_ended_at, _why(o)
        assert o.tool_result == "report started", _why(o)
    else:
        assert o.wait_ended_at is None and o.code_after_wait_ran_at is None, _why(o)


# --- what holds stock and patched alike -----------------------------------------------------


@pytest.mark.parametrize(("path", "kind"), _cases())
def test_teardown_still_waits_for_the_output(
    outcomes: Outcomes, path: PathKind, kind: OutputKind
) -> None:
    """The interrupted speech is done once its audio stopped: at once if the output says so."""
    o = outcomes(kind, path)
    done = o.since_interrupt(o.speech1_done_at)
    if kind == ACK:
        assert done == 0, _why(o)
    elif HAS_TIMEOUT:
        assert done == INTERRUPTION_TIMEOUT, _why(o)
        assert [t for t, _, _, m in o.errors() if TIMEOUT_LOG in m] == [o.speech1_done_at], _why(o)
    else:
        assert done is None and not o.closed_cleanly, _why(o)


@pytest.mark.parametrize(("path", "kind"), _cases())
def test_handle_waits_return_only_once_the_speech_is_done(
    outcomes: Outcomes, path: PathKind, kind: OutputKind
) -> None:
    """The maintainers' invariant: ``SpeechHandle.wait_for_playout()`` means audio stopped."""
    o = outcomes(kind, path)
    assert o.await_handle_returned_at == o.speech1_done_at, _why(o)
    assert o.handle_wait_returned_at == o.speech1_done_at, _why(o)
    if o.speech1_done_at is not None:
        assert o.await_handle_saw_done and o.handle_wait_saw_done, _why(o)


@pytest.mark.parametrize(("path", "kind"), _cases())
def test_truncate_is_sent_only_when_the_output_acknowledges(
    outcomes: Outcomes, path: PathKind, kind: OutputKind
) -> None:
    """With an acknowledging output the model learns what was heard; without, it never does
    (the teardown is forced): the model's copy keeps the whole preamble as if heard."""
    o = outcomes(kind, path)
    if kind == ACK:
        assert len(o.truncates) == 1, _why(o)
        at, audio_end_ms, _ = o.truncates[0]
        heard = [t for t, e in o.events if "starts playing" in e][0]
        assert at == o.interrupted_at, _why(o)
        assert audio_end_ms == round((o.interrupted_at - heard) * 1000), _why(o)
    else:
        assert o.truncates == [], _why(o)


@pytest.mark.parametrize(("path", "kind"), _cases(None if HAS_TIMEOUT else NEVER_TORN_DOWN))
def test_second_input_is_answered(outcomes: Outcomes, path: PathKind, kind: OutputKind) -> None:
    """Unlike the pipeline, the model is asked only once the interrupted speech is done."""
    o = outcomes(kind, path)
    assert o.speech1_done_at is not None, _why(o)
    assert o.reply2_llm_called_at == o.speech1_done_at, _why(o)
    assert o.reply2_first_frame_at == round(o.reply2_llm_called_at + LLM_LATENCY, 6), _why(o)
    assert o.speech2_done_at is not None, _why(o)
    history = [(kind_, who, text.strip()) for kind_, who, text in o.history]
    asked = history.index(("message", "user", SECOND_INPUT))
    assert ("message", "assistant", SECOND_REPLY) in history[asked + 1 :], _why(o)


@pytest.mark.parametrize(("path", "kind"), _cases())
def test_the_call_is_recorded_and_no_reply_for_the_tool(
    outcomes: Outcomes, path: PathKind, kind: OutputKind
) -> None:
    """The call is in the history; the model is never asked to answer the tool's result."""
    o = outcomes(kind, path)
    assert ("function_call", CALL_ID, "run_report") in o.history, _why(o)
    assert ("function_call", CALL_ID, "run_report") in o.model_items, _why(o)
    assert all(items[-1][0] == "message" for items in o.llm_calls), _why(o)
