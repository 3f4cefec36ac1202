"""``make e2e-report``: the #5359 scenario's timings, per release, package and audio output.

    python tests/e2e/report.py measure stock|patched OUT.json   # in a release's venv
    python tests/e2e/report.py measure-room stock|patched OUT.json   # wall clock, RoomIO output
    python tests/e2e/report.py render REPORT.md IN.json...      # anywhere (stdlib only)

``measure`` runs the scenario of ``issue5359.py`` once per SDK path (pipeline; realtime model,
the call after the message or while streaming) and audio output on the livekit-agents
importable here (checked to be stock or patched as told) and writes the times, in seconds from
the interrupt, as JSON. ``measure-room`` runs the realtime scenario ``ROOM_RUNS`` times with the
SDK's own RoomIO audio output on a real ``rtc.AudioSource`` (wall clock, so it keeps each time's
spread over the runs). ``render`` turns those files into the markdown tables.
"""

import json
import logging
import sys
from pathlib import Path
from typing import Any

NEVER = "never"
ROOM_RUNS = 3
ROOM_WINDOW = 3.0
"""Wall seconds watched after the interrupt: the acknowledging output is done by then."""
SPANNED = ("wait_ends", "code_after_wait", "speech_done", "reply2_llm_called", "reply2_first_frame")


def measure(expect: str, out_path: Path) -> None:
    import issue5359

    state = "patched" if issue5359.PATCHED else "stock"
    if state != expect:
        sys.exit(f"expected a {expect} livekit-agents {issue5359.RELEASE}, found it {state}")
    rows: list[dict[str, Any]] = []
    for path in issue5359.PATHS:
        for output in issue5359.OUTPUTS:
            rows.append(_row(issue5359.run_scenario(output, path), state))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(rows, indent=1) + "\n")


def measure_room(expect: str, out_path: Path) -> None:
    """The realtime scenario on RoomIO's output, ``ROOM_RUNS`` times: one row of spans."""
    import issue5359

    state = "patched" if issue5359.PATCHED else "stock"
    if state != expect:
        sys.exit(f"expected a {expect} livekit-agents {issue5359.RELEASE}, found it {state}")
    runs = [
        _row(issue5359.run_scenario("roomio", "realtime", ROOM_WINDOW), state)
        for _ in range(ROOM_RUNS)
    ]
    row = dict(runs[0], clock="wall", runs=ROOM_RUNS, window=ROOM_WINDOW)
    for key in SPANNED:
        values = [r[key] for r in runs]
        if any(v is None for v in values):
            if not all(v is None for v in values):
                sys.exit(f"{key}: happened in some runs only: {values}")
            continue
        row[key] = [min(values), max(values)]
    for key in ("wait_raised", "errors", "call_in_history", "call_in_model"):
        if any(r[key] != row[key] for r in runs):
            sys.exit(f"{key} differs between runs: {[r[key] for r in runs]}")
    sent = [r["truncates"] for r in runs]
    if any(len(t) != 1 for t in sent):
        sys.exit(f"expected one truncate() per run, found {sent}")
    row["truncates"] = [[[min(t[0][i] for t in sent), max(t[0][i] for t in sent)] for i in (0, 1)]]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps([row], indent=1) + "\n")


def _call_items(items: list[tuple[str, str, str]], call_id: str) -> str:
    kinds = [kind for kind, who, _ in items if who == call_id]
    named = {"function_call": "call", "function_call_output": "output"}
    return " + ".join(named.get(k, k) for k in kinds) or "none"


def _row(o: Any, state: str) -> dict[str, Any]:
    import issue5359

    errors = [m for _, level, _, m in o.records if level >= logging.ERROR]
    realtime = o.path != "pipeline"
    return {
        "release": o.release,
        "package": state,
        "path": o.path,
        "output": o.output,
        "wait_ends": o.since_interrupt(o.wait_ended_at),
        "wait_raised": o.wait_raised,
        "code_after_wait": o.since_interrupt(o.code_after_wait_ran_at),
        "speech_done": o.since_interrupt(o.speech1_done_at),
        "reply2_llm_called": o.since_interrupt(o.reply2_llm_called_at),
        "reply2_first_frame": o.since_interrupt(o.reply2_first_frame_at),
        "fake_latency": issue5359.LLM_LATENCY + issue5359.TTS_LATENCY,
        "errors": sorted({_short(m) for m in errors}),
        "closed_cleanly": o.closed_cleanly,
        "window": issue5359.OBSERVE_FOR,
        "call_in_history": _call_items(o.history, issue5359.CALL_ID),
        "call_in_model": _call_items(o.model_items, issue5359.CALL_ID) if realtime else None,
        "truncates": [[o.since_interrupt(at), ms] for at, ms, _ in o.truncates]
        if realtime
        else None,
    }


