"""The CLI at its edges, as a careless or hostile user meets them (issue 17): an empty
``--python``, a reader that stops early, a target that never finishes importing, a target whose
own prints surround the probe's, and the words of refusals that must name a step that works."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import fake_livekit
from support.cli import LK, NEWEST, PYTHON, cli, cli_env, json_of, real_venv_ready
from support.fake_install import make

from livekit_agents_patch.exits import Exit
from livekit_agents_patch.install.index import load

if not real_venv_ready(LK / ".ok") and os.environ.get("LIVEKIT_AGENTS_PATCH_REQUIRE_REAL"):
    raise AssertionError(f"{LK} is required (make venvs)")
NEEDS_LK = pytest.mark.skipif(
    not real_venv_ready(LK / ".ok"),
    reason=f"needs the real-package venv {LK}; `make test` runs this in cli-real",
)

# --- an empty --python (issue 17, defect 3) ----------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("--python", "", "apply"),
        ("apply", "--python", ""),
        ("--python=", "status"),
        ("--python", " ", "verify"),
        ("--python", "", "check", "--allow-unlisted"),
        ("wheel", "--release", NEWEST, "--allow-unlisted", "--python", ""),
    ],
)
def test_an_empty_python_is_a_usage_error_not_this_interpreter(
    tmp_path: Path, argv: tuple[str, ...]
) -> None:
    """Before: ``--python ""`` meant the tool's own interpreter, and apply patched its venv."""
    root = make(tmp_path / "site", NEWEST)  # the tool's own interpreter sees a pristine install
    before = {p: p.read_bytes() for p in root.rglob("*.py")}
    done = cli(*argv, root=root)
    assert done.returncode == Exit.USAGE, done.stdout + done.stderr
    assert "found an empty value" in done.stderr and "mistyped variable" in done.stderr
    assert done.stdout == ""
    data = json_of(cli(*argv, "--json", root=root))
    assert data["exit"] == Exit.USAGE and "found an empty value" in str(data["error"])
    assert {p: p.read_bytes() for p in root.rglob("*.py")} == before
    assert not (tmp_path / "o").exists()


# --- a reader that stops early (defect 5) ------------------------------------------------------


def _closed_stdout(*args: str, root: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI with a stdout pipe whose reader is gone before the first write (``| head``)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [PYTHON, "-m", "livekit_agents_patch", *args],
            env=cli_env(root),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd="/",
        )
    finally:
        os.close(write_end)


def test_a_closed_stdout_keeps_each_commands_exit_and_prints_no_traceback(tmp_path: Path) -> None:
    """Before: scan's exit 1 became 10, status's 6 became 7 ("check that path and its
    permissions"), and under --json a bare traceback with exit 1."""
    tool = tmp_path / "tool.py"
    tool.write_text(
        "from livekit.agents import RunContext\n\n"
        "async def t(ctx: RunContext) -> None:\n"
        "    try:\n        await ctx.wait_for_playout()\n    except Exception:\n        pass\n",
        encoding="utf-8",
    )
    root = make(tmp_path / "site", NEWEST)
    cases = [
        (("scan", str(tool)), None, 1),
        (("scan", "--json", str(tool)), None, 1),
        (("status",), root, Exit.PRISTINE),
        (("status", "--json"), root, Exit.PRISTINE),
        (("show",), root, Exit.OK),
        (("--version",), None, Exit.OK),
    ]
    for argv, where, code in cases:
        done = _closed_stdout(*argv, root=where)
        assert (done.returncode, done.stderr) == (code, ""), argv
    # the control: with a reader, the same runs print (the pipe was what was missing)
    assert cli("status", root=root).stdout.startswith(f"livekit-agents {NEWEST}")


def test_no_stdout_at_all_keeps_each_formats_exit_and_prints_no_traceback(tmp_path: Path) -> None:
    """A stdout closed outright (``cmd >&-``: Python's ``sys.stdout`` is then ``None``), for each
    scan format. Before: exit 10, "internal error: AttributeError: 'NoneType' object has no
    attribute 'write'" (found by the adversarial review of scan)."""
    tool = tmp_path / "tool.py"
    tool.write_text(
        "from livekit.agents import RunContext\n\n"
        "async def t(ctx: RunContext) -> None:\n    await ctx.wait_for_playout()\n",
        encoding="utf-8",
    )
    formats = [("--format", "text"), ("--format", "github"), ("--format", "sarif"), ("--json",)]
    for form in formats:
        done = subprocess.run(
            [PYTHON, "-m", "livekit_agents_patch", "scan", *form, str(tool)],
            env=cli_env(None),
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd="/",
            preexec_fn=lambda: os.close(1),
        )
        assert (done.returncode, done.stderr) == (Exit.OK, ""), form
    # the control: with a stdout, the same run prints its finding
    assert "LKP002" in cli("scan", str(tool)).stdout


