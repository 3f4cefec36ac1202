"""(3) Memory over many wait cycles: bytes retained, callbacks left on the handle, tasks pending.

For each wait (``ctx``, ``handle``; see ``_subject``) and each way a wait ends, in a fresh
process of its own, ``--cycles`` cycles run under ``tracemalloc`` after ``--warmup``
untraced-in-the-result cycles; each cycle starts a waiter task, lets it block, ends it, and
awaits it:

``completed``
    the owner marks the step done (``ctx``: ``_mark_generation_done`` on ONE long-lived handle
    whose speech never ends, its step list reset each cycle; ``handle``: ``_mark_done`` on a
    fresh handle, since the speech's done future is one-shot).
``interrupted``
    ``interrupt(force=True)`` on a fresh handle; the waiter is given three loop iterations to
    resolve (the fix raises); if it has not (stock), the owner marks the step done to release
    it. Callbacks are counted after the waiter ended and before the owner tears the handle down.
``cancelled``
    the waiter task is cancelled, on ONE long-lived handle whose step and speech never end: a
    callback left behind by a cancelled wait piles up there.

Reported: ``retained_bytes`` (traced memory after minus before, both after ``gc.collect()``),
``callbacks_left`` (callbacks on the handle's still-pending futures beyond those a fresh handle
has, summed over the cycle handles, or counted once at the end on the long-lived handle),
``tasks_pending`` (other tasks not done at the end) and, if anything was retained, the top
allocation sites of the growth.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from typing import Any

import _subject

ENDINGS = ("completed", "interrupted", "cancelled")
KINDS = tuple(f"{api}.{ending}" for api in _subject.APIS for ending in ENDINGS)
FRAMES = 1  # frames kept per traced allocation (more is much slower)
PARKED = 100  # other tasks alive on the loop during the cycles


def pending_callbacks(handle: Any, baseline: dict[str, int]) -> int:
    """Callbacks on the handle's pending futures, beyond a fresh handle's."""
    futs: dict[str, asyncio.Future[Any]] = {
        "interrupt": handle._interrupt_fut,
        "done": handle._done_fut,
    }
    for i, gen in enumerate(handle._generations):
        futs[f"gen{i}"] = gen
    return sum(
        _subject.callbacks(fut) - baseline.get(key, 0)
        for key, fut in futs.items()
        if not fut.done()
    )


def baseline_of(handle: Any) -> dict[str, int]:
    return {
        "interrupt": _subject.callbacks(handle._interrupt_fut),
        "done": _subject.callbacks(handle._done_fut),
        "gen0": _subject.callbacks(handle._generations[0]),
    }


class Kind:
    """One (api, ending) series of cycles, with its long-lived handle if it has one."""

    def __init__(self, sub: _subject.Subject, api: str, ending: str) -> None:
        self.sub = sub
        self.api = api
        self.ending = ending
        self.long_lived = ending == "cancelled" or (ending == "completed" and api == "ctx")
        self.handle: Any = sub.new_handle() if self.long_lived else None
        self.baseline = baseline_of(self.handle if self.long_lived else sub.new_handle())
        self.wait: Callable[[], Coroutine[Any, Any, None]] | None = (
            sub.waiter(api, self.handle) if self.long_lived else None
        )
        self.callbacks_left = 0

    async def cycle(self, loop: asyncio.AbstractEventLoop) -> None:
        sub = self.sub
        if self.long_lived:
            handle, wait = self.handle, self.wait
            assert wait is not None
            if self.ending == "completed":
                handle._generations.clear()
                handle._authorize_generation()
        else:
            handle = sub.new_handle()
            wait = sub.waiter(self.api, handle)
        task = loop.create_task(wait())
        await asyncio.sleep(0)
        assert not task.done()
        if self.ending == "completed":
            if self.api == "ctx":
                handle._mark_generation_done()
            else:
                handle._mark_done()
            await task
        elif self.ending == "cancelled":
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        else:
            handle.interrupt(force=True)
            for _ in range(3):
                await asyncio.sleep(0)
            if not task.done():  # stock: only the owner releases it
                handle._mark_generation_done()
                if self.api == "handle":
                    handle._mark_done()
            with contextlib.suppress(sub.interrupted_error):
                await task
        # a task that ended with an exception is in a reference cycle with this frame (through
        # the traceback): drop it here so it is freed now, not at the next collection
        del task
        if not self.long_lived:
            self.callbacks_left += pending_callbacks(handle, self.baseline)
            handle._mark_generation_done()
            handle._mark_done()  # the owner tears the speech down: no timer left armed

    def final_callbacks(self) -> int:
        if self.long_lived:
            return pending_callbacks(self.handle, self.baseline)
        return self.callbacks_left


def traced_delta(
    loop: asyncio.AbstractEventLoop, run: Callable[[int], Coroutine[Any, Any, None]], n: int
) -> int:
    """Traced memory after ``n`` cycles minus before, both at a quiescent point."""
    settle()
    before = tracemalloc.get_traced_memory()[0]
    loop.run_until_complete(run(n))
    settle()
    return tracemalloc.get_traced_memory()[0] - before


async def _park(forever: asyncio.Future[None]) -> None:
    await forever


def settle() -> None:
    """Collect twice: what a cycle leaves in a reference cycle is freed too."""
    gc.collect()
    gc.collect()


def measure(sub: _subject.Subject, api: str, ending: str, cycles: int, warmup: int) -> Any:
    """Run the cycles on a fresh loop; measure outside it, while the loop is idle."""
    loop = asyncio.new_event_loop()

    async def make() -> Kind:
        return Kind(sub, api, ending)

    async def run(n: int) -> None:
        for _ in range(n):
            await kind.cycle(loop)

    async def park() -> list[asyncio.Task[None]]:
        # other tasks alive on the loop, as in an agent; they also keep the size of asyncio's
        # registry of tasks (a WeakSet) steady: with only one or two tasks alive its table
        # flips between the inline and a 256-byte allocated one as tasks come and go
        forever = loop.create_future()
        return [loop.create_task(_park(forever)) for _ in range(PARKED)]

    try:
        # traced from before the warm-up: what a cycle replaces (the step's future, a set's
        # table) was allocated under tracing on both sides of the measurement
        tracemalloc.start(FRAMES)
        parked = loop.run_until_complete(park())
        kind = loop.run_until_complete(make())
        loop.run_until_complete(run(warmup))
        kind.callbacks_left = 0
        settle()
        # taken before the baseline, this snapshot is alive at both measurements
        before_snapshot = tracemalloc.take_snapshot()
        t0 = time.perf_counter()
        # the measurement's own footprint (its ints, tracemalloc's caches): the same steps
        # around zero cycles; what the cycles retain is the difference
        harness = traced_delta(loop, run, 0)
        raw = traced_delta(loop, run, cycles)
        elapsed = time.perf_counter() - t0
        retained = raw - harness
        top: list[str] = []
        if retained:
            mine = [
                tracemalloc.Filter(False, tracemalloc.__file__),
                tracemalloc.Filter(False, __file__),
            ]
            diff = (
                tracemalloc.take_snapshot()
                .filter_traces(mine)
                .compare_to(before_snapshot.filter_traces(mine), "lineno")
            )
            top = [str(stat) for stat in diff[:5] if stat.size_diff != 0]
        tracemalloc.stop()
        pending = [t for t in asyncio.all_tasks(loop) if not t.done() and t not in parked]
        for task in parked:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*parked, return_exceptions=True))
        return {
            "cycles": cycles,
            "retained_bytes": retained,
            "raw_delta_bytes": raw,
            "harness_delta_bytes": harness,
            "callbacks_left": kind.final_callbacks(),
            "tasks_pending": len(pending),
            "seconds": elapsed,
            "top_growth": top,
        }
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subject", choices=(*_subject.SUBJECTS, _subject.CONTROL), required=True)
    parser.add_argument("--cycles", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--kind",
        choices=KINDS,
        help="measure this kind here; without it, each kind runs in a fresh process of its own",
    )
    args = parser.parse_args()
    sub = _subject.load(args.subject)
    if args.kind:
        api, ending = args.kind.split(".")
        _subject.emit({args.kind: measure(sub, api, ending, args.cycles, args.warmup)}, args.out)
        return
    # one process per kind: the runtime's own tables (asyncio's task registry) may grow once
    # during a kind, and that growth must not count against the kinds measured after it
    result: dict[str, Any] = {"subject": sub.name, "module": sub.module_file}
    for kind in KINDS:
        cmd = [sys.executable, __file__, "--subject", args.subject, "--kind", kind]
        cmd += ["--cycles", str(args.cycles), "--warmup", str(args.warmup)]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        result.update(json.loads(done.stdout))
    _subject.emit(result, args.out)


if __name__ == "__main__":
    main()