def _short(message: str) -> str:
    for known in (
        "speech not done in time after interruption",
        "exception occurred while executing tool",
    ):
        if message.startswith(known):
            return known
    return message.splitlines()[0][:80]


def _at(value: float | list[float] | None) -> str:
    if isinstance(value, list):  # a wall-clock span over the runs
        lo, hi = (f"+{v:.3f}" for v in value)
        return lo if lo == hi else f"{lo} to {hi}"
    return NEVER if value is None else f"+{value:.3f}"


def _release_key(row: dict[str, Any]) -> tuple[int, ...]:
    return tuple(int(p) for p in str(row["release"]).split(".")[:3])


PATH_ORDER = {"pipeline": 0, "realtime": 1, "realtime-streaming": 2}
PATH_NAMES = {
    "pipeline": "pipeline",
    "realtime": "realtime (call after message)",
    "realtime-streaming": "realtime (call while streaming)",
}


OUTPUT_NAMES = {"roomio": "RoomIO's (acknowledging)"}


def _wait(r: dict[str, Any]) -> str:
    if r["wait_ends"] is None:
        return NEVER
    how = f"raises `{r['wait_raised']}`" if r["wait_raised"] else "returns"
    return f"{_at(r['wait_ends'])} ({how})"


def _code(r: dict[str, Any]) -> str:
    if r["code_after_wait"] is not None:
        return f"runs at {_at(r['code_after_wait'])}"
    return "never runs" if r["wait_ends"] is not None else "never (still blocked)"


def _truncate(r: dict[str, Any]) -> str:
    if r.get("truncates") is None:
        return "n/a"
    if not r["truncates"]:
        return "never sent"
    return "; ".join(f"{_at(at)} ({_ms(ms)} ms heard)" for at, ms in r["truncates"])


def _ms(value: int | list[int]) -> str:
    if isinstance(value, list):
        return str(value[0]) if value[0] == value[1] else f"{value[0]} to {value[1]}"
    return str(value)


def _call(r: dict[str, Any]) -> str:
    model = r.get("call_in_model")
    return r["call_in_history"] + (f" / {model}" if model is not None else "")


def _line(r: dict[str, Any]) -> str:
    errors = "; ".join(f'"{e}"' for e in r["errors"]) or "none"
    return (
        f"| {r['release']} | {r['package']} | {PATH_NAMES.get(r['path'], r['path'])} "
        f"| {OUTPUT_NAMES.get(r['output'], r['output'])} | {_wait(r)} | {_code(r)} "
        f"| {_at(r['speech_done'])} "
        f"| {_at(r['reply2_llm_called'])} | {_at(r['reply2_first_frame'])} | {_call(r)} "
        f"| {_truncate(r)} | {errors} |"
    )