# --- verify --timeout, and nothing left behind (defect 4) --------------------------------------


def _hanging_target(tmp_path: Path) -> tuple[Path, Path]:
    """A fake livekit whose ``import livekit.agents`` never returns (it writes its pid first)."""
    site = fake_livekit.make(tmp_path / "hang", NEWEST)
    pid_file = tmp_path / "checks.pid"
    (site / "livekit" / "agents" / "__init__.py").write_text(
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(3600)\n",
        encoding="utf-8",
    )
    return site, pid_file


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie is gone for our purpose only once reaped; an orphan is reaped by init
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
        return f.read().split(") ", 1)[1].startswith("Z")


def test_verify_times_out_with_exit_9_naming_the_step_and_leaves_nothing(tmp_path: Path) -> None:
    """Before: no --timeout; a target whose import hangs kept verify waiting forever."""
    site, pid_file = _hanging_target(tmp_path)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"TMPDIR": str(temp)}
    done = cli("verify", "--timeout", "0.5", root=site, env=env)
    assert done.returncode == Exit.CANNOT_VERIFY, done.stderr
    assert "did not finish within 0.5 s" in done.stderr
    assert "they were importing livekit.agents" in done.stderr and "--timeout" in done.stderr
    assert _gone(int(pid_file.read_text())), "the checks process outlived verify"
    assert list(temp.iterdir()) == []
    pid_file.unlink()
    data = json_of(cli("verify", "--json", "--timeout", "0.5", root=site, env=env))
    assert data["exit"] == Exit.CANNOT_VERIFY and data["timed_out"] is True
    assert str(data["running"]).startswith("importing livekit.agents")
    assert _gone(int(pid_file.read_text())) and list(temp.iterdir()) == []
    for bad in ("0", "-1", "soon", "nan"):
        assert cli("verify", "--timeout", bad, root=site).returncode == Exit.USAGE


