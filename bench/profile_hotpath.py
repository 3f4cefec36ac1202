"""Where the patched playout wait spends its time, statement by statement (by ablation).

Run in the PATCHED interpreter (``make bench-profile``). Every variant runs in this one process,
interleaved over ``--repeats`` rounds, and the table gives each variant's median per-call cost
and its difference from the variant above it, i.e. what the statements it adds cost:

(a) the step already played; (b) the waiter blocks and the owner marks the step done
(``call_soon`` of ``_mark_generation_done``, the wait, the wake-up); (s) like (b) with
``--waiters`` waiter tasks on the one step (the scaling case).

Two candidate restructurings of ``_wait_for_playout_or_interrupt`` are measured beside the patch:

``own-future``
    one future per wait woken by a callback on the step and on ``_interrupt_fut``, removed in
    ``finally``: what ``asyncio.wait`` does minus its set building and result sets.
``shared-future``
    one future per step, shared by all its waiters, resolved by the step or the interrupt
    (whichever first; the callback on the other is removed then); each waiter awaits it through
    ``asyncio.shield``, exactly as stock awaits the step: no per-wait callback on
    ``_interrupt_fut`` at all.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

import _subject

Wait = Callable[[], Coroutine[Any, Any, Any]]


async def own_future(handle: Any, playout: asyncio.Future[None]) -> None:
    if playout.done() or handle._interrupt_fut.done():
        return
    waiter = asyncio.get_running_loop().create_future()

    def wake(_: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_result(None)

    playout.add_done_callback(wake)
    handle._interrupt_fut.add_done_callback(wake)
    try:
        await waiter
    finally:
        playout.remove_done_callback(wake)
        handle._interrupt_fut.remove_done_callback(wake)


def _either(handle: Any, playout: asyncio.Future[None]) -> asyncio.Future[None]:
    cache: dict[asyncio.Future[None], asyncio.Future[None]] = handle.__dict__.setdefault(
        "_bench_either", {}
    )
    either = cache.get(playout)
    if either is None:
        either = asyncio.get_running_loop().create_future()
        interrupt: asyncio.Future[None] = handle._interrupt_fut

        def first(fut: asyncio.Future[None]) -> None:
            other = interrupt if fut is playout else playout
            other.remove_done_callback(first)
            cache.pop(playout, None)
            if not either.done():
                either.set_result(None)

        playout.add_done_callback(first)
        interrupt.add_done_callback(first)
        cache[playout] = either
    return either


async def shared_future(handle: Any, playout: asyncio.Future[None]) -> None:
    if playout.done() or handle._interrupt_fut.done():
        return
    await asyncio.shield(_either(handle, playout))


async def noop() -> None:
    pass


def variants(sub: _subject.Subject, handle: Any, ctx: Any) -> dict[str, Wait]:
    """The waits, from the bare coroutine call to the full patched method."""

    def gen() -> asyncio.Future[None]:
        return handle._generations[0]  # type: ignore[no-any-return]

    intr = handle._interrupt_fut
    return {
        "await noop() [a coroutine call]": noop,
        "stock: await asyncio.shield(step)": lambda: asyncio.shield(gen()),
        "stock: handle._wait_for_generation(0)": lambda: handle._wait_for_generation(step_idx=0),
        "stock: ctx.wait_for_playout(raise_on_interrupt=False)": lambda: ctx.wait_for_playout(
            raise_on_interrupt=False
        ),
        "asyncio.wait((step, interrupt), FIRST_COMPLETED)": lambda: asyncio.wait(
            (gen(), intr), return_when=asyncio.FIRST_COMPLETED
        ),
        "patch: handle._wait_for_playout_or_interrupt(step)": lambda: (
            handle._wait_for_playout_or_interrupt(gen())
        ),
        "patch: handle._wait_for_step_playout(0)": lambda: handle._wait_for_step_playout(0),
        "patch: ctx.wait_for_playout()": ctx.wait_for_playout,
        "alt own-future(step)": lambda: own_future(handle, gen()),
        "alt shared-future(step)": lambda: shared_future(handle, gen()),
    }


async def played(handle: Any, wait: Wait, loops: int) -> float:
    await wait()
    t0 = time.perf_counter()
    for _ in range(loops):
        await wait()
    return (time.perf_counter() - t0) / loops


async def completes(handle: Any, wait: Wait, loops: int, waiters: int) -> float:
    loop = asyncio.get_running_loop()
    total = 0.0
    for _ in range(loops):
        handle._generations.clear()
        handle._authorize_generation()
        t0 = time.perf_counter()
        if waiters == 1:
            loop.call_soon(handle._mark_generation_done)
            await wait()
        else:
            tasks = [asyncio.ensure_future(wait()) for _ in range(waiters)]
            await asyncio.sleep(0)
            handle._mark_generation_done()
            for task in tasks:
                await task
        total += time.perf_counter() - t0
    return total / loops


async def measure(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    sub = _subject.load(args.subject)
    results: dict[str, dict[str, list[float]]] = {"a": {}, "b": {}, "s": {}}
    for r in range(args.repeats):
        handle = sub.new_handle()
        ctx = sub.new_ctx(handle)
        if "a" in args.parts:  # a played step
            handle._mark_generation_done()
            for name, wait in variants(sub, handle, ctx).items():
                results["a"].setdefault(name, []).append(await played(handle, wait, args.loops))
        # (b) and (s): a step that completes while waited on
        for key, n, loops in (("b", 1, args.loops // 10), ("s", args.waiters, 5)):
            if key not in args.parts:
                continue
            names = list(variants(sub, handle, ctx))
            for name in names[r % len(names) :] + names[: r % len(names)]:
                if name.startswith("await noop"):
                    continue
                handle = sub.new_handle()  # a fresh handle per variant
                ctx = sub.new_ctx(handle)
                wait = variants(sub, handle, ctx)[name]
                cost = await completes(handle, wait, loops, n)
                results[key].setdefault(name, []).append(cost / n)
    return results


async def removal_cost(n: int, repeats: int) -> float:
    """Mean cost of ``remove_done_callback`` on a future holding ``n`` callbacks, all removed
    in the order they were added (as waiters that wake in order remove theirs)."""
    loop = asyncio.get_running_loop()
    costs = []
    for _ in range(repeats):
        fut: asyncio.Future[None] = loop.create_future()
        callbacks = [_callback() for _ in range(n)]
        for cb in callbacks:
            fut.add_done_callback(cb)
        t0 = time.perf_counter()
        for cb in callbacks:
            fut.remove_done_callback(cb)
        costs.append((time.perf_counter() - t0) / n)
    return statistics.median(costs)


def _callback() -> Callable[[asyncio.Future[None]], None]:
    def callback(_: asyncio.Future[None]) -> None:
        pass

    return callback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subject", choices=("patched", "vendored"), default="patched")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--loops", type=int, default=20_000)
    parser.add_argument("--waiters", type=int, default=1000)
    parser.add_argument(
        "--parts",
        default="abrs",
        help="which sections (a, b, s, r); `make bench` runs s in a process of its own, where"
        " it is steadier",
    )
    args = parser.parse_args()
    loop = asyncio.new_event_loop()
    try:
        results = loop.run_until_complete(measure(args))
        removal = {
            n: loop.run_until_complete(removal_cost(n, args.repeats))
            for n in ((1, 10, 100, 1000) if "r" in args.parts else ())
        }
    finally:
        loop.close()
    titles = {
        "a": "(a) step already played, ns per call",
        "b": "(b) wait, then the step completes: ns per cycle (wake-up included)",
        "s": f"(s) {args.waiters} waiters, then the step completes: ns per waiter",
    }
    for key, title in titles.items():
        if key not in args.parts:
            continue
        print(f"\n{title} (median of {args.repeats})")
        print("| variant | ns | vs stock `_wait_for_generation` |\n|---|---:|---:|")
        base = statistics.median(results[key]["stock: handle._wait_for_generation(0)"])
        for name, values in results[key].items():
            m = statistics.median(values)
            print(f"| {name} | {m * 1e9:,.0f} | {m / base:.2f}x |")
    if "r" not in args.parts:
        return
    print(
        "\n(r) `Future.remove_done_callback` with N callbacks attached, ns per removal: what each"
        " waiter would pay on a pending future holding one callback per waiter (as with"
        " `asyncio.wait`), the reason the patch's waiters share one\n\n| N | ns |\n|---:|---:|"
    )
    for n, cost in removal.items():
        print(f"| {n:,} | {cost * 1e9:,.0f} |")


if __name__ == "__main__":
    main()