def render(out: Path, inputs: list[Path]) -> None:
    rows: list[dict[str, Any]] = []
    for path in inputs:
        rows += json.loads(path.read_text())
    for r in rows:
        r.setdefault("path", "pipeline")
    wall = [r for r in rows if r.get("clock") == "wall"]
    rows = [r for r in rows if r.get("clock") != "wall"]
    rows.sort(
        key=lambda r: (
            _release_key(r),
            r["output"],
            PATH_ORDER.get(r["path"], 9),
            r["package"] != "stock",
        )
    )
    window = max((r["window"] for r in rows), default=0)
    lines = [
        "# livekit/agents#5359 end to end: timings",
        "",
        "Written by `make e2e-report` (`tests/e2e/report.py`): the scenario of",
        "`tests/e2e/issue5359.py` in a real `AgentSession` (no room, no network), on both of the",
        "SDK's paths: the pipeline (a scripted LLM and a fake TTS) and a realtime model",
        "(`tests/e2e/fake_realtime.py`, speaking audio and text itself, as OpenAI's does), the",
        "latter with the function call after the message (OpenAI's order) or while the audio is",
        "still being generated. The model says a ~2 s preamble and calls a tool that awaits",
        "`ctx.wait_for_playout()`; 0.5 s after both the preamble's audio and the tool started, the",
        "app calls `session.interrupt(force=True)` and `session.generate_reply(...)` with a new",
        "input. The audio output plays in (virtual) real time.",
        "",
        "Seconds from the interrupt, on a virtual clock (`looptime`): exact and the same on every",
        f'run. "{NEVER}": not within the {window:g} s watched after the interrupt. The',
        "acknowledging output reports a cleared segment finished at once; the non-acknowledging",
        "one never does (as an avatar or datastream output whose acknowledgement never comes).",
        '"The call in the chat context": the items for the tool call in the session\'s history',
        "and, on the realtime path, in the model's own copy of the conversation.",
        "",
        "| release | package | path | audio output | tool's wait ends | tool's code after the "
        "wait | interrupted speech done | model asked for the second reply | its first audio "
        "frame | the call in the chat context (session / model) | `truncate()` | SDK ERROR "
        "records |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    head = lines[-2:]
    lines += [_line(r) for r in rows]
    pipeline = [r for r in rows if r["path"] == "pipeline"]
    called = sorted({r["reply2_llm_called"] for r in pipeline}, key=lambda v: (v is None, v))
    latency = max((r["fake_latency"] for r in rows), default=0)
    lines += [
        "",
        "Stock and patched differ only in the tool's two columns, on both paths: the patch frees",
        "the tool, and leaves when the interrupted speech is done to the audio output.",
        "",
        "On the pipeline the reply to the new input is generated at once (its LLM call comes at",
        f"{' to '.join(_at(v) for v in called)} s in every pipeline row), but its audio plays only",
        "once the interrupted speech is torn down: the scheduler waits for that speech's",
        f"generation. With an acknowledging output that is +{latency:.3f} s, the fake LLM's and",
        "TTS's latency. On the realtime path the model is asked for the second reply only once",
        "the interrupted speech releases the turn (the SDK's realtime reply task waits for the",
        "scheduler before it sends the input to the model): with a non-acknowledging output, at",
        "the interruption timeout. `truncate()` is sent only when the output acknowledges the",
        "cut; otherwise the model's copy of the conversation keeps the whole preamble as if it",
        "had been heard. Before 1.8 the realtime path records the call without its output, stock",
        "and patched alike.",
    ]
    if any(r["speech_done"] is None for r in rows):
        lines += [
            "",
            f'"{NEVER}" for the interrupted speech: that release has no interruption timeout',
            "(added in 1.3.7), so with an output that never acknowledges `clear_buffer()` the",
            "speech is never torn down, the next reply never plays and `session.aclose()` does",
            "not finish, stock and patched alike, on both paths.",
        ]
    if wall:
        runs = max(r["runs"] for r in wall)
        lines += [
            "",
            "## The acknowledging output as the SDK ships it",
            "",
            "The same realtime scenario (call after message) with `RoomIO`'s own audio output",
            "(`_ParticipantAudioOutput`, `tests/e2e/room_output.py`) on a real `rtc.AudioSource`,",
            "whose queue paces the frames; only publishing the track is skipped, so no room is",
            "needed. The native source runs on the wall clock: seconds from the interrupt, the",
            f"lowest to the highest of {runs} runs, watched {max(r['window'] for r in wall):g} s.",
            "It behaves as the fake acknowledging output of the table above does, to within a",
            "few milliseconds of scheduling; the model's first frame comes after its latency.",
            "",
            *head,
            *[
                _line(r)
                for r in sorted(wall, key=lambda r: (_release_key(r), r["package"] != "stock"))
            ],
        ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "measure" and argv[1] in ("stock", "patched"):
        measure(argv[1], Path(argv[2]))
    elif len(argv) == 3 and argv[0] == "measure-room" and argv[1] in ("stock", "patched"):
        measure_room(argv[1], Path(argv[2]))
    elif len(argv) >= 3 and argv[0] == "render":
        render(Path(argv[1]), [Path(a) for a in argv[2:]])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
