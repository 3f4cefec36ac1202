"""The gate never lies: ``verify`` checks the livekit-agents its ``--python`` imports or fails with
a documented exit, anything that is not a working Python is refused, and under ``--json`` every
invocation prints exactly one JSON object whose ``exit`` is the process's exit code.

All of it as a user runs it: the CLI in a subprocess (``support/cli.py``). The tests on a real
release need the venvs ``make test`` builds, and say so when they skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from support import fake_livekit
from support.cli import FIRST, LK, NEWEST, PYTHON, cli, real_venv_ready
from support.fake_install import REPO, make

from livekit_agents_patch.exits import Exit

PY39 = REPO / ".venvs" / f"py39-lk-{FIRST}" / "bin" / "python"
"""The oldest supported release on Python 3.9 (1.3.12 says it runs there, but cannot be imported:
its ``voice/room_io/types.py`` imports ``typing.TypeAlias``)."""
CANNOT_VERIFY = 9
COMMANDS = ("status", "check", "apply", "revert", "verify", "show")


def one_json(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """The run printed exactly one JSON object on stdout, with the process's exit code."""
    lines = done.stdout.splitlines()
    assert len(lines) == 1, f"expected one line of JSON, found {done.stdout!r} {done.stderr!r}"
    data = json.loads(lines[0])
    assert isinstance(data, dict) and data["exit"] == done.returncode, (data, done.returncode)
    return data


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)
    return str(path)


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A venv with nothing installed: no livekit-agents, no hypothesis, no looptime."""
    venv = tmp_path_factory.mktemp("bare")
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    return str(venv / "bin" / "python")


# --- not a Python ----------------------------------------------------------------------------


def not_pythons(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Programs that are not a working Python, and what the refusal must say was found."""
    return {
        "/bin/true": ("/bin/true", "found: exit 0, no output"),
        "/bin/false": ("/bin/false", "found: exit 1, no output"),
        "/usr/bin/env": ("/usr/bin/env", "found: exit 125"),
        "prints {}": (script(tmp_path, "braces", "echo '{}'"), "found: exit 0, stdout '{}'"),
        "prints ok": (script(tmp_path, "ok", "echo ok: fine"), "stdout 'ok: fine'"),
        "exits 3": (script(tmp_path, "three", "exit 3"), "found: exit 3"),
        "missing": (str(tmp_path / "nope"), "expected a Python interpreter at"),
    }


def test_what_is_not_a_python_is_refused_with_exit_2(tmp_path: Path) -> None:
    """Before: /bin/true verify exited 0 silently, /usr/bin/env 125, /bin/false 1, a script
    printing ``{}`` made status crash with a KeyError; a shell script passed its own exit."""
    for program, found in not_pythons(tmp_path).values():
        done = cli("--python", program, "verify")
        assert done.returncode == Exit.USAGE, (program, done.stdout, done.stderr)
        assert found in done.stderr and "Next: point --python at" in done.stderr, done.stderr
        assert done.stdout == ""
        data = one_json(cli("--python", program, "status", "--json"))
        assert data["command"] == "status" and found in str(data["error"]), data
        assert "Traceback" not in cli("--python", program, "status").stderr
    for command in ("check", "apply", "revert", "verify"):
        done = cli("--python", "/bin/true", command)
        assert done.returncode == Exit.USAGE and "found: exit 0, no output" in done.stderr


def test_a_wrapper_script_around_python_is_a_python(tmp_path: Path) -> None:
    """The probe asks for Python's answer, not for a binary: a shim (pyenv's) is fine."""
    root = make(tmp_path / "site", NEWEST)
    shim = script(tmp_path, "python", f'exec {PYTHON} "$@"')
    done = cli("--python", shim, "status", root=root)
    assert done.returncode == Exit.PRISTINE, done.stderr


# --- one JSON object, always -----------------------------------------------------------------


