"""pyperf benchmarks of the playout waits: the hot path (2) and the scaling (4).

One invocation measures one benchmark (``--bench``) of one subject (``--subject``); the driver,
``bench/run.py``, interleaves stock, patched and vendored invocations of the same benchmark and
appends them to one pyperf JSON file per subject, so the medians it compares were taken side by
side. Every value is the time of one cycle (pyperf divides by the loop count).

Benchmarks (``API`` is ``ctx`` or ``handle``, see ``_subject``):

``hot.API.played``
    (a) the wait on a step (or speech) that already played: one ``await`` of the wait.
``hot.API.completes``
    (b) the wait blocks, then the owner marks the step (speech) done: ``call_soon`` of the
    owner's transition, the wait, the wake-up. The handle in its pre-cycle state is prepared
    outside the timed part.
``hot.API.cancelled``
    (c) a waiter task blocks on a step that never ends, and is cancelled: create the task, let
    it block (``sleep(0)``), cancel it, await it.
``scale.ENDING.N``
    N waiter tasks on one handle's step (``ctx``), created, blocked, then ended by the step
    completing (``completes``), by their cancellation (``cancelled``) or by an interrupt
    (``interrupted``; not for stock, whose waiters stay blocked 5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _subject
import pyperf  # type: ignore[import-untyped]

SCALE_N = (1, 10, 100, 1000)
SCALE_ENDINGS = ("completes", "cancelled", "interrupted")


def benchmarks(subject: str) -> list[str]:
    """All benchmark names, in the order the driver runs them; stock has no interrupted scale."""
    names = [
        f"hot.{api}.{kind}"
        for kind in ("played", "completes", "cancelled")
        for api in _subject.APIS
    ]
    for ending in SCALE_ENDINGS:
        if ending == "interrupted" and subject == "stock":
            continue
        names += [f"scale.{ending}.{n}" for n in SCALE_N]
    return names


def loops_for(bench: str) -> int:
    """A fixed loop count (no calibration worker) giving values of roughly 20 to 60 ms."""
    kind = bench.split(".")
    if kind[0] == "hot":
        return {"played": 20_000, "completes": 4_000, "cancelled": 2_000}[kind[2]]
    return max(2, 2_000 // int(kind[2]))


def _run(body: Callable[[Any, asyncio.AbstractEventLoop], Awaitable[float]], sub: Any) -> float:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(body(sub, loop))
    finally:
        loop.close()


def hot(api: str, kind: str, loops: int) -> Callable[[Any, asyncio.AbstractEventLoop], Any]:
    async def played(sub: _subject.Subject, loop: asyncio.AbstractEventLoop) -> float:
        handle = sub.new_handle()
        wait = sub.waiter(api, handle)
        if api == "ctx":
            handle._mark_generation_done()
        else:
            handle._mark_done()
        await wait()  # warm every code path once
        t0 = time.perf_counter()
        for _ in range(loops):
            await wait()
        return time.perf_counter() - t0

    async def completes(sub: _subject.Subject, loop: asyncio.AbstractEventLoop) -> float:
        total = 0.0
        handle = sub.new_handle()
        wait = sub.waiter(api, handle)
        for _ in range(loops):
            if api == "ctx":
                # one handle, a fresh step 0 per cycle (the list does not grow)
                handle._generations.clear()
                handle._authorize_generation()
                done = handle._mark_generation_done
            else:
                # the speech's done future is one-shot: a fresh handle per cycle
                handle = sub.new_handle()
                wait = sub.waiter(api, handle)
                done = handle._mark_done
            t0 = time.perf_counter()
            loop.call_soon(done)
            await wait()
            total += time.perf_counter() - t0
        return total

    async def cancelled(sub: _subject.Subject, loop: asyncio.AbstractEventLoop) -> float:
        handle = sub.new_handle()  # one handle; its step and speech never end
        wait = sub.waiter(api, handle)
        t0 = time.perf_counter()
        for _ in range(loops):
            task = loop.create_task(wait())
            await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return time.perf_counter() - t0

    return {"played": played, "completes": completes, "cancelled": cancelled}[kind]


def scale(ending: str, n: int, loops: int) -> Callable[[Any, asyncio.AbstractEventLoop], Any]:
    async def body(sub: _subject.Subject, loop: asyncio.AbstractEventLoop) -> float:
        total = 0.0
        handle = sub.new_handle()
        ctx = sub.new_ctx(handle)
        for _ in range(loops):
            if ending == "completes":
                handle._generations.clear()
                handle._authorize_generation()
            elif ending == "interrupted":
                handle = sub.new_handle()
                ctx = sub.new_ctx(handle)
            t0 = time.perf_counter()
            tasks = [loop.create_task(ctx.wait_for_playout()) for _ in range(n)]
            await asyncio.sleep(0)
            if ending == "completes":
                handle._mark_generation_done()
            elif ending == "interrupted":
                handle.interrupt(force=True)
            else:
                for task in tasks:
                    task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, sub.interrupted_error):
                    await task
            total += time.perf_counter() - t0
            if ending == "interrupted":
                handle._mark_done()  # the owner: cancels the 5 s timer
        return total

    return body


def make(bench: str) -> Callable[[Any, asyncio.AbstractEventLoop], Any]:
    parts = bench.split(".")
    loops = loops_for(bench)
    if parts[0] == "hot":
        return hot(parts[1], parts[2], loops)
    return scale(parts[1], int(parts[2]), loops)


def main() -> None:
    def add_args(cmd: list[str], args: argparse.Namespace) -> None:
        cmd.extend(("--subject", args.subject, "--bench", args.bench))

    runner = pyperf.Runner(add_cmdline_args=add_args)
    runner.argparser.add_argument("--subject", choices=_subject.SUBJECTS, required=True)
    runner.argparser.add_argument("--bench", required=True)
    args = runner.parse_args()
    name: str = args.bench
    body = make(name)
    state: dict[str, Any] = {}

    def time_func(loops: int) -> float:
        # imported in the worker only: the master process stays light
        if "sub" not in state:
            state["sub"] = _subject.load(args.subject)
        # each call runs ``loops`` cycles: pyperf's loop count is our cycle count
        assert loops == loops_for(name), (loops, name)
        return _run(body, state["sub"])

    runner.metadata["subject"] = args.subject
    runner.bench_time_func(name, time_func)


if __name__ == "__main__":
    main()
