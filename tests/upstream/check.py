"""Checks of the upstream PR series (``patches/upstream/``), run by ``mk/upstream.mk``.

Run it with the interpreter of a release venv (stock livekit-agents in site-packages) and the
patched copy of that release as ``--patched``::

    python tests/upstream/check.py series   --patched .venvs/lk-1.8.9/patched
    python tests/upstream/check.py outcomes --patched .venvs/lk-1.8.9/patched
    python tests/upstream/check.py lint     --patched .venvs/lk-1.8.9/patched

``series``: the series is 0001 (the fix) and 0002 (the test module), in git-am form, with
conventional subjects and no changelog or manifest edits; 0001 touches only the two target
files and, applied to the stock release, gives the same code as our release patch (they may
differ in docstrings only); 0002 adds exactly ``tests/upstream/test_wait_for_playout_interrupt.py``
as ``tests/test_wait_for_playout_interrupt.py``.

``outcomes``: the module passes in full on the patched release; on stock, exactly the tests in
``STOCK_FAILURES`` fail (and the rest pass); on each mutant of the patched release (the
approaches of the closed PRs, and the fix without its memory of transition order), exactly the
listed tests fail.

``lint``: the patched target files pass upstream's ruff (format and check) and mypy strict
settings with no finding that the stock files do not have, and the test module passes
upstream's ruff and mypy strict against the patched release.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import NoReturn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SERIES = ROOT / "patches" / "upstream"
RELEASE_PATCH = ROOT / "patches" / "0001-fix-voice-let-playout-waits-see-interruptions.patch"
MODULE = HERE / "test_wait_for_playout_interrupt.py"
UPSTREAM_MODULE = "tests/test_wait_for_playout_interrupt.py"
TARGETS = ("livekit/agents/voice/speech_handle.py", "livekit/agents/voice/events.py")
RUFF_CONFIG = HERE / "ruff.toml"
MYPY_CONFIG = HERE / "mypy.ini"

_CLS = "test_wait_for_playout_interrupt.Test"
STOCK_FAILURES = {
    # the bug: the tool's wait stays blocked on interrupt, then returns normally
    _CLS + "RunContextWaitForPlayout.test_raises_promptly_on_interrupt",
    _CLS + "RunContextWaitForPlayout.test_raises_at_once_when_already_interrupted",
    _CLS + "RunContextWaitForPlayout.test_interrupt_then_step_done_raises",
    # the new keyword arguments
    _CLS + "RunContextWaitForPlayout.test_raise_on_interrupt_false_waits_for_the_step",
    # revision 2: woken at the interrupt in start order, the DEBUG record, an error that copies
    _CLS + "RunContextWaitForPlayout.test_waiters_wake_in_the_order_they_started",
    _CLS + "RunContextWaitForPlayout.test_raising_wait_logs_one_debug_record",
    _CLS + "SpeechInterruptedError.test_keeps_its_speech_id_when_copied",
    _CLS + "SpeechInterruptedError.test_keeps_its_speech_id_when_pickled",
    _CLS + "SpeechHandleWaitForPlayout.test_opt_in_raises_promptly_on_interrupt",
    _CLS + "SpeechHandleWaitForPlayout.test_opt_in_returns_when_done_without_interrupt",
    _CLS + "Cancellation.test_cancelled_waiters_leave_the_handle_alone",
    _CLS + "Cancellation.test_every_waiter_ends_once_the_speech_is_done",
}

# (file, what the fix does, what the mutant does instead, tests that must fail)
MUTANTS: dict[str, tuple[str, str, str, set[str]]] = {
    # livekit/agents#5425 and #7249: `await handle` returns as soon as the speech is interrupted
    "handle returns on interrupt": (
        "speech_handle.py",
        "        else:\n            await asyncio.shield(self._done_fut)",
        "        else:\n            await self._wait_for_playout_or_interrupt(self._done_fut)",
        {_CLS + "SpeechHandleWaitForPlayout.test_waits_for_done_after_interrupt"},
    ),
    # livekit/agents#5700: race the step against the interrupt, then ask `interrupted`
    "wake-up order decides": (
        "speech_handle.py",
        "        if not generation.done() or generation in self._interrupted_generations:",
        "        if self._interrupt_fut.done():",
        {
            _CLS + "RunContextWaitForPlayout.test_step_done_then_interrupt_returns",
            _CLS
            + "RunContextWaitForPlayout.test_interrupting_a_later_step_keeps_a_played_out_step",
        },
    ),
    # the race without the handle's memory of which step ended after the interrupt
    "no memory of the order": (
        "speech_handle.py",
        "        if not generation.done() or generation in self._interrupted_generations:",
        "        if not generation.done():",
        {
            _CLS + "RunContextWaitForPlayout.test_interrupt_then_step_done_raises",
            _CLS + "Cancellation.test_every_waiter_ends_once_the_speech_is_done",
        },
    ),
}


def fail(message: str) -> NoReturn:
    print(f"FAIL: {message}", file=sys.stderr)
    raise SystemExit(1)


def stock_root() -> Path:
    """The directory holding this interpreter's stock ``livekit/agents``."""
    spec = importlib.util.find_spec("livekit.agents")
    if spec is None or not spec.submodule_search_locations:
        fail("livekit-agents is not installed in this interpreter")
    agents = Path(next(iter(spec.submodule_search_locations)))
    if "SpeechInterruptedError" in (agents / "voice" / "speech_handle.py").read_text():
        fail(f"{agents} is patched: run with the stock release first on sys.path")
    return agents.parents[1]


