"""The CLI as a user runs it: a subprocess on a fake install, real exit codes, output and bytes.

Each fake install (``support/fake_install.py``) holds a release's real files and metadata from
its wheel and is put on ``PYTHONPATH``. ``PATH`` points nowhere, so no git and no patch program
can be used. Every refusal is checked for its exit code, its message, and the bytes on disk:
a failing run must leave the whole install as it found it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from support.cli import (
    BETWEEN_THE_WRITES,
    FAULT_EXIT,
    FIRST,
    LK,
    NEWEST,
    PATCH,
    PYTHON,
    REINSTALL,
    Install,
    cli,
    cli_env,
    drop_root_powers,
    expected,
    faults,
    first_hunk_header,
    fresh_process_sees_fix,
    hunk_line,
    json_of,
    read_until,
    real_venv_ready,
    sha,
    unchecked_pyc,
)
from support.fake_install import EVENTS, REPO, SPEECH, make, snapshot, wheel_file
from unidiff.constants import LINE_TYPE_ADDED, LINE_TYPE_CONTEXT

from livekit_agents_patch.exits import Exit
from livekit_agents_patch.install.index import load
from livekit_agents_patch.install.writer import JOURNAL


@pytest.fixture
def install(tmp_path: Path) -> Install:
    return Install(make(tmp_path / "site", NEWEST), NEWEST)


# --- the normal path -------------------------------------------------------------------------


def test_status_apply_revert_round_trip_is_byte_exact(install: Install) -> None:
    pristine = {rel: install.read(rel) for rel in (SPEECH, EVENTS)}
    assert pristine == {rel: wheel_file(NEWEST, rel) for rel in (SPEECH, EVENTS)}

    done = cli("status", root=install.root)
    assert done.returncode == Exit.PRISTINE
    assert f"livekit-agents {NEWEST} at {install.root}" in done.stdout
    assert f"{SPEECH}: pristine" in done.stdout and f"{EVENTS}: pristine" in done.stdout
    assert "Next: `livekit-agents-patch apply`" in done.stdout

    done = cli("check", root=install.root)
    assert (done.returncode, install.state()) == (0, {SPEECH: "pristine", EVENTS: "pristine"})
    assert done.stdout.startswith(f"would apply {PATCH.name}")

    done = cli("apply", root=install.root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("applied: livekit-agents 1.8.9")
    assert install.state() == {SPEECH: "patched", EVENTS: "patched"}
    install.no_leftovers()

    assert cli("status", root=install.root).returncode == Exit.OK
    before = snapshot(install.root)
    mtimes = [install.file(rel).stat().st_mtime_ns for rel in (SPEECH, EVENTS)]
    done = cli("apply", root=install.root)
    assert (done.returncode, done.stdout.split(":")[0]) == (0, "already applied")
    assert snapshot(install.root) == before
    assert [install.file(rel).stat().st_mtime_ns for rel in (SPEECH, EVENTS)] == mtimes

    done = cli("revert", root=install.root)
    assert done.returncode == 0 and done.stdout.startswith("reverted:")
    assert f"{REINSTALL}{NEWEST}" in done.stdout
    assert {rel: install.read(rel) for rel in (SPEECH, EVENTS)} == pristine
    done = cli("revert", root=install.root)
    assert (done.returncode, done.stdout.split(":")[0]) == (0, "already pristine")
    install.no_leftovers()


def test_json_on_every_command(install: Install) -> None:
    status = json_of(cli("status", "--json", root=install.root))
    assert status["state"] == "pristine" and status["exit"] == Exit.PRISTINE
    assert status["version"] == NEWEST and status["supported"] is True
    files = status["files"]
    assert isinstance(files, list)
    assert [(f["file"], f["state"]) for f in files] == [(SPEECH, "pristine"), (EVENTS, "pristine")]
    assert files[0]["sha256"] == expected(NEWEST, "pristine", SPEECH)

    assert (
        json_of(cli("--json", "check", root=install.root))["result"] == f"would apply {PATCH.name}"
    )
    assert json_of(cli("apply", "--json", root=install.root))["result"] == "applied"
    assert json_of(cli("status", "--json", root=install.root))["state"] == "patched"
    shown = json_of(cli("show", "--json", root=install.root))
    assert shown["patch"] == PATCH.read_text(encoding="utf-8")
    assert json_of(cli("revert", "--json", root=install.root))["result"] == "reverted"
    # errors too: no install, a bad command, a bad option value
    missing = json_of(cli("apply", "--json"))
    assert missing["exit"] == Exit.NOT_INSTALLED and "found none" in str(missing["error"])
    assert json_of(cli("--json", "frobnicate"))["exit"] == Exit.USAGE
    verify = json_of(cli("verify", "--json", "--examples", "x"))
    assert verify["exit"] == Exit.USAGE and "invalid int value" in str(verify["error"])


def test_not_installed_and_bad_interpreter(tmp_path: Path) -> None:
    done = cli("apply")
    assert done.returncode == Exit.NOT_INSTALLED
    assert "expected livekit-agents in the environment of" in done.stderr
    assert "pip install livekit-agents" in done.stderr
    done = cli("--python", str(tmp_path / "nope"), "status")
    assert done.returncode == Exit.USAGE
    assert f"expected a Python interpreter at {tmp_path / 'nope'}" in done.stderr
    done = cli("verify")
    assert done.returncode == Exit.NOT_INSTALLED
    assert "expected an importable livekit-agents" in done.stderr


def test_show_prints_the_patch_with_its_header(install: Install) -> None:
    done = cli("show", root=install.root)
    assert done.returncode == 0
    assert done.stdout == PATCH.read_text(encoding="utf-8")
    assert "Bug: https://github.com/livekit/agents/issues/5359" in done.stdout
    assert "diff --git a/livekit-agents/livekit/agents/voice/events.py" in done.stdout
    assert cli("show", "--release", FIRST).stdout == done.stdout  # no install needed
    refused = cli("show", "--release", "1.2.1")
    assert refused.returncode == Exit.UNSUPPORTED and f"{FIRST} or later" in refused.stderr


# --- versions --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.2.1"])
def test_unsupported_version(tmp_path: Path, version: str) -> None:
    reason = load().releases[version].unsupported
    assert reason is not None
    root = make(tmp_path / "site", version)
    before = snapshot(root)
    done = cli("status", root=root)
    assert done.returncode == Exit.UNSUPPORTED
    assert f"unsupported: livekit-agents {version}: {reason}" in done.stdout
    assert f"{SPEECH}: pristine" in done.stdout  # judged by the wheel's RECORD
    for command in ("check", "apply", "revert", "show"):
        done = cli(command, root=root)
        assert done.returncode == Exit.UNSUPPORTED, command
        assert f"livekit-agents {version} is not supported" in done.stderr
        assert f"Next: upgrade livekit-agents to {FIRST} or later" in done.stderr
    assert snapshot(root) == before


def test_version_not_in_the_index(tmp_path: Path) -> None:
    root = make(tmp_path / "site", NEWEST, claim="9.9.9")
    before = snapshot(root)
    done = cli("apply", root=root)
    assert done.returncode == Exit.UNSUPPORTED
    assert (
        f"livekit-agents 9.9.9 is not in the patch index (it covers {FIRST} to {NEWEST})"
        in done.stderr
    )
    assert "livekit-agents-patch verify" in done.stderr
    assert "--allow-unlisted" in done.stderr
    status = json_of(cli("status", "--json", root=root))
    assert status["state"] == "pristine" and status["listed"] is False
    assert "apply --allow-unlisted" in str(status["next"])
    assert snapshot(root) == before


def test_a_version_older_than_the_index_is_unsupported_even_with_the_opt_in(
    tmp_path: Path,
) -> None:
    """Before: status advised `verify` for 1.1.7; `--allow-unlisted` is for newer releases."""
    root = make(tmp_path / "site", NEWEST, claim="1.1.7")
    before = snapshot(root)
    status = json_of(cli("status", "--json", root=root))
    assert status["state"] == "unsupported" and status["exit"] == Exit.UNSUPPORTED
    assert status["unsupported_reason"] == "older than every release the patch index lists"
    assert status["next"] == f"upgrade livekit-agents to {FIRST} or later"
    done = cli("apply", "--allow-unlisted", root=root)
    assert done.returncode == Exit.UNSUPPORTED
    assert f"Next: upgrade livekit-agents to {FIRST} or later" in done.stderr
    assert snapshot(root) == before


def test_wrong_version_files_of_another_release(tmp_path: Path) -> None:
    """The metadata says 1.8.9; the files are 1.8.8's (events.py differs, speech_handle not)."""
    root = make(tmp_path / "site", NEWEST, files_from="1.8.8")
    before = snapshot(root)
    done = cli("status", root=root)
    assert done.returncode == Exit.FOREIGN_EDIT
    assert f"{SPEECH}: pristine" in done.stdout
    assert f"{EVENTS}: foreign edit (expected sha256 " in done.stdout
    assert "the pristine file of livekit-agents 1.8.7, 1.8.8" in done.stdout
    assert "livekit/agents/version.py says 1.8.8" in done.stdout
    done = cli("apply", root=root)
    assert done.returncode == Exit.FOREIGN_EDIT
    assert "expected both files pristine (or both patched) for livekit-agents 1.8.9" in done.stderr
    assert "the pristine file of livekit-agents 1.8.7, 1.8.8" in done.stderr
    assert "first difference:" in done.stderr
    assert f"{REINSTALL}1.8.9" in done.stderr
    assert cli("check", root=root).returncode == Exit.FOREIGN_EDIT
    assert snapshot(root) == before


