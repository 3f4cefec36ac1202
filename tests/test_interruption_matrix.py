"""The interruption matrix: a fault at every write step of ``apply``, ``revert``, an upgrade from
revision 1 and a recovery, and what the files are afterwards.

Each scenario's write steps are enumerated from a clean run (``LKP_FAULTS_TRACE``: every call
of the write syscalls from the lock on; ``os.open`` counts when it creates one of the tool's
temporary names). Then, for each step and each fault (SIGINT, SIGTERM and SIGHUP delivered right
after the call returns, before Python records anything; an ``OSError`` raised after the call
did its work, so no bookkeeping can be trusted), a fresh copy of the install is run with that
fault alone, and

- the files are pristine, patched (by any revision), or the harmless mix (patched
  ``speech_handle.py``, stock ``events.py``) **with its journal**; never the mix the other way
  round (every ``await ctx.wait_for_playout()`` then raises ``AttributeError``), never foreign
  bytes, never the harmless mix without the journal that lets the next run undo it;
- the exit code is the signal's 128 + N, 7 for the error, or 0 when it landed after the commit;
- then the next plain run reaches the requested state with nothing left over. A run whose
  files are in a scenario's start state or the end state, with nothing left over, is not rerun:
  that next run would be the same as a scenario's own clean run, already checked (or a no-op).

The negative control runs the same oracle on the writer from before issue 17
(``support/before/writer.py.txt``, put in place of the package's on a copy of the tool) and
expects it to be caught. Steps are looped inside one test per (scenario, fault), so xdist
spreads 16 tests of ~20 runs each.
"""

from __future__ import annotations

import compileall
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.cli import BETWEEN_THE_WRITES, FAULT_EXIT, NEWEST, PATCH, cli, faults, sha
from support.fake_install import EVENTS, REPO, SPEECH, make, wheel_file

from livekit_agents_patch.exits import Exit
from livekit_agents_patch.install import matrix
from livekit_agents_patch.install.index import REVISIONS_DIR, load
from livekit_agents_patch.install.writer import JOURNAL, TMP_SUFFIX

RELEASE = load().releases[NEWEST]


@pytest.fixture(scope="module", autouse=True)
def _compiled() -> None:
    """The package's bytecode, once (the CLI runs with ``PYTHONDONTWRITEBYTECODE``): without it
    each of the ~350 runs compiles every module again, a third of its time."""
    compileall.compile_dir(REPO / "livekit_agents_patch", quiet=1)


WRITE_CALLS = {
    "os.replace",
    "os.rename",
    "os.unlink",
    "os.rmdir",
    "os.mkdir",
    "os.write",
    "os.fsync",
    "os.chmod",
    "os.fchmod",
    "os.chown",
    "os.fchown",
}
FAULTS = {
    "SIGINT": "after=SIGINT",
    "SIGTERM": "after=SIGTERM",
    "SIGHUP": "after=SIGHUP",
    "error": "after=raise",
}


def _name(relative: str, digest: str) -> str:
    if digest == RELEASE.pristine[relative]:
        return "pristine"
    for number, files in sorted(RELEASE.revisions.items(), reverse=True):
        if digest == files[relative]:  # the newest first: revision 2 keeps 1's events.py
            return f"revision {number}"
    return "foreign"


def _states(root: Path) -> dict[str, str]:
    return {
        rel: _name(rel, sha((root / rel).read_bytes())) if (root / rel).is_file() else "missing"
        for rel in (SPEECH, EVENTS)
    }


def _voice(root: Path) -> Path:
    return root / SPEECH.rsplit("/", 1)[0]


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in _voice(root).iterdir() if p.name.endswith(TMP_SUFFIX))


def judge(root: Path) -> str | None:
    """What is wrong with the files after an interruption (``None``: a state the README allows)."""
    states = _states(root)
    speech, events = states[SPEECH], states[EVENTS]
    journal = (_voice(root) / JOURNAL).is_file()
    if "foreign" in states.values() or "missing" in states.values():
        return f"foreign bytes: {states}"
    if speech == "pristine" and events != "pristine":
        return f"the harmful mix (events.py patched, speech_handle.py stock): {states}"
    if speech != "pristine" and events == "pristine" and not journal:
        return f"the harmless mix without its journal, which nothing rolls back: {states}"
    return None


@dataclass(frozen=True)
class Scenario:
    command: str
    start: Callable[[Path], None]
    """Make the install's start state (from pristine)."""
    want: str
    """The state the next plain run must reach: ``pristine`` or ``revision N``."""


def _patch_with(root: Path, patch: Path) -> None:
    pristine = {rel: wheel_file(NEWEST, rel) for rel in (SPEECH, EVENTS)}
    for rel, data in matrix.patch_files(pristine, patch.read_text(encoding="utf-8")).items():
        (root / rel).write_bytes(data)


def _killed_apply(root: Path) -> None:
    done = cli("apply", root=root, env=faults(BETWEEN_THE_WRITES["apply"] + "=exit"))
    assert done.returncode == FAULT_EXIT and (_voice(root) / JOURNAL).is_file()


LATEST = f"revision {RELEASE.revision}"
SCENARIOS = {
    "apply": Scenario("apply", lambda root: None, LATEST),
    "revert": Scenario("revert", lambda root: _patch_with(root, PATCH), "pristine"),
    "upgrade": Scenario(
        "apply",
        lambda root: _patch_with(root, PATCH.parent / REVISIONS_DIR / "1" / PATCH.name),
        LATEST,
    ),
    "recovery": Scenario("apply", _killed_apply, LATEST),
}


