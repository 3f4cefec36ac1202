"""``make e2e-report``: the #5359 scenario's timings, per release, package and audio output.

    python tests/e2e/report.py measure stock|patched OUT.json   # in a release's venv
    python tests/e2e/report.py render REPORT.md IN.json...      # anywhere (stdlib only)

``measure`` runs the scenario of ``issue5359.py`` once per audio output on the livekit-agents
importable here (checked to be stock or patched as told) and writes the times, in seconds from
the interrupt, as JSON. ``render`` turns those files into the markdown table.
"""

import json
import logging
import sys
from pathlib import Path
from typing import Any

NEVER = "never"


def measure(expect: str, path: Path) -> None:
    import issue5359

    state = "patched" if issue5359.PATCHED else "stock"
    if state != expect:
        sys.exit(f"expected a {expect} livekit-agents {issue5359.RELEASE}, found it {state}")
    rows: list[dict[str, Any]] = []
    for output in issue5359.OUTPUTS:
        o = issue5359.run_scenario(output)
        errors = [m for _, level, _, m in o.records if level >= logging.ERROR]
        rows.append(
            {
                "release": o.release,
                "package": state,
                "output": output,
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
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1) + "\n")


def _short(message: str) -> str:
    for known in (
        "speech not done in time after interruption",
        "exception occurred while executing tool",
    ):
        if message.startswith(known):
            return known
    return message.splitlines()[0][:80]


def _at(value: float | None) -> str:
    return NEVER if value is None else f"+{value:.3f}"


def _release_key(row: dict[str, Any]) -> tuple[int, ...]:
    return tuple(int(p) for p in str(row["release"]).split(".")[:3])


def render(out: Path, inputs: list[Path]) -> None:
    rows: list[dict[str, Any]] = []
    for path in inputs:
        rows += json.loads(path.read_text())
    rows.sort(key=lambda r: (_release_key(r), r["output"], r["package"] != "stock"))
    window = max((r["window"] for r in rows), default=0)
    lines = [
        "# livekit/agents#5359 end to end: timings",
        "",
        "Written by `make e2e-report` (`tests/e2e/report.py`): the scenario of",
        "`tests/e2e/issue5359.py` in a real `AgentSession` (no room, no network; scripted LLM,",
        "fake TTS, an audio output that plays in real time). The LLM says a ~2 s preamble and",
        "calls a tool that awaits `ctx.wait_for_playout()`; 0.5 s into the preamble the app",
        "calls `session.interrupt(force=True)` and `session.generate_reply(...)` with a new input.",
        "",
        "Seconds from the interrupt, on a virtual clock (`looptime`): exact and the same on every",
        f'run. "{NEVER}": not within the {window:g} s watched after the interrupt. The',
        "acknowledging output reports a cleared segment finished at once; the non-acknowledging",
        "one never does (as an avatar or datastream output whose acknowledgement never comes).",
        "",
        "| release | package | audio output | tool's wait ends | tool's code after the wait "
        "| interrupted speech done | second reply's first audio frame | SDK ERROR records |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["wait_ends"] is None:
            wait = NEVER
        else:
            how = f"raises `{r['wait_raised']}`" if r["wait_raised"] else "returns"
            wait = f"{_at(r['wait_ends'])} ({how})"
        if r["code_after_wait"] is not None:
            code = f"runs at {_at(r['code_after_wait'])}"
        else:
            code = "never runs" if r["wait_ends"] is not None else "never (still blocked)"
        errors = "; ".join(f'"{e}"' for e in r["errors"]) or "none"
        lines.append(
            f"| {r['release']} | {r['package']} | {r['output']} | {wait} | {code} "
            f"| {_at(r['speech_done'])} | {_at(r['reply2_first_frame'])} | {errors} |"
        )
    called = sorted({r["reply2_llm_called"] for r in rows}, key=lambda v: (v is None, v))
    latency = max((r["fake_latency"] for r in rows), default=0)
    lines += [
        "",
        "The reply to the new input is generated at once (its LLM call comes at",
        f"{' to '.join(_at(v) for v in called)} s in every row), but its audio plays only once the",
        "interrupted speech is torn down: the scheduler waits for that speech's generation.",
        f"With an acknowledging output that is +{latency:.3f} s, the fake LLM's and TTS's latency.",
        "Stock and patched differ only in the tool's two columns and, before 1.2.18, in the",
        "tool runner's ERROR record for the `SpeechInterruptedError` (a `StopResponse`) that",
        "ends the tool.",
    ]
    if any(r["speech_done"] is None for r in rows):
        lines += [
            "",
            f'"{NEVER}" for the interrupted speech: that release has no interruption timeout',
            "(added in 1.3.7), so with an output that never acknowledges `clear_buffer()` the",
            "speech is never torn down, the next reply never plays and `session.aclose()` does",
            "not finish, stock and patched alike.",
        ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "measure" and argv[1] in ("stock", "patched"):
        measure(argv[1], Path(argv[2]))
    elif len(argv) >= 3 and argv[0] == "render":
        render(Path(argv[1]), [Path(a) for a in argv[2:]])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
