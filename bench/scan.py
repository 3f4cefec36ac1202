"""How fast ``livekit-agents-patch scan`` is on a tree of 10,000 files (targets: the typical
tree under 2 s, the worst case under 10 s, on the 2-core machine), written to
``bench/scan-results.md``. Run with ``make bench-scan``.

The tree is generated (deterministically, seed 5359) in a temporary directory and removed
afterwards; file sizes follow the shape of livekit/agents' own tree (median about 100 lines, a
tail up to 800). Two trees are timed, each scanned by the CLI in a fresh process (as a user runs
it), median of ``--runs`` runs:

- *typical*: 3% of the files are agent modules with tools that wait for their playout (every
  rule fires somewhere, across files too: a decorator of another module swallows one tool per
  module, and each module has a helper with an unannotated context), the rest ordinary code,
  plus virtualenv, ``node_modules`` and ``.git`` directories the walk must skip;
- *worst case*: every file is such an agent module, so every file is decoded and parsed.

Also reported: what parsing every file of the typical tree would cost (the scan parses only
files that mention ``wait_for_playout``).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGETS_S = {"typical": 2.0, "worst case": 10.0}
"""Wall time per tree on the 2-core machine (issue 18: the typical tree under 2 s with the
cross-file analysis)."""
HEADER_ROW = (
    "| tree | files scanned | size | findings | scan, wall time: median (runs) | "
    "scan, CPU time (all processes): median | "
    "`ast.parse` of the files the scan parses, CPU, 1 process | `ast.parse` of every file | "
    "target |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)

PLAIN_BLOCK = '''

class Service{n}:
    """A service that does ordinary things, number {n}."""

    def __init__(self, client: "Client", retries: int = 3) -> None:
        self.client = client
        self.retries = retries
        self._cache: dict[str, list[int]] = {{}}

    async def fetch(self, key: str) -> list[int]:
        for attempt in range(self.retries):
            try:
                value = await self.client.get(f"/items/{{key}}?attempt={{attempt}}")
            except ConnectionError:
                continue
            self._cache[key] = [int(v) for v in value.split(",") if v]
            return self._cache[key]
        raise RuntimeError(f"giving up on {{key}}")
'''

TOOL_BLOCK = '''

class Agent{n}(Agent):
    @function_tool()
    async def end_call(self, ctx: RunContext[UserData]) -> str:
        """End the call."""
        await ctx.session.say("Goodbye")
        try:
            await ctx.wait_for_playout()
            await ctx.userdata.api.room.delete_room(DeleteRoomRequest(room=ctx.userdata.room))
        except Exception:
            return "sorry, that failed"
        return "ok"

    @function_tool()
    async def transfer(self, ctx: RunContext[UserData], number: str) -> None:
        await ctx.wait_for_playout()
        await ctx.userdata.transfer_sip(number)

    @function_tool()
    async def book(self, ctx: RunContext) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ctx.wait_for_playout(), timeout=5)
        await book_it()

    async def say(self, ctx: RunContext) -> None:
        handle = ctx.session.say("hello")
        await handle.wait_for_playout()

    @function_tool()
    @clinic_tool
    async def confirm(self, ctx: RunContext, slot: str) -> str:
        await speak_first{n}(ctx, f"confirming {{slot}}")
        await ctx.wait_for_playout()
        await ctx.userdata.calendar.confirm(slot)
        return "confirmed"


async def speak_first{n}(ctx, text):
    await ctx.session.say(text)
    await ctx.wait_for_playout()
    await ctx.session.generate_reply()
'''

UTILS = '''"""The project's own tool decorator (a cross-file finding: it swallows every tool)."""

import functools


def clinic_tool(fn):
    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except Exception:
            return "sorry, something went wrong"

    return wrapper