# --- damaged installs ------------------------------------------------------------------------


def test_foreign_edit_in_one_file_names_hunk_and_line(install: Install) -> None:
    context = hunk_line(SPEECH, LINE_TYPE_CONTEXT)
    text = install.read(SPEECH).decode("utf-8")
    assert text.count(context) >= 1
    install.file(SPEECH).write_text(
        text.replace(context, context.rstrip() + "  # local tweak\n", 1)
    )
    before = snapshot(install.root)
    done = cli("status", root=install.root)
    assert done.returncode == Exit.FOREIGN_EDIT
    assert f"{SPEECH}: foreign edit" in done.stdout and f"{EVENTS}: pristine" in done.stdout
    for command in ("check", "apply"):
        done = cli(command, root=install.root)
        assert done.returncode == Exit.FOREIGN_EDIT, command
        header = first_hunk_header(SPEECH)
        assert f"{install.file(SPEECH)}: cannot apply hunk {header}" in done.stderr
        assert f"expected {context.rstrip()!r}" in done.stderr
        assert f"found {(context.rstrip() + '  # local tweak')!r}" in done.stderr
        assert f"{REINSTALL}{NEWEST}" in done.stderr
    assert snapshot(install.root) == before


def test_one_file_missing(install: Install) -> None:
    install.file(EVENTS).unlink()
    before = snapshot(install.root)
    done = cli("status", "--json", root=install.root)
    data = json_of(done)
    assert (data["exit"], data["state"]) == (Exit.FOREIGN_EDIT, "missing")
    for command in ("check", "apply", "revert"):
        done = cli(command, root=install.root)
        assert done.returncode == Exit.FOREIGN_EDIT, command
        assert (
            f"expected {install.file(EVENTS)} (livekit-agents 1.8.9), found no file" in done.stderr
        )
        assert f"{REINSTALL}{NEWEST}" in done.stderr
    assert snapshot(install.root) == before