# -- series ------------------------------------------------------------------------------------


def _split_series(path: Path) -> tuple[str, dict[str, str]]:
    """The commit subject and, per file, the unified diff of one git-am patch."""
    text = path.read_text()
    subject = re.search(r"^Subject: \[PATCH \d+/\d+\] (.+)$", text, re.MULTILINE)
    if subject is None or not text.startswith("From "):
        fail(f"{path.name} is not a git format-patch mail")
    diffs = {
        m.group(1): m.group(0)
        for m in re.finditer(
            r"^diff --git a/(\S+) b/\S+\n.*?(?=^diff --git |^-- \n|\Z)", text, re.M | re.S
        )
    }
    return subject.group(1), diffs


def _apply(patch: Path, root: Path, *, context: int | None = None) -> None:
    args = ["git", "apply", "-p2", "--whitespace=nowarn"]
    if context is not None:
        args.append(f"-C{context}")
    run = subprocess.run([*args, str(patch)], cwd=root, capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"{patch.name} does not apply to the stock release:\n{run.stderr}")


class _StripDocstrings(ast.NodeTransformer):
    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body[0].value.value = ""
        return node


def _code(path: Path) -> str:
    return ast.dump(_StripDocstrings().visit(ast.parse(path.read_text())))


def check_series() -> None:
    patches = sorted(SERIES.glob("*.patch"))
    names = [p.name[:5] for p in patches]
    if names != ["0001-", "0002-"]:
        fail(f"expected 0001 and 0002 in {SERIES}, found {[p.name for p in patches]}")
    (fix_subject, fix_diffs), (test_subject, test_diffs) = map(_split_series, patches)
    for subject in (fix_subject, test_subject):
        if not re.fullmatch(r"(fix|test)\(voice\): [a-z].{10,66}", subject):
            fail(f"not a conventional subject: {subject!r}")
    expected = {"livekit-agents/" + t for t in TARGETS}
    if set(fix_diffs) != expected:
        fail(f"0001 must touch exactly {sorted(expected)}, touches {sorted(fix_diffs)}")
    if set(test_diffs) != {UPSTREAM_MODULE}:
        fail(f"0002 must add exactly {UPSTREAM_MODULE}, touches {sorted(test_diffs)}")

    # 0002 carries the module of tests/upstream, byte for byte
    diff = test_diffs[UPSTREAM_MODULE]
    if "new file mode" not in diff:
        fail(f"0002 must create {UPSTREAM_MODULE}")
    added = [line[1:] for line in diff.splitlines() if line.startswith("+")][1:]  # drop +++
    if "\n".join(added) + "\n" != MODULE.read_text():
        fail(f"0002 differs from {MODULE.relative_to(ROOT)}: regenerate it (docs/upstream-pr.md)")

    # 0001 has the same code as the release patch, on the newest release
    stock = stock_root()
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = Path(tmp, "ours"), Path(tmp, "upstream")
        for root in (ours, theirs):
            for target in TARGETS:
                (root / target).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(stock / target, root / target)
        _apply(RELEASE_PATCH, ours)
        # 0001 is cut from upstream's default branch, whose context differs: allow it to move
        _apply(patches[0], theirs, context=1)
        for target in TARGETS:
            if _code(ours / target) != _code(theirs / target):
                fail(f"0001 and the release patch give different code in {target}")
            same = (ours / target).read_text() == (theirs / target).read_text()
            text = "same text" if same else "text differs in docstrings only"
            print(f"ok: {target}: same code as the release patch ({text})")
    print(f"ok: series {[p.name for p in patches]}")


