"""(1) Interrupt -> waiter resolved, with the speech's owner stuck (it never marks the step done).

A waiter task blocks in the wait (``ctx`` or ``handle``, see ``_subject``); a 10 ms ticker task
stands for the audio frames an agent's loop is busy with; the speech is interrupted
(``interrupt(force=True)``) and nothing else happens: the owner is stuck. Measured from just
before ``interrupt()`` to the waiter task's done callback:

* loop iterations (``BaseEventLoop._run_once`` calls) and virtual seconds, on a ``looptime``
  loop, which fast-forwards the 5 s ``INTERRUPTION_TIMEOUT`` of stock (deterministic);
* real seconds on a plain loop: stock sits out the 5 s timeout, so it runs ``--stock-runs``
  times (both waits at once, each on its own handle); the fix runs ``--runs`` times per wait.

Prints (or writes with ``--out``) one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from typing import Any

import _subject
import looptime

TICK = 0.010  # s: one audio frame


class Counter:
    """Counts the loop's iterations by wrapping its ``_run_once`` on the instance."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.n = 0
        original = loop._run_once  # type: ignore[attr-defined]

        def counted() -> None:
            self.n += 1
            original()

        loop._run_once = counted  # type: ignore[attr-defined]


async def _ticker() -> None:
    while True:
        await asyncio.sleep(TICK)


async def one(
    sub: _subject.Subject, apis: tuple[str, ...], loop: asyncio.AbstractEventLoop, counter: Counter
) -> dict[str, dict[str, Any]]:
    """Interrupt one handle per api at once; return each waiter's resolution."""
    ticker = loop.create_task(_ticker())
    handles = {api: sub.new_handle() for api in apis}
    waits = {api: sub.waiter(api, handles[api]) for api in apis}
    out: dict[str, dict[str, Any]] = {}
    waiters: dict[str, asyncio.Task[None]] = {}
    for api in apis:
        waiters[api] = loop.create_task(waits[api]())
    for _ in range(2):
        await asyncio.sleep(0)  # the waiters block, the ticker is armed
    assert not any(w.done() for w in waiters.values())

    start: dict[str, float] = {}

    def resolved(api: str) -> Any:
        def callback(task: asyncio.Task[None]) -> None:
            exc = None if task.cancelled() else task.exception()
            out[api] = {
                "iterations": counter.n - start["iterations"],
                "virtual_s": loop.time() - start["virtual"],
                "real_s": time.perf_counter() - start["real"],
                "outcome": "returned" if exc is None else f"raised {type(exc).__name__}",
            }

        return callback

    for api in apis:
        waiters[api].add_done_callback(resolved(api))
    start["iterations"] = counter.n
    start["virtual"] = loop.time()
    start["real"] = time.perf_counter()
    for api in apis:
        handles[api].interrupt(force=True)
    for api in apis:
        with contextlib.suppress(sub.interrupted_error):
            await waiters[api]
    ticker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ticker
    for handle in handles.values():
        handle._mark_done()  # the owner comes unstuck: cancels the timeout if still armed
    return out


def run(sub: _subject.Subject, apis: tuple[str, ...], virtual: bool) -> dict[str, dict[str, Any]]:
    loop: asyncio.AbstractEventLoop = (
        looptime.new_event_loop(start=0) if virtual else asyncio.new_event_loop()
    )
    counter = Counter(loop)
    try:
        return loop.run_until_complete(one(sub, apis, loop, counter))
    finally:
        loop.close()


def summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    reals = [s["real_s"] for s in samples]
    iters = [s["iterations"] for s in samples]
    return {
        "runs": len(samples),
        "real_s_median": statistics.median(reals),
        "real_s_min": min(reals),
        "real_s_max": max(reals),
        "iterations_median": statistics.median(iters),
        "outcomes": sorted({s["outcome"] for s in samples}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subject", choices=_subject.SUBJECTS, required=True)
    parser.add_argument("--runs", type=int, default=2000, help="real runs per wait (fixed)")
    parser.add_argument("--stock-runs", type=int, default=2, help="real runs of stock (5 s each)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    sub = _subject.load(args.subject)

    result: dict[str, Any] = {"subject": sub.name, "module": sub.module_file}
    for api in _subject.APIS:
        virtual = [run(sub, (api,), virtual=True)[api] for _ in range(3)]
        result[api] = {
            "virtual_s": statistics.median(v["virtual_s"] for v in virtual),
            "iterations_virtual": statistics.median(v["iterations"] for v in virtual),
            "outcome_virtual": virtual[0]["outcome"],
        }
    if sub.name == "stock":
        runs = [run(sub, _subject.APIS, virtual=False) for _ in range(args.stock_runs)]
        for api in _subject.APIS:
            result[api]["real"] = summary([r[api] for r in runs])
    else:
        for api in _subject.APIS:
            run(sub, (api,), virtual=False)  # warm-up
            result[api]["real"] = summary(
                [run(sub, (api,), virtual=False)[api] for _ in range(args.runs)]
            )
    _subject.emit(result, args.out)


if __name__ == "__main__":
    main()