def test_revert_after_a_foreign_edit(install: Install) -> None:
    assert cli("apply", root=install.root).returncode == 0
    added = hunk_line(SPEECH, LINE_TYPE_ADDED)
    text = install.read(SPEECH).decode("utf-8")
    install.file(SPEECH).write_text(text.replace(added, added.rstrip() + "  # mine\n", 1))
    before = snapshot(install.root)
    done = cli("revert", root=install.root)
    assert done.returncode == Exit.FOREIGN_EDIT
    assert "expected both files patched (or both pristine)" in done.stderr
    assert f"cannot reverse hunk {first_hunk_header(SPEECH)}" in done.stderr
    assert f"found {(added.rstrip() + '  # mine')!r}" in done.stderr
    assert f"{REINSTALL}{NEWEST}" in done.stderr
    assert snapshot(install.root) == before


def test_symlink_out_of_the_package_is_refused(install: Install, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "speech_handle.py"
    outside.parent.mkdir()
    shutil.move(install.file(SPEECH), outside)
    install.file(SPEECH).symlink_to(outside)
    before, outside_bytes = snapshot(install.root), outside.read_bytes()
    for command in ("check", "apply"):
        done = cli(command, root=install.root)
        assert done.returncode == Exit.IO_ERROR, command
        assert f"{install.file(SPEECH)} resolves to {outside}, outside the package" in done.stderr
        assert "nothing was changed" in done.stderr
    assert (
        "outside the package: apply refuses to write it" in cli("status", root=install.root).stdout
    )
    assert snapshot(install.root) == before and outside.read_bytes() == outside_bytes


def test_symlink_inside_the_package_is_followed(install: Install) -> None:
    real = install.file("livekit/agents/real_speech_handle.py")
    shutil.move(install.file(SPEECH), real)
    install.file(SPEECH).symlink_to("../real_speech_handle.py")
    assert cli("apply", root=install.root).returncode == 0
    assert install.file(SPEECH).is_symlink()
    assert sha(real.read_bytes()) == expected(NEWEST, "patched", SPEECH)


def test_read_only_directory(install: Install, tmp_path: Path) -> None:
    prefix = drop_root_powers()
    voice = install.file(SPEECH).parent
    voice.chmod(0o555)
    try:
        # the prefix really takes the power away (else this test would prove nothing)
        probe = subprocess.run(
            [*prefix, PYTHON, "-c", f"open({str(voice / 'x')!r}, 'w')"], capture_output=True
        )
        assert probe.returncode != 0 and b"PermissionError" in probe.stderr
        before = snapshot(install.root)
        for command in ("check", "apply"):
            done = cli(command, root=install.root, prefix=prefix)
            assert done.returncode == Exit.IO_ERROR, (command, done.stderr)
            assert f"the directory {voice} is not writable by this user" in done.stderr
            assert "nothing was changed" in done.stderr
        assert cli("status", root=install.root, prefix=prefix).returncode == Exit.PRISTINE
        assert snapshot(install.root) == before
    finally:
        voice.chmod(0o755)


# --- concurrency and crashes -----------------------------------------------------------------


def test_two_concurrent_applies_serialize(install: Install, tmp_path: Path) -> None:
    """A holds the lock (a fault holds it there); B must wait for it, then find the work done."""
    fifo = tmp_path / "release"
    os.mkfifo(fifo)
    command = [PYTHON, "-m", "livekit_agents_patch", "apply"]
    first = subprocess.Popen(
        command,
        env=cli_env(install.root, faults(f"fcntl.flock#1:after=hold:{fifo}")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd="/",
    )
    second: subprocess.Popen[bytes] | None = None
    try:
        first_err, second_err = bytearray(), bytearray()
        read_until(first, "fault: holding at fcntl.flock#1", first_err)
        second = subprocess.Popen(
            command,
            env=cli_env(install.root),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd="/",
        )
        read_until(second, "waiting for another livekit-agents-patch run", second_err)
        assert install.state() == {SPEECH: "pristine", EVENTS: "pristine"}  # B did not write
        with open(fifo, "w"):
            pass  # let A go on
        out1, _ = first.communicate(timeout=60)
        out2, _ = second.communicate(timeout=60)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert (first.returncode, out1.decode().split(":")[0]) == (0, "applied")
    assert (second.returncode, out2.decode().split(":")[0]) == (0, "already applied")
    assert install.state() == {SPEECH: "patched", EVENTS: "patched"}
    install.no_leftovers()


def test_concurrent_applies_race(install: Install) -> None:
    procs = [
        subprocess.Popen(
            [PYTHON, "-m", "livekit_agents_patch", "apply", "--json"],
            env=cli_env(install.root),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd="/",
        )
        for _ in range(4)
    ]
    results = sorted(json.loads(p.communicate(timeout=60)[0])["result"] for p in procs)
    assert results == ["already applied"] * 3 + ["applied"]
    assert all(p.returncode == 0 for p in procs)
    assert install.state() == {SPEECH: "patched", EVENTS: "patched"}
    install.no_leftovers()


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("as_json", [True, False])
def test_a_signal_ends_the_command_with_one_line_and_128_plus_its_number(
    install: Install, signal_name: str, as_json: bool
) -> None:
    """Before: SIGTERM and SIGHUP killed the process where it stood (no line, no JSON, exit -15
    / -1), SIGINT printed a traceback and exit 1. Delivered once the lock is held, before any
    write: nothing changed."""
    before = snapshot(install.root)
    env = faults(f"fcntl.flock#1:after={signal_name}")
    done = cli("apply", *(["--json"] if as_json else []), root=install.root, env=env)
    code = 128 + int(getattr(signal, signal_name))
    assert done.returncode == code, done.stderr
    message = f"stopped by {signal_name} before it finished"
    if as_json:
        data = json_of(done)
        assert message in str(data["error"]) and done.stderr == ""
    else:
        assert done.stdout == "" and message in done.stderr and "Traceback" not in done.stderr
    assert snapshot(install.root) == before
    install.no_leftovers()


def test_an_ignored_signal_stays_ignored(install: Install) -> None:
    """``nohup`` ignores SIGHUP (and a shell's background job, SIGINT): the run goes on."""
    command = [PYTHON, "-m", "livekit_agents_patch", "apply"]
    env = cli_env(install.root, faults("fcntl.flock#1:after=SIGHUP", "fcntl.flock#1:after=SIGINT"))
    done = subprocess.run(
        ["nohup", *command] if shutil.which("nohup") else command,
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd="/",
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert done.returncode == 0, done.stderr
    assert install.state() == {SPEECH: "patched", EVENTS: "patched"}


@pytest.mark.parametrize("command", ["apply", "revert"])
def test_injected_exception_between_the_writes_restores_everything(
    install: Install, command: str
) -> None:
    if command == "revert":
        assert cli("apply", root=install.root).returncode == 0
    before = snapshot(install.root)
    state = install.state()
    done = cli(command, root=install.root, env=faults(BETWEEN_THE_WRITES[command] + "=raise"))
    assert done.returncode == Exit.IO_ERROR
    assert "injected fault at os.replace~" in done.stderr
    assert "every file was restored to its previous bytes" in done.stderr
    assert snapshot(install.root) == before and install.state() == state
    done = cli(command, root=install.root)
    assert done.returncode == 0 and done.stdout.startswith(
        "applied:" if command == "apply" else "reverted:"
    )
    install.no_leftovers()


@pytest.mark.parametrize("next_run", ["apply", "revert"])
def test_killed_between_the_writes_is_rolled_back_by_the_next_run(
    install: Install, next_run: str
) -> None:
    pristine = {rel: install.read(rel) for rel in (SPEECH, EVENTS)}
    done = cli("apply", root=install.root, env=faults(BETWEEN_THE_WRITES["apply"] + "=exit"))
    assert done.returncode == FAULT_EXIT  # os._exit: no cleanup ran
    # speech_handle.py is replaced first, so the mixed state runs (stock behaviour): the patched
    # events.py would call a method only the patched speech_handle.py has
    assert install.state() == {SPEECH: "patched", EVENTS: "pristine"}
    assert install.file(SPEECH).parent.joinpath(JOURNAL).exists()
    status = cli("status", root=install.root)
    assert status.returncode == Exit.INTERRUPTED
    assert "interrupted: a write was cut short (a run killed mid-write" in status.stdout
    check = cli("check", root=install.root)
    assert check.returncode == 0
    assert check.stdout.startswith(f"would apply {PATCH.name} (after rolling back an interrupted")

    done = cli(next_run, root=install.root)
    assert done.returncode == 0, done.stderr
    if next_run == "apply":
        assert done.stdout.startswith("applied (after rolling back an interrupted run)")
        assert install.state() == {SPEECH: "patched", EVENTS: "patched"}
    else:
        assert done.stdout.startswith("already pristine (after rolling back an interrupted run)")
        assert {rel: install.read(rel) for rel in (SPEECH, EVENTS)} == pristine
    install.no_leftovers()


def test_killed_revert_leaves_the_runnable_mixed_state(install: Install) -> None:
    """A revert undoes events.py first: a kill leaves the same state a killed apply does."""
    assert cli("apply", root=install.root).returncode == 0
    revert_killed = faults(BETWEEN_THE_WRITES["revert"] + "=exit")
    assert cli("revert", root=install.root, env=revert_killed).returncode == FAULT_EXIT
    assert install.state() == {SPEECH: "patched", EVENTS: "pristine"}
    done = cli("revert", root=install.root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("reverted (after rolling back an interrupted run)")
    assert install.state() == {SPEECH: "pristine", EVENTS: "pristine"}


def test_journal_is_not_replayed_over_later_edits(install: Install) -> None:
    apply_killed = faults(BETWEEN_THE_WRITES["apply"] + "=exit")
    assert cli("apply", root=install.root, env=apply_killed).returncode == FAULT_EXIT
    install.file(SPEECH).write_bytes(install.read(SPEECH) + b"# edited after the crash\n")
    before = snapshot(install.root)
    done = cli("apply", root=install.root)
    assert done.returncode == Exit.INTERRUPTED
    assert f"{install.file(SPEECH)} has changed since" in done.stderr
    assert f"delete {install.file(SPEECH).parent / JOURNAL}" in done.stderr
    assert snapshot(install.root) == before


# --- odd inputs ------------------------------------------------------------------------------


def test_crlf_patch_file(install: Install, tmp_path: Path) -> None:
    """A checkout that turned the patch's line ends into CRLF still applies byte-exact LF."""
    copy = tmp_path / "tool"
    shutil.copytree(REPO / "livekit_agents_patch", copy / "livekit_agents_patch")
    shutil.copytree(REPO / "patches", copy / "patches")
    crlf = copy / "patches" / PATCH.name
    crlf.write_bytes(PATCH.read_bytes().replace(b"\n", b"\r\n"))
    assert crlf.read_bytes().count(b"\r\n") > 100
    env = {"PYTHONPATH": f"{copy}{os.pathsep}{install.root}"}
    where = subprocess.run(
        [
            PYTHON,
            "-c",
            "from livekit_agents_patch.install.index import patches_dir; print(patches_dir())",
        ],
        env=cli_env(None, env),
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert where.stdout.strip() == str(copy / "patches")  # the CRLF copy is the one in use
    done = cli("apply", env=env)
    assert done.returncode == 0, done.stderr
    assert install.state() == {SPEECH: "patched", EVENTS: "patched"}
    assert b"\r" not in install.read(SPEECH) + install.read(EVENTS)
    assert cli("revert", env=env).returncode == 0
    assert install.read(SPEECH) == wheel_file(NEWEST, SPEECH)


def test_stale_unchecked_hash_pyc_trap_is_real(tmp_path: Path) -> None:
    """Negative control: replacing the source alone leaves a fresh process on the old code."""
    source = tmp_path / "speech_handle.py"
    source.write_bytes(wheel_file(NEWEST, SPEECH))
    unchecked_pyc(source)
    patched = Install(make(tmp_path / "site", NEWEST), NEWEST)
    assert cli("apply", root=patched.root).returncode == 0
    source.write_bytes(patched.read(SPEECH))
    assert not fresh_process_sees_fix(source)


def test_apply_and_revert_defeat_stale_unchecked_hash_pyc(install: Install) -> None:
    pycs = [unchecked_pyc(install.file(rel)) for rel in (SPEECH, EVENTS)]
    assert not fresh_process_sees_fix(install.file(SPEECH))
    assert cli("apply", root=install.root).returncode == 0
    assert not any(p.exists() for p in pycs)
    assert fresh_process_sees_fix(install.file(SPEECH))
    unchecked_pyc(install.file(SPEECH))  # now cached patched, unchecked
    assert cli("revert", root=install.root).returncode == 0
    assert not fresh_process_sees_fix(install.file(SPEECH))


# --- verify, on the real newest release ------------------------------------------------------


def _need_real_venv() -> Path:
    python = LK / "bin" / "python"
    if not real_venv_ready(LK / ".patched.ok"):
        if os.environ.get("LIVEKIT_AGENTS_PATCH_REQUIRE_REAL"):
            raise AssertionError(f"{LK} with patched/ is required (make venvs)")
        pytest.skip(f"{LK} not built (make venvs); `make test` runs this in test-extra")
    return python


def test_verify_fails_with_a_trace_on_stock_and_passes_on_patched() -> None:
    python = _need_real_venv()
    run: Callable[..., subprocess.CompletedProcess[str]] = cli
    stock = run("--python", str(python), "verify", "--examples", "200")
    assert stock.returncode == Exit.VIOLATION, stock.stderr
    assert stock.stdout.startswith(f"FAIL: livekit-agents {NEWEST} (pristine)")
    assert "property violated:" in stock.stdout and "event trace:" in stock.stdout
    assert "interrupt(" in stock.stdout
    assert "Next: livekit-agents-patch apply" in stock.stdout
    data = json_of(run("--python", str(python), "verify", "--json", "--examples", "200"))
    assert data["ok"] is False and str(data["property"]) in stock.stdout
    # derandomized: a second run shrinks to the very same counterexample
    assert isinstance(data["trace"], str) and "event trace:" in data["trace"]
    assert data["trace"] in stock.stdout

    overlay = {"PYTHONPATH": str(LK / "patched")}
    patched = run("verify", env=overlay, python=str(python))
    assert patched.returncode == 0, patched.stdout + patched.stderr
    assert patched.stdout.startswith(
        f"ok: every property holds in 500 scenarios on livekit-agents {NEWEST} (patched"
    )
    status = run("status", env=overlay, python=str(python))
    assert status.returncode == 0 and "which shadows the installed distribution" in status.stdout


_BROKEN = (
    "import sys\n"
    "from livekit_agents_patch import cli\n"
    "from livekit_agents_patch.install import patching\n"
    "def broken(*args, **kwargs):\n"
    "    raise KeyError('a bug')\n"
    "patching.check = broken\n"
    "raise SystemExit(cli.main(sys.argv[1:]))\n"
)


def test_a_bug_of_the_tool_is_one_json_object_with_a_documented_exit(install: Install) -> None:
    """Before: a traceback and exit 1 (verify's "a property does not hold"), no JSON."""
    env = cli_env(install.root)
    argv = [PYTHON, "-c", _BROKEN, "check"]
    done = subprocess.run(argv + ["--json"], env=env, capture_output=True, text=True, cwd="/")
    data = json_of(done)
    assert data["exit"] == Exit.INTERNAL
    assert "internal error: KeyError: 'a bug'" in str(data["error"])
    assert "Traceback" in str(data["traceback"])
    text = subprocess.run(argv, env=env, capture_output=True, text=True, cwd="/")
    assert text.returncode == Exit.INTERNAL and text.stdout == ""
    assert "Traceback" in text.stderr and "Next: report this" in text.stderr