def test_json_on_every_invocation(tmp_path: Path) -> None:
    """Before: --version and --help printed text under --json, and so did --json=x's error."""
    root = make(tmp_path / "site", NEWEST)
    braces = script(tmp_path, "braces", "echo '{}'")
    runs: list[tuple[list[str], Path | None, int]] = [
        (["--json", "--version"], None, 0),
        (["--version", "--json"], None, 0),
        (["--json", "--help"], None, 0),
        (["-h", "--json"], None, 0),
        (["--json"], None, Exit.USAGE),
        (["--json", "frobnicate"], None, Exit.USAGE),
        (["--json=1", "status"], None, Exit.USAGE),
        (["status", "--json=yes"], None, Exit.USAGE),
        (["--json", "status", "--unknown"], None, Exit.USAGE),
        (["--json", "--python"], None, Exit.USAGE),
        (["--json", "show", "--release"], None, Exit.USAGE),
        (["--json", "verify", "--examples", "0"], None, Exit.USAGE),
        (["--json", "verify", "--examples", "-5"], None, Exit.USAGE),
        (["--json", "verify", "--examples", "x"], None, Exit.USAGE),
        (["--json", "show", "--release", "9.9.9"], None, Exit.UNSUPPORTED),
        (["--json", "--python", braces, "status"], None, Exit.USAGE),
    ]
    for command in COMMANDS:
        runs.append(([command, "--json", "--help"], None, 0))
        runs.append(([command, "--json"], None, Exit.NOT_INSTALLED))
        runs.append(([command, "--json", "--python", "/bin/true"], None, Exit.USAGE))
    for command in COMMANDS[:4] + ("show",):
        runs.append(([command, "--json"], root, -1))  # whatever it is, as JSON
    for argv, install, code in runs:
        done = cli(*argv, root=install)
        data = one_json(done)
        assert code == -1 or data["exit"] == code, (argv, data)
    version = one_json(cli("--json", "--version"))
    assert version == {"exit": 0, "prog": "livekit-agents-patch", "version": "0.1.0"}
    helped = one_json(cli("verify", "--json", "-h"))
    assert "--examples" in str(helped["help"])
    assert "expected a number of scenarios >= 1, found 0" in str(
        one_json(cli("--json", "verify", "--examples", "0"))["error"]
    )


def test_exit_9_is_cannot_verify() -> None:
    assert Exit.CANNOT_VERIFY == CANNOT_VERIFY


def test_no_abbreviated_options() -> None:
    """``--js`` is not taken for ``--json`` (it would print text where JSON was asked for)."""
    done = cli("--js", "status")
    assert done.returncode == Exit.USAGE and "unrecognized arguments: --js" in done.stderr


# --- verify checks the target, and only the target ----------------------------------------


def test_verify_examples_0_is_a_usage_error() -> None:
    """Before: exit 1 "FAIL: ... InvalidArgument", a usage error reported as a violation."""
    done = cli("verify", "--examples", "0")
    assert done.returncode == Exit.USAGE and "FAIL" not in done.stdout + done.stderr
    assert "expected a number of scenarios >= 1, found 0" in done.stderr


def test_verify_in_a_target_without_livekit_agents_is_exit_3(bare_venv: str) -> None:
    done = cli("--python", bare_venv, "verify")
    assert done.returncode == Exit.NOT_INSTALLED, done.stdout + done.stderr
    assert f"expected an importable livekit-agents in {bare_venv}" in done.stderr


def test_verify_does_not_check_the_tools_own_livekit_agents(bare_venv: str) -> None:
    """The tool runs where livekit-agents is installed, the target has none: exit 3, not a
    verdict on the tool's copy. Before: the tool's site-packages were appended to the target's
    path and the tool's livekit-agents was checked (exit 0 when patched, 1 when stock)."""
    python = LK / "bin" / "python"
    if not real_venv_ready(LK / ".ok"):
        if os.environ.get("LIVEKIT_AGENTS_PATCH_REQUIRE_REAL"):
            raise AssertionError(f"{LK} is required (make venvs)")
        pytest.skip(f"{LK} not built (make venvs); `make test` builds it")
    for target in (bare_venv, "/usr/bin/python3"):
        if not Path(target).exists():
            continue
        done = cli("--python", target, "verify", "--examples", "10", python=str(python))
        assert done.returncode == Exit.NOT_INSTALLED, (target, done.stdout, done.stderr)
        assert "livekit-agents 1.8.9" not in done.stdout + done.stderr


def test_verify_without_the_checks_dependencies_is_exit_9(tmp_path: Path, bare_venv: str) -> None:
    """livekit-agents importable, hypothesis and looptime not: exit 9 with the next command.
    Before: the tool lent its own hypothesis and looptime to the target."""
    root = fake_livekit.make(tmp_path / "fake", "1.8.9")
    done = cli("--python", bare_venv, "verify", root=root)
    assert done.returncode == CANNOT_VERIFY, done.stdout + done.stderr
    from livekit_agents_patch.contract.verify import REQUIREMENTS

    requirements = " ".join(f"'{r}'" for r in REQUIREMENTS)
    assert f"Next: {bare_venv} -m pip install {requirements}" in done.stderr
    data = one_json(cli("--python", bare_venv, "verify", "--json", root=root))
    assert data["missing"] == ["hypothesis", "looptime"] and data["ok"] is False


def test_a_release_without_the_api_is_not_a_counterexample(tmp_path: Path) -> None:
    """Before: on 1.1.7 (no ``RunContext.wait_for_playout``), exit 1 "FAIL: ... AttributeError",
    a harness crash reported as a property violation."""
    root = fake_livekit.make(tmp_path / "fake", "1.1.7", wait=False)
    done = cli("verify", root=root)
    assert done.returncode == CANNOT_VERIFY, done.stdout + done.stderr
    assert "FAIL" not in done.stdout + done.stderr
    assert "cannot run on livekit-agents 1.1.7" in done.stderr
    assert "it has no RunContext.wait_for_playout" in done.stderr
    assert f"Next: upgrade livekit-agents to {FIRST} or later" in done.stderr


