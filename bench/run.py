"""``make bench``: stock vs patched vs vendored, side by side, into bench/results.{md,json}.

Runs under the bench interpreter (stock livekit-agents in site-packages) with pyperf on
``PYTHONPATH``; each subject's processes get ``PYTHONPATH`` = [overlay (patched only), tools].

1. memory (deterministic; two subjects at a time): ``memory.py``;
2. resolution: ``resolution.py`` (stock sits out the 5 s timeout ``--stock-runs`` times);
3. timing: ``timing.py`` through pyperf, one benchmark at a time, the subjects interleaved in
   rotating order for ``--rounds`` rounds, each round appending to the subject's pyperf file;
4. the verdicts against the targets, written to ``results.json`` and ``results.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import _subject
import pyperf  # type: ignore[import-untyped]
import timing

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

TARGET_RESOLUTION = 1000.0  # patched at least this many times faster than stock
TARGET_HOT = 1.3  # patched/stock per call, (a) and (b)
TARGET_SLOPE = 1.09  # log-log slope over N = 10..1000: per-waiter cost x1.5 at most


def env_for(subject: str, args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(Path(args.tools).resolve())]
    if subject == "patched":
        paths.insert(0, str(Path(args.overlay).resolve()))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def script(name: str) -> str:
    return str(HERE / name)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_memory(args: argparse.Namespace, raw: Path) -> dict[str, Any]:
    log(f"memory: {args.cycles} cycles per kind, two subjects at a time")
    out: dict[str, Any] = {}
    queue = [*_subject.SUBJECTS, _subject.CONTROL]
    running: list[tuple[str, subprocess.Popen[bytes]]] = []
    while queue or running:
        while queue and len(running) < 2:
            subject = queue.pop(0)
            # the leaky control shows its leak in far fewer cycles
            cycles = args.cycles if subject != _subject.CONTROL else min(args.cycles, 10_000)
            cmd = [args.python, script("memory.py"), "--subject", subject]
            cmd += ["--cycles", str(cycles), "--out", str(raw / f"memory-{subject}.json")]
            running.append((subject, subprocess.Popen(cmd, env=env_for(subject, args))))
        subject, proc = running.pop(0)
        if proc.wait() != 0:
            raise SystemExit(f"memory.py failed for {subject}")
        out[subject] = json.loads((raw / f"memory-{subject}.json").read_text())
    return out


def run_resolution(args: argparse.Namespace, raw: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for subject in _subject.SUBJECTS:
        log(f"resolution: {subject}")
        path = raw / f"resolution-{subject}.json"
        cmd = [args.python, script("resolution.py"), "--subject", subject, "--out", str(path)]
        cmd += ["--runs", str(args.runs), "--stock-runs", str(args.stock_runs)]
        subprocess.run(cmd, env=env_for(subject, args), check=True)
        out[subject] = json.loads(path.read_text())
    return out


def run_timing(args: argparse.Namespace, raw: Path) -> dict[str, dict[str, list[float]]]:
    files = {s: raw / f"pyperf-{s}.json" for s in _subject.SUBJECTS}
    for f in files.values():
        f.unlink(missing_ok=True)
    names = timing.benchmarks("patched")
    log(f"timing: {len(names)} benchmarks x {len(_subject.SUBJECTS)} subjects, interleaved")
    for i, name in enumerate(names):
        rounds = args.rounds if name.startswith("hot.") else args.scale_rounds
        for r in range(rounds):
            order = _subject.SUBJECTS[r % 3 :] + _subject.SUBJECTS[: r % 3]
            for subject in order:
                if name not in timing.benchmarks(subject):
                    continue
                cmd = [args.python, script("timing.py"), "--subject", subject, "--bench", name]
                cmd += ["--processes", "1", "--values", str(args.values), "--warmups", "1"]
                cmd += ["--loops", str(timing.loops_for(name)), "--quiet"]
                cmd += ["--append", str(files[subject])]
                subprocess.run(
                    cmd, env=env_for(subject, args), check=True, stdout=subprocess.DEVNULL
                )
        log(f"timing: {i + 1}/{len(names)} {name}")
    out: dict[str, dict[str, list[float]]] = {}
    for subject, path in files.items():
        suite = pyperf.BenchmarkSuite.load(str(path))
        out[subject] = {b.get_name(): list(b.get_values()) for b in suite.get_benchmarks()}
    return out


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "loadavg_at_end": list(os.getloadavg()),
    }


def versions(args: argparse.Namespace) -> dict[str, str]:
    probe = (
        "import sys, json; from importlib import metadata as m; "
        "print(json.dumps({'python': sys.version.split()[0], "
        "'livekit-agents': m.version('livekit-agents'), 'looptime': m.version('looptime'), "
        "'pyperf': m.version('pyperf'), 'implementation': sys.implementation.name}))"
    )
    text = subprocess.run(
        [args.python, "-c", probe],
        env=env_for("stock", args),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found: dict[str, str] = json.loads(text)
    found["livekit-agents-patch"] = metadata.version("livekit-agents-patch")
    return found


def med(values: list[float]) -> float:
    return statistics.median(values)


def analyse(
    memory: dict[str, Any], resolution: dict[str, Any], times: dict[str, dict[str, list[float]]]
) -> dict[str, Any]:
    verdicts: dict[str, Any] = {}
    # 1. resolution
    res: dict[str, Any] = {}
    for api in _subject.APIS:
        stock = resolution["stock"][api]["real"]["real_s_median"]
        for subject in ("patched", "vendored"):
            fixed = resolution[subject][api]["real"]["real_s_median"]
            speedup = stock / fixed
            res[f"{api}.{subject}"] = {
                "speedup_real": speedup,
                "met": speedup >= TARGET_RESOLUTION,
            }
    verdicts["resolution"] = res
    # 2. hot path
    hot: dict[str, Any] = {}
    for api in _subject.APIS:
        for kind in ("played", "completes", "cancelled"):
            name = f"hot.{api}.{kind}"
            stock = med(times["stock"][name])
            row: dict[str, Any] = {"stock_s": stock}
            for subject in ("patched", "vendored"):
                row[f"{subject}_s"] = med(times[subject][name])
            row["ratio"] = row["patched_s"] / stock
            row["target"] = TARGET_HOT if kind != "cancelled" else None
            row["met"] = None if row["target"] is None else row["ratio"] <= TARGET_HOT
            hot[name] = row
    verdicts["hot_path"] = hot
    # 3. memory
    mem: dict[str, Any] = {}
    for subject in (*_subject.SUBJECTS, _subject.CONTROL):
        for key, value in memory[subject].items():
            if not isinstance(value, dict):
                continue
            zero = (
                value["retained_bytes"] == 0
                and value["callbacks_left"] == 0
                and value["tasks_pending"] == 0
            )
            mem[f"{subject}.{key}"] = {**value, "met": zero}
    verdicts["memory"] = mem
    # 4. scaling
    scale: dict[str, Any] = {}
    for ending in timing.SCALE_ENDINGS:
        for subject in _subject.SUBJECTS:
            names = [f"scale.{ending}.{n}" for n in timing.SCALE_N]
            if names[0] not in times[subject]:
                continue
            per = {
                n: med(times[subject][nm]) / n for n, nm in zip(timing.SCALE_N, names, strict=True)
            }
            xs = [math.log(n) for n in timing.SCALE_N[1:]]
            ys = [math.log(per[n] * n) for n in timing.SCALE_N[1:]]
            mx, my = statistics.fmean(xs), statistics.fmean(ys)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
                (x - mx) ** 2 for x in xs
            )
            scale[f"{ending}.{subject}"] = {
                "per_waiter_s": {str(n): v for n, v in per.items()},
                "cycle_s": {str(n): v * n for n, v in per.items()},
                "growth_10_to_1000": per[1000] / per[10],
                "slope": slope,
                "met": slope <= TARGET_SLOPE,
            }
    verdicts["scaling"] = scale
    return verdicts


def short(trace: str) -> str:
    """A top-growth line with the checkout's and the interpreter's prefixes cut."""
    trace = trace.replace(f"{ROOT}/", "")
    return re.sub(r"^\S*/lib/python3\.\d+/", "", trace)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.2f}"


def mark(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "**MISSED**")


def render(report: dict[str, Any]) -> str:
    v = report["verdicts"]
    res = report["resolution"]
    env = report["environment"]
    cfg = report["config"]
    lines = [
        "# Benchmarks: stock vs patched livekit-agents (issue #5359)",
        "",
        f"Generated by `make bench` on {report['date']} in {report['duration_s']:.0f} s.",
        "",
        f"- machine: {env['machine']['cpu']}, {env['machine']['cores']} cores, "
        f"{env['machine']['system']}; shared and noisy (load average at the end "
        f"{', '.join(f'{x:.2f}' for x in env['machine']['loadavg_at_end'])})",
        f"- Python {env['versions']['python']} ({env['versions']['implementation']}), "
        f"livekit-agents {env['versions']['livekit-agents']} stock (site-packages) and patched "
        f"(the overlay `.venvs/lk-{env['versions']['livekit-agents']}/patched`), the vendored "
        f"reference of livekit-agents-patch {env['versions']['livekit-agents-patch']}",
        f"- harness: pyperf {env['versions']['pyperf']}, looptime {env['versions']['looptime']};"
        f" {cfg['rounds']} interleaved rounds (hot path), {cfg['scale_rounds']} (scaling), "
        f"{cfg['values']} values per round, one worker process per value set",
        "",
        "Times are medians. Ratios are patched/stock medians measured in the same run, the "
        "subjects interleaved benchmark by benchmark.",
        "",
        "## 1. Interrupt -> waiter resolved, owner stuck",
        "",
        "A waiter blocks, a 10 ms ticker keeps the loop busy like audio frames, the speech is "
        "interrupted and its owner never marks the step done. Iterations and real seconds on a "
        "plain loop; virtual seconds on a looptime loop.",
        "",
        "| wait | subject | outcome | loop iterations | virtual s | real s (median) | runs "
        "| speed-up vs stock | target >= 1,000x |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    labels = {
        "ctx": "`RunContext.wait_for_playout()`",
        "handle": "`SpeechHandle.wait_for_playout(raise_on_interrupt=True)` (stock: default)",
    }
    for api in _subject.APIS:
        for subject in _subject.SUBJECTS:
            r = res[subject][api]
            real = r["real"]
            if subject == "stock":
                speed, met = "1x", ""
            else:
                ver = v["resolution"][f"{api}.{subject}"]
                speed, met = f"{ver['speedup_real']:,.0f}x", mark(ver["met"])
            lines.append(
                f"| {labels[api]} | {subject} | {', '.join(real['outcomes'])} "
                f"| {real['iterations_median']:g} | {r['virtual_s']:g} "
                f"| {real['real_s_median']:.6f} | {real['runs']} | {speed} | {met} |"
            )
    lines += [
        "",
        "## 2. Hot path, per call",
        "",
        "(a) `played`: the step (speech) already played; (b) `completes`: the waiter blocks, "
        "then the owner marks the step (speech) done, wake-up included; (c) `cancelled`: a "
        "waiter task is created, blocks and is cancelled (task creation included).",
        "",
        "| benchmark | stock us | patched us | vendored us | patched/stock | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, row in v["hot_path"].items():
        target = "n/a" if row["target"] is None else f"<= {row['target']}x: {mark(row['met'])}"
        lines.append(
            f"| `{name}` | {us(row['stock_s'])} | {us(row['patched_s'])} "
            f"| {us(row['vendored_s'])} | {row['ratio']:.2f}x | {target} |"
        )
    lines += [
        "",
        f"## 3. Memory over {cfg['cycles']:,} wait cycles (tracemalloc)",
        "",
        "Bytes retained after the cycles (traced memory after minus before, loop idle, after "
        "`gc.collect()`), callbacks left on the handle's pending futures beyond a fresh "
        "handle's, tasks still pending. Target: all zero. `leaky-control` is a negative "
        "control, not a subject: the vendored handle with a wait that never removes its "
        "callbacks (like a rejected attempt), run for 10,000 cycles; its leak must show "
        "(callbacks are counted from the handle's creation, warm-up included).",
        "",
        "| subject | wait.ending | retained bytes | callbacks left | tasks pending | target |"
        " where the retained bytes were allocated |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for key, row in v["memory"].items():
        subject, kind = key.split(".", 1)
        if subject == _subject.CONTROL:
            row = {**row, "met": None}
        where = "; ".join(short(t) for t in row["top_growth"]).replace("|", "/")
        lines.append(
            f"| {subject} | `{kind}` | {row['retained_bytes']} | {row['callbacks_left']} "
            f"| {row['tasks_pending']} | {mark(row['met'])} | {where} |"
        )
    lines += [
        "",
        "## 4. Scaling: N concurrent `RunContext.wait_for_playout()` waiters on one handle",
        "",
        "Per-waiter cost of one cycle (create N waiter tasks, let them block, end them, await "
        "them). Linear means the log-log slope of the cycle cost over N = 10..1,000 is at most "
        f"{TARGET_SLOPE} (the per-waiter cost grows at most 1.5x from 10 to 1,000 waiters). "
        "Stock cannot be measured interrupted: its waiters stay blocked 5 s.",
        "",
        "| ending | subject | "
        + " | ".join(f"N={n:,} us/waiter" for n in timing.SCALE_N)
        + " | growth 10->1,000 | slope | linear |",
        "|---|---|" + "---:|" * len(timing.SCALE_N) + "---:|---:|---|",
    ]
    for key, row in v["scaling"].items():
        ending, subject = key.split(".")
        per = " | ".join(us(row["per_waiter_s"][str(n)]) for n in timing.SCALE_N)
        lines.append(
            f"| {ending} | {subject} | {per} | {row['growth_10_to_1000']:.2f}x "
            f"| {row['slope']:.3f} | {mark(row['met'])} |"
        )
    lines += [
        "",
        "Where the super-linear term comes from: `Future.remove_done_callback` scans and copies "
        "the future's whole callback list, so it costs O(callbacks) (`profile.md`, section r). "
        "Every patched waiter that returns removes its callback from a future that is still "
        "pending and holds one callback per waiter: `_interrupt_fut` when the step completes, "
        "the step when the speech is interrupted, both when cancelled. Stock adds no callback to "
        "`_interrupt_fut` and, through `asyncio.shield`, removes one from the step only when "
        "cancelled: hence stock's own super-linear `cancelled` row.",
    ]
    lines += ["", "## Verdicts", ""]
    lines += [f"- {line}" for line in report["summary"]]
    lines += [
        "",
        "Where the patched wait spends its time, statement by statement: `bench/profile.md`.",
        "",
        "Raw data: `bench/results.json` (every pyperf value), the pyperf files in "
        "`.cache/bench/` (`python -m pyperf compare_to` works on them).",
        "",
    ]
    return "\n".join(lines)


def summarise(v: dict[str, Any]) -> list[str]:
    out = []
    res = [r["met"] for r in v["resolution"].values()]
    best = min(r["speedup_real"] for r in v["resolution"].values())
    out.append(f"resolution >= 1,000x faster than stock: {mark(all(res))} (slowest {best:,.0f}x)")
    for kind in ("played", "completes"):
        rows = {k: r for k, r in v["hot_path"].items() if k.endswith(kind)}
        ok = all(r["met"] for r in rows.values())
        detail = ", ".join(f"{k} {r['ratio']:.2f}x" for k, r in rows.items())
        out.append(f"hot path {kind} <= 1.3x stock: {mark(ok)} ({detail})")
    control = [r for k, r in v["memory"].items() if k.startswith(_subject.CONTROL)]
    caught = all(r["callbacks_left"] > 0 for r in control)
    out.append(
        "memory check catches a leak (negative control leaves callbacks in every kind): "
        + ("yes" if caught else "**NO**")
    )
    mem_fixed = {k: r for k, r in v["memory"].items() if k.split(".")[0] in ("patched", "vendored")}
    ok = all(r["met"] for r in mem_fixed.values())
    out.append(
        "memory: zero bytes, callbacks and tasks left (patched, vendored): "
        f"{mark(ok)} ("
        + ", ".join(f"{k} {r['retained_bytes']} B" for k, r in mem_fixed.items())
        + ")"
    )
    scale_fixed = {k: r for k, r in v["scaling"].items() if not k.endswith(".stock")}
    ok = all(r["met"] for r in scale_fixed.values())
    out.append(
        f"scaling linear (patched, vendored): {mark(ok)} ("
        + ", ".join(f"{k} slope {r['slope']:.3f}" for k, r in v["scaling"].items())
        + ")"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python", required=True, help="interpreter with stock livekit-agents")
    parser.add_argument("--overlay", required=True, help="dir whose livekit/agents is patched")
    parser.add_argument("--tools", required=True, help="dir with pyperf (pip --target)")
    parser.add_argument("--raw", default=str(ROOT / ".cache" / "bench"))
    parser.add_argument("--out", default=str(HERE))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale-rounds", type=int, default=3)
    parser.add_argument("--values", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--stock-runs", type=int, default=2)
    parser.add_argument("--cycles", type=int, default=100_000)
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite results.md from results.json"
    )
    args = parser.parse_args()
    if args.render_only:
        out = Path(args.out)
        (out / "results.md").write_text(render(json.loads((out / "results.json").read_text())))
        return
    raw = Path(args.raw)
    raw.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    memory = run_memory(args, raw)
    resolution = run_resolution(args, raw)
    times = run_timing(args, raw)
    verdicts = analyse(memory, resolution, times)
    report: dict[str, Any] = {
        "date": date,
        "duration_s": time.perf_counter() - started,
        "environment": {"machine": machine(), "versions": versions(args)},
        "config": {
            k: getattr(args, k)
            for k in ("rounds", "scale_rounds", "values", "runs", "stock_runs", "cycles")
        },
        "targets": {
            "resolution_speedup_min": TARGET_RESOLUTION,
            "hot_path_ratio_max": TARGET_HOT,
            "memory": "0 bytes retained, 0 callbacks left, 0 tasks pending",
            "scaling_loglog_slope_max": TARGET_SLOPE,
        },
        "summary": summarise(verdicts),
        "verdicts": verdicts,
        "resolution": resolution,
        "memory": memory,
        "timing_values_s": times,
    }
    out = Path(args.out)
    log("profile: the patched wait by ablation, into profile.md")
    profile = "".join(
        subprocess.run(
            [args.python, script("profile_hotpath.py"), "--subject", "patched", "--parts", parts],
            env=env_for("patched", args),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for parts in ("ab", "s", "r")
    )
    (out / "profile.md").write_text(
        "# Where the patched wait spends its time (`bench/profile_hotpath.py`)\n\n"
        f"Generated by `make bench` on {date}, patched livekit-agents; sections (a) and (b),"
        " (s), (r) each in a process of their own. (s) is the noisiest: the scaling table of"
        " `results.md` (pyperf, fresh processes) is the reference for scaling.\n" + profile
    )
    report["duration_s"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "results.md").write_text(render(report))
    log(f"wrote {out / 'results.md'} and results.json in {report['duration_s']:.0f} s")
    for line in report["summary"]:
        print(f"  {line}")


if __name__ == "__main__":
    main()