'''

HEADER = '''"""Module {n}."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from livekit.agents import Agent, RunContext, function_tool

from pkg0.tools_utils import clinic_tool

logger = logging.getLogger(__name__)
'''


def _lines(rng: random.Random) -> int:
    """Lines per file, median about 100, a tail to 800 (the shape of livekit/agents)."""
    return min(800, max(20, int(rng.lognormvariate(4.6, 0.8))))


def generate(root: Path, files: int, tool_share: float, seed: int = 5359) -> int:
    rng = random.Random(seed)
    (root / "pkg0").mkdir(parents=True, exist_ok=True)
    (root / "pkg0" / "tools_utils.py").write_text(UTILS, encoding="utf-8")
    size = len(UTILS)
    for i in range(files):
        package = root / f"pkg{i % 50}" / f"sub{(i // 50) % 20}"
        package.mkdir(parents=True, exist_ok=True)
        text = HEADER.format(n=i)
        if rng.random() < tool_share:
            text += TOOL_BLOCK.format(n=i)
        target, lines, blocks = _lines(rng), text.count("\n"), [text]
        while lines < target:
            blocks.append(PLAIN_BLOCK.format(n=len(blocks)))
            lines += PLAIN_BLOCK.count("\n")
        text = "".join(blocks)
        (package / f"module{i}.py").write_text(text, encoding="utf-8")
        size += len(text)
    for skipped in (".venv/lib/python3.11/site-packages/x", "node_modules/x", ".git/hooks"):
        (root / skipped).mkdir(parents=True, exist_ok=True)
        for j in range(100):
            (root / skipped / f"m{j}.py").write_text(TOOL_BLOCK.format(n=j))
    return size


def time_scan(
    python: str, root: Path, runs: int
) -> tuple[list[float], list[float], dict[str, object]]:
    """Wall times, CPU times (user + system of the CLI and its workers) and the last result."""
    times, cpus, data = [], [], {}
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(
            [python, "-m", "livekit_agents_patch", "scan", "--json", str(root)],
            capture_output=True,
            text=True,
            check=False,
        )
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        data = json.loads(done.stdout)
    return times, cpus, data


def parse_cpu(root: Path, only_waits: bool) -> float:
    """CPU seconds ``ast.parse`` alone takes, one process, on the generated files (all of them,
    or those that mention the wait, as the scan parses them)."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(root.glob("pkg*/*/*.py"))]
    texts = [t for t in texts if "wait_for_playout" in t or not only_waits]
    start = time.process_time()
    for text in texts:
        ast.parse(text)
    return time.process_time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--only", choices=("typical", "worst case"), default=None)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "scan-results.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="scan-bench-") as tmp:
        for name, share in (("typical", 0.03), ("worst case", 1.0)):
            if args.only and name != args.only:
                continue
            root = Path(tmp) / name.replace(" ", "-")
            size = generate(root, args.files, share)
            times, cpus, data = time_scan(args.python, root, args.runs)
            findings = data["findings"]
            assert isinstance(findings, list)
            codes: dict[str, int] = {}
            for f in findings:
                codes[f["code"]] = codes.get(f["code"], 0) + 1
            median = statistics.median(times)
            rows.append(
                f"| {name} | {data['files']:,} | {size / 1e6:.1f} MB | "
                f"{', '.join(f'{c} {n:,}' for c, n in sorted(codes.items()))} | "
                f"{median:.2f} s ({', '.join(f'{t:.2f}' for t in times)}) | "
                f"{statistics.median(cpus):.2f} s | "
                f"{parse_cpu(root, True):.2f} s | {parse_cpu(root, False):.2f} s | "
                f"{TARGETS_S[name]:.0f} s: {'met' if median < TARGETS_S[name] else 'NOT met'} |"
            )
            print(rows[-1], flush=True)
            shutil.rmtree(root)
    load = os.getloadavg()
    text = f"""# `scan` on {args.files:,} files

Generated by `make bench-scan` (`bench/scan.py`): a fresh CLI process per run, median of
{args.runs} runs; targets on 2 cores: the typical tree under {TARGETS_S["typical"]:.0f} s (with the
cross-file analysis: a decorator and a helper in other files), the worst case under
{TARGETS_S["worst case"]:.0f} s.

{HEADER_ROW}
{chr(10).join(rows)}

*typical*: 3% of the files hold tools that wait for their playout; the rest is ordinary code; a
`.venv`, a `node_modules` and a `.git` directory (100 tool files each) are skipped. *worst case*:
every file holds such tools, so every file is parsed. The scan parses only the files that
mention `wait_for_playout` (no other file can hold a finding) and visits only the subtrees
holding such a line; from 2,000 files it uses two worker processes. What is left is the
parse itself: the two `ast.parse` columns are CPython's parser alone, the floor for any
`ast`-based scan.

Machine: {platform.python_implementation()} {platform.python_version()}, {platform.system()}
{platform.machine()}, {os.cpu_count()} CPUs, load average at the end
{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (the machine is shared). Date:
{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}.
"""
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