def check_docs() -> None:
    """Every test, property and control that docs/upstream-pr.md cites exists."""
    doc = (ROOT / "docs" / "upstream-pr.md").read_text()
    sources = [MODULE, *sorted((ROOT / "tests" / "e2e").glob("test_*.py"))]
    defined = {
        name
        for path in sources
        for name in re.findall(r"^\s*(?:async )?def (test_\w+)", path.read_text(), re.M)
    }
    classes = set(re.findall(r"^class (Test\w+)", MODULE.read_text(), re.M))
    cited = set(re.findall(r"\b(test_\w+)\b(?!\.py)", doc)) - {"test_contract"}
    missing = sorted(cited - defined) + sorted(set(re.findall(r"\b(Test\w+)::", doc)) - classes)
    scenarios = "".join(
        (ROOT / "livekit_agents_patch" / "contract" / name).read_text()
        for name in ("events.py", "scenarios.py", "oracle.py")
    )
    variants = (ROOT / "tests" / "variants.py").read_text()
    for name in re.findall(r"\*([a-z][a-z_ -]+)\*", doc):
        if f'"{name}"' not in scenarios and f'"{name}"' not in variants:
            missing.append(f"*{name}*")
    if missing:
        fail(f"docs/upstream-pr.md cites what does not exist: {missing}")
    print(f"ok: docs/upstream-pr.md: {len(cited)} cited tests and every property/control exist")


# -- outcomes ----------------------------------------------------------------------------------


_LAST_OUTPUT: list[str] = []