def test_a_harness_crash_is_not_a_counterexample(tmp_path: Path) -> None:
    """Anything but a property violation out of the checks decides nothing: exit 9, never 1."""
    root = fake_livekit.make(tmp_path / "fake", "1.8.9", create="raise TypeError('boom')")
    data = one_json(cli("verify", "--json", root=root))
    assert data["exit"] == CANNOT_VERIFY and "TypeError: boom" in str(data["error"])
    assert "nothing was decided" in str(data["error"])


def test_a_checks_process_that_dies_is_exit_9(tmp_path: Path) -> None:
    """A Python that answers the probe but whose checks die (here: killed): exit 9."""
    picky = script(
        tmp_path, "python", f'case "$*" in *--nonce*) kill -9 $$;; esac\nexec {PYTHON} "$@"'
    )
    data = one_json(cli("--python", picky, "verify", "--json"))
    assert data["exit"] == CANNOT_VERIFY and "exit -9" in str(data["error"])


_HOOK = """
import importlib.machinery, sys
class Finder:  # in the target only: it runs `python -c`, the tool `python -m`
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "livekit_agents_patch":
            return importlib.machinery.PathFinder.find_spec(name, [{other!r}])
        return None
if "-c" in sys.orig_argv:
    sys.meta_path.insert(0, Finder)
"""


def test_a_target_that_runs_another_copy_of_the_checks_is_exit_9(tmp_path: Path) -> None:
    """An import hook in the target that prefers its own livekit_agents_patch over the lent one
    (here: a sitecustomize, and a copy that always says ok): the run is not the lent checks, so
    it decides nothing. Without the check this exits 0."""
    import livekit_agents_patch

    other = tmp_path / "other"
    shutil.copytree(Path(livekit_agents_patch.__file__).parent, other / "livekit_agents_patch")
    stale = other / "livekit_agents_patch" / "contract" / "verify.py"  # a copy that always says ok
    head = "def run(examples: int) -> dict[str, Any]:\n"
    ok = '    return {"exit": 0, "ok": True, "subject": "stale", "scenarios": examples}\n'
    stale.write_text(stale.read_text(encoding="utf-8").replace(head, head + ok), encoding="utf-8")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_HOOK.format(other=str(other)), encoding="utf-8")
    root = fake_livekit.make(tmp_path / "fake", "1.8.9")
    done = cli("verify", env={"PYTHONPATH": f"{hook}{os.pathsep}{root}"})
    assert done.returncode == CANNOT_VERIFY, done.stdout + done.stderr
    assert f"found it ran {other}" in done.stderr and "took precedence" in done.stderr