SETTLED_STARTS = {
    "apply": {SPEECH: "pristine", EVENTS: "pristine"},
    "revert": {SPEECH: LATEST, EVENTS: LATEST},
    "upgrade": {SPEECH: "revision 1", EVENTS: LATEST},  # revision 2 keeps 1's events.py
}
"""Each scenario's start state, where it has nothing left over (the recovery's has a journal)."""


def write_steps(trace: Path) -> list[str]:
    """``FUNC#N`` of each write step in a traced run (N counts every call of FUNC, as the fault
    rules do), from the lock on."""
    steps, seen, locked = [], dict[str, int](), False
    for line in trace.read_text(encoding="utf-8").splitlines():
        func, *paths = line.split(" ")
        seen[func] = seen.get(func, 0) + 1
        locked = locked or func == "fcntl.flock"
        creates_temp = func == "os.open" and any(p.endswith(TMP_SUFFIX) for p in paths)
        if locked and (func in WRITE_CALLS or creates_temp):
            steps.append(f"{func}#{seen[func]}")
    return steps


def run_matrix(
    tmp_path: Path,
    scenario: Scenario,
    fault: str,
    tool: Path | None = None,
    stop_early: bool = False,
) -> list[str]:
    """Every violation found (``step: what``); ``tool``: a copy of the tool to run instead."""
    template = tmp_path / "template"
    make(template, NEWEST)
    scenario.start(template)
    start = _states(template)
    assert start == SETTLED_STARTS.get(scenario_name(scenario), start)

    def copy(name: str) -> tuple[Path, dict[str, str]]:
        root = tmp_path / name
        shutil.copytree(template, root, symlinks=True)
        path = {"PYTHONPATH": f"{tool}:{root}"} if tool else {}
        return root, path

    root, path = copy("traced")
    trace = tmp_path / "trace"
    clean = cli(scenario.command, root=root, env={**path, "LKP_FAULTS_TRACE": str(trace)})
    assert clean.returncode == 0, clean.stderr
    assert set(_states(root).values()) == {scenario.want}
    steps = write_steps(trace)
    assert len(steps) >= 10, steps  # temporaries, journal, both replaces, journal removed
    violations = []
    for number, step in enumerate(steps):
        root, path = copy(f"case{number}")
        done = cli(scenario.command, root=root, env={**path, **faults(f"{step}:{FAULTS[fault]}")})
        codes = {int(Exit.OK), int(Exit.IO_ERROR) if fault == "error" else 128 + _signum(fault)}
        problem = judge(root)
        if problem is None and done.returncode not in codes:
            problem = f"exit {done.returncode}, expected one of {sorted(codes)}: {done.stderr}"
        if problem is None and "Traceback" in done.stderr:
            problem = f"a traceback: {done.stderr}"
        settled = not _leftovers(root) and not (_voice(root) / JOURNAL).exists()
        known = settled and (_states(root) == start or _states(root) in _settled_starts(scenario))
        if problem is None and not known:
            again = cli(scenario.command, root=root, env=path)
            if again.returncode != 0 or set(_states(root).values()) != {scenario.want}:
                problem = f"the next run: exit {again.returncode}, {_states(root)}"
            elif _leftovers(root) or (_voice(root) / JOURNAL).exists():
                problem = f"the next run left {_leftovers(root)} or the journal"
        if problem is not None:
            violations.append(f"{step}:{FAULTS[fault]}: {problem}")
            if stop_early:
                break
        shutil.rmtree(root)
    return violations


def _settled_starts(scenario: Scenario) -> list[dict[str, str]]:
    """The states, with nothing left over, from which a clean run of ``scenario.command`` is
    checked by a scenario of its own (its start) or is a no-op (the wanted state)."""
    states = [{SPEECH: scenario.want, EVENTS: scenario.want}]
    for name, other in SCENARIOS.items():
        if other.command == scenario.command and name in SETTLED_STARTS:
            states.append(SETTLED_STARTS[name])
    return states


def scenario_name(scenario: Scenario) -> str:
    return next(name for name, each in SCENARIOS.items() if each is scenario)


def _signum(fault: str) -> int:
    return int(getattr(signal, fault))


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_write_step_interrupted_leaves_a_state_the_next_run_finishes(
    tmp_path: Path, name: str, fault: str
) -> None:
    """Before issue 17 this failed for every scenario and fault (see the negative control)."""
    assert run_matrix(tmp_path, SCENARIOS[name], fault) == []


@pytest.fixture(scope="module")
def tool_before(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tool whose writer is the one from before issue 17."""
    dest = tmp_path_factory.mktemp("before")
    package = dest / "livekit_agents_patch"
    shutil.copytree(REPO / "livekit_agents_patch", package, ignore=shutil.ignore_patterns("*.pyc"))
    old = REPO / "tests" / "support" / "before" / "writer.py.txt"
    (package / "install" / "writer.py").write_text(old.read_text(encoding="utf-8"))
    shutil.copytree(REPO / "patches", dest / "patches")
    compileall.compile_dir(package, quiet=1)
    return dest


@pytest.mark.parametrize(("name", "fault"), [("apply", "SIGINT"), ("revert", "error")])
def test_negative_control_the_writer_before_issue_17_is_caught(
    tmp_path: Path, tool_before: Path, name: str, fault: str
) -> None:
    violations = run_matrix(tmp_path, SCENARIOS[name], fault, tool=tool_before, stop_early=True)
    print(violations)
    assert violations, "the matrix passed the old writer: it cannot fail"
    assert "mix" in violations[0]