def _stopped_while_the_checks_hang(
    argv: list[str],
    env: dict[str, str],
    pid_file: Path,
    signum: signal.Signals,
    while_running: Callable[[], object] = lambda: None,
) -> tuple[int, str, str]:
    """Run the CLI with ``argv``; once the checks wrote their pid (they hang in the import),
    call ``while_running`` and send ``signum``; the exit code and output."""
    process = subprocess.Popen(
        [PYTHON, "-m", "livekit_agents_patch", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
    )
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        while_running()
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    return process.returncode, out, err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_verify_kills_its_checks_and_removes_its_temp_dir(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """Before: SIGTERM left an orphaned checks process, hanging forever: only the direct child
    was killed, here a wrapper script that runs Python as its own child (no ``exec``)."""
    site, pid_file = _hanging_target(tmp_path)
    temp = tmp_path / "tmp"
    temp.mkdir()
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\n{PYTHON} "$@"\nexit $?\n', encoding="utf-8")
    wrapper.chmod(0o755)
    argv = ["--python", str(wrapper), "verify", "--json"]
    lent: list[Path] = []
    code, out, err = _stopped_while_the_checks_hang(
        argv,
        cli_env(site, {"TMPDIR": str(temp)}),
        pid_file,
        signum,
        lambda: lent.extend(temp.iterdir()),
    )
    assert lent != []  # the lent copy, while they run
    assert code == 128 + signum, err
    assert f"stopped by {signum.name}" in out
    assert _gone(int(pid_file.read_text())), "the checks process outlived verify"
    assert list(temp.iterdir()) == []


# --- words that name a step that works (defect 12) ---------------------------------------------


def test_show_of_an_unlisted_release_suggests_what_show_accepts(tmp_path: Path) -> None:
    """Before: it suggested --allow-unlisted, which show rejects as an unknown argument."""
    newest = load().supported()[-1]
    done = cli("show", "--release", "9.9.9")
    assert done.returncode == Exit.UNSUPPORTED
    assert "--allow-unlisted` applies" not in done.stderr
    assert f"show --release {newest}` prints the newest release's patch" in done.stderr
    assert cli("show", "--release", newest).returncode == Exit.OK  # the step it names works
    installed = make(tmp_path / "site", NEWEST, claim="9.9.9")
    done = cli("show", root=installed)
    assert done.returncode == Exit.UNSUPPORTED and f"show --release {newest}`" in done.stderr
    assert "--allow-unlisted` applies" not in done.stderr


_BROKEN = (
    "import sys\n"
    "from livekit_agents_patch import cli\n"
    "from livekit_agents_patch.install import environment\n"
    "def broken(*args, **kwargs):\n"
    "    raise KeyError('a bug')\n"
    "environment.find = broken\n"
    "raise SystemExit(cli.main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize(
    ("command", "rolled_back"), [("status", False), ("show", False), ("apply", True)]
)
def test_an_internal_error_says_rolled_back_only_for_commands_that_write(
    command: str, rolled_back: bool
) -> None:
    """Before: every exit 10 said "a failed write was rolled back", status's too."""
    done = subprocess.run(
        [PYTHON, "-c", _BROKEN, command, "--json"],
        env=cli_env(None),
        capture_output=True,
        text=True,
        cwd="/",
    )
    data = json_of(done)
    assert data["exit"] == Exit.INTERNAL
    error = str(data["error"])
    assert ("A failed write was rolled back" in error) is rolled_back, error
    if not rolled_back:
        assert f"`{command}` changes no file of the install" in error


def _noisy_sitecustomize(root: Path) -> None:
    """A sitecustomize that prints at import and at exit, a forged answer among its lines."""
    (root / "sitecustomize.py").write_text(
        "import atexit, sys\nprint('hello from the image', end='')\n"
        "atexit.register(lambda: print('bye from the image'))\n"
        'atexit.register(lambda: sys.stdout.write(\'{"nonce": "forged", "exit": 0}\'))\n',
        encoding="utf-8",
    )


@NEEDS_LK
def test_verify_reads_the_checks_answer_past_a_targets_own_prints(tmp_path: Path) -> None:
    """The same for verify's checks, on stock 1.8.9: before, their JSON line was followed by
    the target's atexit line, and verify said they "did not finish" (exit 9)."""
    python = str(LK / "bin" / "python")
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    _noisy_sitecustomize(noisy)
    done = cli("--python", python, "verify", "--examples", "5", root=noisy)
    assert "did not finish" not in done.stderr, done.stderr
    assert done.returncode == Exit.VIOLATION, done.stdout + done.stderr
    assert "FAIL: livekit-agents 1.8.9 (pristine)" in done.stdout


def test_a_target_that_prints_at_import_and_at_exit_still_answers_the_probe(
    tmp_path: Path,
) -> None:
    """Before: a sitecustomize whose atexit printed a line made the probe fail with exit 2."""
    root = make(tmp_path / "site", NEWEST)
    _noisy_sitecustomize(root)
    done = cli("--python", PYTHON, "status", "--json", root=root)
    # the CLI itself runs under that sitecustomize too: its JSON is between the two prints
    assert done.returncode == Exit.PRISTINE, done.stdout + done.stderr
    assert '"state": "pristine"' in done.stdout
    assert cli("--python", PYTHON, "apply", root=root).returncode == Exit.OK


def test_a_stopped_unlisted_contract_run_leaves_no_process_and_no_temp_dir(
    tmp_path: Path,
) -> None:
    """``check --allow-unlisted`` runs the contract through a nested ``verify``. Before: SIGTERM
    killed that nested CLI with SIGKILL, so its checks lived on (hanging in the import) and
    its temporary directory stayed."""
    root = make(tmp_path / "site", NEWEST, claim="1.8.99")
    pid_file = tmp_path / "checks.pid"
    (root / "livekit" / "agents" / "__init__.py").write_text(
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(3600)\n",
        encoding="utf-8",
    )
    temp = tmp_path / "tmp"
    temp.mkdir()
    argv = ["check", "--allow-unlisted", "--json"]
    env = cli_env(root, {"TMPDIR": str(temp)})
    code, out, err = _stopped_while_the_checks_hang(argv, env, pid_file, signal.SIGTERM)
    assert code == 143, out + err
    assert _gone(int(pid_file.read_text())), "the contract's checks outlived the command"
    assert list(temp.iterdir()) == []


def test_an_empty_scan_path_is_a_usage_error_naming_it() -> None:
    """Before: ``scan ""`` said "no such file or directory: ." (the empty value read as the
    working directory's name)."""
    done = cli("scan", "", "--json")
    data = json_of(done)
    assert done.returncode == Exit.USAGE
    assert "expected a file or directory to scan, found an empty value ('')" in str(data["error"])