def test_a_crash_of_the_tool_in_verify_is_exit_9_not_1(tmp_path: Path) -> None:
    """The tool itself failing (here: run from a copy without its patch index) is no verdict."""
    import livekit_agents_patch

    copy = tmp_path / "copy"
    shutil.copytree(Path(livekit_agents_patch.__file__).parent, copy / "livekit_agents_patch")
    root = fake_livekit.make(tmp_path / "fake", "1.1.7", wait=False)
    main = "from livekit_agents_patch.cli import main; raise SystemExit(main())"
    done = cli("verify", root=root, prefix=(), python=PYTHON)
    assert done.returncode == CANNOT_VERIFY  # from the installed package: the index is there
    done = subprocess.run(
        [PYTHON, "-c", f"import sys; sys.path.insert(0, {str(copy)!r}); {main}", "verify"],
        env={"PYTHONPATH": str(root), "PATH": "/nonexistent"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == CANNOT_VERIFY, done.stdout + done.stderr
    assert "verify failed before a verdict: FileNotFoundError" in done.stderr


def test_a_python_older_than_3_9_is_exit_9() -> None:
    old = sorted(Path("/root/.pyenv/versions").glob("3.8.*/bin/python3.8"))
    found = old[0] if old else shutil.which("python3.8")
    if found is None:
        pytest.skip("no Python 3.8 on this machine")
    done = cli("--python", str(found), "verify")
    assert done.returncode == CANNOT_VERIFY, done.stdout + done.stderr
    assert "expected Python 3.9 or newer for the property checks, found Python 3.8" in done.stderr


# --- Python 3.9 and the [verify] extra ------------------------------------------------------


def test_py39_target_is_verified_stock_and_patched(tmp_path: Path) -> None:
    """livekit-agents 1.2.18 on Python 3.9: stock fails with a counterexample, patched passes.
    Before: the tool's hypothesis ("cannot import name 'Self'") and a TypeError in scenarios."""
    if not real_venv_ready(PY39.parent.parent / ".ok"):
        if os.environ.get("LIVEKIT_AGENTS_PATCH_REQUIRE_PY39"):
            raise AssertionError(f"{PY39} is required (make {PY39.parent.parent}/.ok)")
        pytest.skip(f"{PY39} not built: `make verify-py39` builds it where Python 3.9 exists")
    stock = cli("--python", str(PY39), "verify", "--examples", "100")
    assert stock.returncode == Exit.VIOLATION, stock.stdout + stock.stderr
    assert stock.stdout.startswith(f"FAIL: livekit-agents {FIRST} (pristine)")
    # a patched copy shadowing the install, written by our own apply through the 3.9 probe
    found = subprocess.run(
        [str(PY39), "-c", "import livekit.agents as a, os; print(os.path.dirname(a.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    )
    shutil.copytree(found.stdout.strip(), tmp_path / "livekit" / "agents")
    assert cli("--python", str(PY39), "apply", root=tmp_path).returncode == 0
    patched = cli("--python", str(PY39), "verify", "--examples", "100", root=tmp_path)
    assert patched.returncode == Exit.OK, patched.stdout + patched.stderr
    assert f"ok: every property holds in 100 scenarios on livekit-agents {FIRST} (patched" in (
        patched.stdout
    )


def test_hypothesis_and_looptime_are_only_in_the_verify_extra() -> None:
    from livekit_agents_patch.contract import verify

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = [d.split(">")[0].split("=")[0].split("<")[0] for d in project["dependencies"]]
    assert "hypothesis" not in names and "looptime" not in names
    assert tuple(project["optional-dependencies"]["verify"]) == verify.REQUIREMENTS
    assert "livekit-agents-patch[verify]" in project["optional-dependencies"]["dev"]


def test_the_tool_runs_without_hypothesis_and_looptime(tmp_path: Path) -> None:
    """Only unidiff and this package on the tool's path (``-S``: no site-packages): the commands
    work, and verify runs the checks with the target's own hypothesis and looptime."""
    import unidiff

    import livekit_agents_patch

    lent = tmp_path / "lent"
    lent.mkdir()
    for module in (unidiff, livekit_agents_patch):
        package = Path(str(module.__file__)).parent
        (lent / package.name).symlink_to(package)
    prefix = (sys.executable, "-S", "-c", "import sys; sys.path[:0] = [sys.argv.pop(1)]; ")
    env = {"PATH": "/nonexistent", "PYTHONDONTWRITEBYTECODE": "1"}

    def run(code: str, *argv: str, root: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix[:-1], prefix[-1] + code, str(lent), *argv],
            env={**env, "PYTHONPATH": str(root)},
            capture_output=True,
            text=True,
        )

    cli_main = "from livekit_agents_patch.cli import main; raise SystemExit(main())"
    site = make(tmp_path / "site", NEWEST)
    assert "No module named 'hypothesis'" in run("import hypothesis", root=site).stderr
    assert run(cli_main, "status", root=site).returncode == Exit.PRISTINE
    # the target (the dev venv) has hypothesis and looptime; its livekit-agents is too old
    fake = fake_livekit.make(tmp_path / "fake", "1.1.7", wait=False)
    done = run(cli_main, "--python", PYTHON, "verify", root=fake)
    assert done.returncode == CANNOT_VERIFY, done.stdout + done.stderr
    assert "cannot run on livekit-agents 1.1.7" in done.stderr


def test_py39_lint_finds_what_python_3_9_cannot_run(tmp_path: Path) -> None:
    """``make lint``'s check (``support/py39.py``), and its negative control: the union that
    made ``scenarios.py`` fail on 3.9 before, and newer standard-library features."""
    from support import py39

    old = "from __future__ import annotations\nEvent = StartWaiter | Interrupt | None\n"
    assert [f.split(": ")[0] for f in py39.runtime_unions(old, "old.py")] == ["old.py:2"]
    fine = "from __future__ import annotations\ndef f(x: int | None) -> A | B: ...\nn = a | b\n"
    assert list(py39.runtime_unions(fine, "fine.py")) == []
    evaluated = "def f(x: int | None): ...\n"  # no __future__ import: evaluated at def time
    assert len(list(py39.runtime_unions(evaluated, "evaluated.py"))) == 1
    newer = tmp_path / "newer.py"
    newer.write_text("from typing import Self\npairs = list(zip([1], [2], strict=True))\n")
    found = py39.vermin([newer])
    assert any("typing.Self" in f for f in found) and any("zip(strict)" in f for f in found)
    assert py39.main([]) == 0
    names = {p.name for p in py39.target_side()}
    assert {
        "verify.py",
        "scenarios.py",
        "events.py",
        "strategies.py",
        "subjects.py",
        "exits.py",
    } <= names