def _run_module(pythonpath: Path | None, *, stock: bool) -> dict[str, str]:
    """Run the module; the outcome of each test, by ``module.Class.test``."""
    env = dict(os.environ)
    env.pop("UPSTREAM_TESTS_AGAINST", None)
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    if stock:
        env["UPSTREAM_TESTS_AGAINST"] = "stock"
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp, "report.xml")
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
            + [f"--junitxml={report}", "-o", "junit_family=xunit2", str(MODULE)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        _LAST_OUTPUT[:] = [run.stdout + run.stderr]
        if not report.exists():
            fail("pytest wrote no report:\n" + _LAST_OUTPUT[0])
        outcomes: dict[str, str] = {}
        for case in ET.parse(report).iter("testcase"):
            name = case.get("classname", "").rsplit(".", 1)[-1] + "." + case.get("name", "")
            name = "test_wait_for_playout_interrupt." + name
            kinds = {child.tag for child in case}
            outcomes[name] = (
                "error" if "error" in kinds else "failed" if "failure" in kinds else "passed"
            )
            if "skipped" in kinds:
                outcomes[name] = "skipped"
    if not outcomes:
        fail("no test ran")
    return outcomes


def _expect(label: str, outcomes: dict[str, str], failures: set[str]) -> None:
    defined = len(re.findall(r"^    async def test_", MODULE.read_text(), re.MULTILINE))
    if len(outcomes) != defined:
        fail(f"{label}: {len(outcomes)} tests ran, the module defines {defined}")
    unknown = failures - outcomes.keys()
    if unknown:
        fail(f"{label}: expected failures not in the module: {sorted(unknown)}")
    got = {name for name, outcome in outcomes.items() if outcome != "passed"}
    if got != failures:
        print(_LAST_OUTPUT[0] if _LAST_OUTPUT else "", file=sys.stderr)
        fail(
            f"{label}: unexpected outcomes\n  failed, expected to pass: {sorted(got - failures)}"
            f"\n  passed, expected to fail: {sorted(failures - got)}"
        )
    if any(outcomes[name] != "failed" for name in failures):
        fail(f"{label}: errors (not test failures): {sorted(failures)}")
    print(f"ok: {label}: {len(outcomes) - len(got)} passed, {len(got)} failed as expected")


def check_outcomes(patched: Path) -> None:
    stock_root()
    _expect("patched", _run_module(patched, stock=False), set())
    _expect("stock", _run_module(None, stock=True), STOCK_FAILURES)
    with tempfile.TemporaryDirectory() as tmp:
        for label, (file, fixed, mutated, failures) in MUTANTS.items():
            root = Path(tmp, label.replace(" ", "-"))
            shutil.copytree(patched / "livekit", root / "livekit")
            path = root / "livekit" / "agents" / "voice" / file
            text = path.read_text()
            if text.count(fixed) != 1:
                fail(f"mutant {label!r}: the fixed code is not in {file} exactly once")
            path.write_text(text.replace(fixed, mutated))
            _expect(f"mutant {label!r}", _run_module(root, stock=False), failures)


# -- lint --------------------------------------------------------------------------------------


def _findings(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    run = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    return [re.sub(r":\d+(:\d+)?:", ":", line) for line in lines]  # positions move


def check_lint(patched: Path) -> None:
    stock = stock_root()
    python = [sys.executable, "-m"]
    ruff = [*python, "ruff", "--config", str(RUFF_CONFIG)]
    for root in (stock, patched):
        label = "patched" if root == patched else "stock"
        files = [str(root / t) for t in TARGETS]
        for args in (["format", "--check", "--no-cache"], ["check", "--no-cache", "-q"]):
            run = subprocess.run([*ruff[:3], args[0], *ruff[3:], *args[1:], *files])
            if run.returncode != 0:
                fail(f"ruff {args[0]} with upstream's settings fails on the {label} files")
    print("ok: ruff format + check with upstream's settings: stock and patched target files")

    found: dict[str, Counter[str]] = {}
    for label, root in (("stock", stock), ("patched", patched)):
        lines = _mypy(root, [])
        found[label] = Counter(line for line in lines if ": error:" in line or ": note:" in line)
        print(f"   mypy strict, {label} target files: {lines[-1] if lines else 'no output'}")
    new = found["patched"] - found["stock"]
    if new:
        fail("mypy strict: the patch adds findings:\n" + "\n".join(sorted(new)))
    print("ok: mypy strict with upstream's settings: the patch adds no finding")

    module = str(MODULE)
    for args in (["format", "--check", "--no-cache"], ["check", "--no-cache", "-q"]):
        if subprocess.run([*ruff[:3], args[0], *ruff[3:], *args[1:], module]).returncode:
            fail(f"ruff {args[0]} with upstream's settings fails on the test module")
    lines = _mypy(patched, [MODULE])
    if not lines or not lines[-1].startswith("Success"):
        fail(
            "mypy strict fails on the test module against the patched release:\n" + "\n".join(lines)
        )
    # control: the copies are what mypy checks, so the module must not type-check on stock
    lines = _mypy(stock, [MODULE])
    if not lines or lines[-1].startswith("Success") or "SpeechInterruptedError" not in lines[0]:
        fail("mypy control: the test module type-checks against stock:\n" + "\n".join(lines))
    print("ok: the test module passes upstream's ruff and mypy strict (and fails mypy on stock)")


def _mypy(root: Path, extra: list[Path]) -> list[str]:
    """mypy (upstream's settings) on the target files of ``root``, and ``extra`` beside them.

    The files are checked from a copy, named as modules from its root: MYPYPATH does not take
    precedence over the stock ``livekit.agents`` in site-packages, files given as sources do.
    """
    with tempfile.TemporaryDirectory() as tmp:
        for target in TARGETS:
            (Path(tmp) / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / target, Path(tmp) / target)
        for path in extra:
            shutil.copyfile(path, Path(tmp) / path.name)
        args = [sys.executable, "-m", "mypy", "--config-file", str(MYPY_CONFIG)]
        args += ["--cache-dir", str(Path(tmp, ".mypy_cache")), "--explicit-package-bases"]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
        return _findings([*args, *TARGETS, *(p.name for p in extra)], Path(tmp), env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("check", choices=("series", "outcomes", "lint"))
    parser.add_argument("--patched", type=Path, required=True, help="the patched copy's root")
    args = parser.parse_args()
    patched: Path = args.patched.resolve()
    if not (patched / "livekit" / "agents" / "voice" / "speech_handle.py").exists():
        fail(f"no patched livekit/agents under {patched}")
    if args.check == "series":
        check_series()
        check_docs()
    elif args.check == "outcomes":
        check_outcomes(patched)
    else:
        check_lint(patched)


if __name__ == "__main__":
    main()
