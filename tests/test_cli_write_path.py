"""The write path under attack and accident (issue 17): Ctrl-C after a rename, links and special
files planted at the tool's own names, a lock held forever, a read-only ``__pycache__``, a full
disk. Each test failed on the writer before issue 17; each checks exit code, message and the
bytes on disk. The interruption matrix (``test_interruption_matrix.py``) covers every step.
"""

from __future__ import annotations

import os
import pwd
import signal
import stat
import subprocess
from pathlib import Path

import pytest
from support.cli import (
    BETWEEN_THE_WRITES,
    FAULT_EXIT,
    NEWEST,
    PYTHON,
    Install,
    cli,
    cli_env,
    drop_root_powers,
    faults,
    json_of,
    read_until,
    unchecked_pyc,
)
from support.fake_install import EVENTS, SPEECH, make, snapshot

from livekit_agents_patch.exits import Exit
from livekit_agents_patch.install.writer import JOURNAL, TMP_SUFFIX

BOTH = {SPEECH: "pristine", EVENTS: "pristine"}
PATCHED = {SPEECH: "patched", EVENTS: "patched"}


@pytest.fixture
def install(tmp_path: Path) -> Install:
    return Install(make(tmp_path / "site", NEWEST), NEWEST)


def _journal(install: Install) -> Path:
    return install.file(SPEECH).parent / JOURNAL


# --- 1. a signal right after a rename ---------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "renamed"),
    [("apply", SPEECH), ("apply", EVENTS), ("revert", EVENTS), ("revert", SPEECH)],
)
def test_ctrl_c_right_after_a_rename_rolls_back_and_says_so(
    install: Install, command: str, renamed: str
) -> None:
    """Before: the rename was not yet recorded when KeyboardInterrupt landed, so the rollback
    skipped it and deleted the journal: ``events.py`` patched over a stock ``speech_handle.py``
    (every ``wait_for_playout`` an AttributeError), or the other mix, unjournaled; a traceback."""
    if command == "revert":
        assert cli("apply", root=install.root).returncode == 0
    start = install.state()
    name = renamed.rsplit("/", 1)[1]
    done = cli(command, root=install.root, env=faults(f"os.replace~/{name}#1:after=SIGINT"))
    assert done.returncode == Exit.SIGINT, done.stderr
    assert install.state() == start
    assert not _journal(install).exists()
    install.no_leftovers()
    state = "pristine" if command == "apply" else "patched"
    assert f"stopped by SIGINT before it finished; the files are now {state}" in done.stderr
    assert "Traceback" not in done.stderr
    again = cli(command, root=install.root)
    assert again.returncode == 0 and install.state() == (PATCHED if command == "apply" else BOTH)


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGHUP"])
def test_a_signal_after_the_commit_says_the_files_are_patched(
    install: Install, signal_name: str
) -> None:
    """Landing after the journal is gone, the write stands: the last line says so (one JSON
    object under --json), not "before it finished" alone."""
    env = faults(f"os.unlink~/{JOURNAL}#1:after={signal_name}")
    done = cli("apply", "--json", root=install.root, env=env)
    assert done.returncode == 128 + int(getattr(signal, signal_name))
    assert "the files are now patched" in str(json_of(done)["error"])
    assert install.state() == PATCHED
    install.no_leftovers()


def test_ctrl_c_while_rolling_back_a_killed_run_keeps_its_journal_and_says_so(
    install: Install,
) -> None:
    """The recovery of a killed run is rolled back last-written file first, so a Ctrl-C in it
    leaves a state that runs, journaled; the next run finishes it."""
    killed = cli("apply", root=install.root, env=faults(BETWEEN_THE_WRITES["apply"] + "=exit"))
    assert killed.returncode == FAULT_EXIT and _journal(install).exists()
    done = cli("apply", root=install.root, env=faults("os.replace#1:after=SIGINT"))
    assert done.returncode == Exit.SIGINT, done.stderr
    assert "while rolling back an interrupted run; nothing is lost: interrupted:" in done.stderr
    assert install.state() == BOTH and _journal(install).exists()
    again = cli("apply", root=install.root)
    assert again.stdout.startswith("applied (after rolling back an interrupted run)")
    assert install.state() == PATCHED
    install.no_leftovers()


# --- 2. links and special files at the tool's own names --------------------------------------


def _victim(tmp_path: Path) -> tuple[Path, tuple[bytes, int, int, int]]:
    """A root-owned 0600 file outside the package, and its bytes, mode and owner."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"root's secret\n")
    victim.chmod(0o600)
    st = victim.stat()
    return victim, (victim.read_bytes(), st.st_mode, st.st_uid, st.st_gid)


def _as_of(victim: Path) -> tuple[bytes, int, int, int]:
    st = victim.stat()
    return victim.read_bytes(), st.st_mode, st.st_uid, st.st_gid


def _give_to_nobody(root: Path) -> None:
    """The venv owned by an unprivileged user, as in the issue (who can plant any name)."""
    nobody = pwd.getpwnam("nobody")
    for directory, dirs, files in os.walk(root):
        for name in [directory, *(os.path.join(directory, n) for n in dirs + files)]:
            os.lchown(name, nobody.pw_uid, nobody.pw_gid)


OWN_NAMES = {
    "speech temp": f".speech_handle.py{TMP_SUFFIX}",
    "events temp": f".events.py{TMP_SUFFIX}",
    "journal temp": f".{JOURNAL}{TMP_SUFFIX}",
    "journal": JOURNAL,
}


@pytest.mark.parametrize("command", ["apply", "revert"])
@pytest.mark.parametrize("name", sorted(OWN_NAMES))
def test_a_link_at_one_of_the_tool_s_names_is_reported_removed_and_never_followed(
    install: Install, tmp_path: Path, name: str, command: str
) -> None:
    """Before: as root, apply wrote, chmod-ed and chown-ed the victim through the temp name's
    link and said "nothing was changed"; a link at the journal's name was read as a journal."""
    if os.geteuid() != 0:
        pytest.skip("the escalation needs root, as CI runs")
    if command == "revert":
        assert cli("apply", root=install.root).returncode == 0
    victim, before = _victim(tmp_path)
    _give_to_nobody(install.root)
    planted = install.file(SPEECH).parent / OWN_NAMES[name]
    planted.symlink_to(victim)
    status = cli("status", root=install.root)
    done = cli(command, root=install.root)
    assert _as_of(victim) == before
    assert done.returncode == 0, done.stderr
    assert install.state() == (PATCHED if command == "apply" else BOTH)
    assert status.returncode == (Exit.PRISTINE if command == "apply" else Exit.OK), status.stdout
    assert f"{planted} is a symbolic link to {victim}, at a name only this tool writes" in (
        status.stdout
    )
    assert not planted.is_symlink() and not planted.exists()
    install.no_leftovers()
    nobody = pwd.getpwnam("nobody").pw_uid
    assert install.file(SPEECH).stat().st_uid == nobody  # the file keeps its owner


@pytest.mark.parametrize("kind", ["link to /dev/zero", "FIFO"])
def test_a_special_file_at_the_journal_s_name_is_never_read(install: Install, kind: str) -> None:
    """Before: a link to /dev/zero there was read forever, a FIFO blocked check and apply."""
    journal = _journal(install)
    if kind == "FIFO":
        os.mkfifo(journal)
    else:
        journal.symlink_to("/dev/zero")
    what = "a FIFO" if kind == "FIFO" else "a symbolic link to /dev/zero"
    status = cli("status", root=install.root)
    assert status.returncode == Exit.PRISTINE
    assert f"{journal} is {what}, at a name only this tool writes" in status.stdout
    check = cli("check", root=install.root)
    assert check.returncode == 0 and check.stdout.startswith("would apply"), check.stderr
    done = cli("apply", root=install.root)
    assert done.returncode == 0 and install.state() == PATCHED, done.stderr
    assert not journal.is_symlink() and not journal.exists()
    assert stat.S_ISCHR(os.stat("/dev/zero").st_mode)


# --- 3. the lock wait is bounded --------------------------------------------------------------


def test_a_held_lock_is_waited_for_at_most_lock_timeout(install: Install, tmp_path: Path) -> None:
    """Before: an apply stopped while holding the lock made every later run wait forever."""
    fifo = tmp_path / "release"
    os.mkfifo(fifo)
    holder = subprocess.Popen(
        [PYTHON, "-m", "livekit_agents_patch", "apply"],
        env=cli_env(install.root, faults(f"fcntl.flock#1:after=hold:{fifo}")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd="/",
    )
    try:
        read_until(holder, "fault: holding at fcntl.flock#1", bytearray())
        before = snapshot(install.root)
        voice = install.file(SPEECH).parent
        for command, seconds in (("apply", "0.2"), ("revert", "0"), ("check", "0")):
            done = cli(command, "--lock-timeout", seconds, root=install.root)
            assert done.returncode == Exit.IO_ERROR, (command, done.stderr)
            assert (
                f"expected to lock {voice} within {seconds} s, but another livekit-agents-patch "
                f"run (pid {holder.pid}) holds it; nothing was changed" in done.stderr
            )
            assert "--lock-timeout SECONDS waits longer" in done.stderr
        data = json_of(cli("apply", "--json", "--lock-timeout", "0", root=install.root))
        assert data["exit"] == Exit.IO_ERROR and f"pid {holder.pid}" in str(data["error"])
        assert snapshot(install.root) == before
        with open(fifo, "w"):
            pass
        assert holder.wait(timeout=60) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
    assert install.state() == PATCHED


@pytest.mark.parametrize("value", ["-1", "soon", "nan", ""])
def test_a_bad_lock_timeout_is_a_usage_error(install: Install, value: str) -> None:
    done = cli("apply", "--lock-timeout", value, root=install.root)
    assert done.returncode == Exit.USAGE
    assert "--lock-timeout" in done.stderr and "seconds" in done.stderr


# --- 4. (defect 11) __pycache__ is checked before writing; a full rollback leaves no journal ---


def test_a_read_only_pycache_with_stale_bytecode_is_refused_before_writing(
    install: Install,
) -> None:
    """Before: exit 7 after writing and rolling back, the journal left behind, and status then
    claimed a run "was killed between its two file writes"."""
    prefix = drop_root_powers()
    unchecked_pyc(install.file(SPEECH))
    cache = install.file(SPEECH).parent / "__pycache__"
    cache.chmod(0o555)
    try:
        before = snapshot(install.root)
        for command in ("check", "apply"):
            done = cli(command, root=install.root, prefix=prefix)
            assert done.returncode == Exit.IO_ERROR, (command, done.stderr)
            assert f"the directory {cache}, which holds bytecode of the files" in done.stderr
            assert "nothing was changed" in done.stderr
        assert snapshot(install.root) == before
        assert not _journal(install).exists()
        status = cli("status", root=install.root, prefix=prefix)
        assert status.returncode == Exit.PRISTINE and "killed" not in status.stdout
    finally:
        cache.chmod(0o755)


def test_a_failure_that_restored_both_files_leaves_no_journal(install: Install) -> None:
    """A bytecode file that cannot be removed after the first rename (injected): both files
    put back, checked, and the journal removed with them."""
    unchecked_pyc(install.file(SPEECH))
    done = cli("apply", root=install.root, env=faults("os.unlink~.pyc#1:before=raise"))
    assert done.returncode == Exit.IO_ERROR, done.stderr
    assert "every file was restored to its previous bytes (checked by hash)" in done.stderr
    assert install.state() == BOTH and not _journal(install).exists()
    assert cli("status", root=install.root).returncode == Exit.PRISTINE


# --- 5. (defect 12) a full disk says so ------------------------------------------------------


@pytest.mark.parametrize("call", ["os.fsync#1", "os.write#3", f"os.replace~/{JOURNAL}#1"])
def test_a_full_disk_says_the_disk_is_full_and_what_to_do(install: Install, call: str) -> None:
    """Before: "an I/O error ... Next: as root, `chattr -i -a` the file and its directory"."""
    before = snapshot(install.root)
    done = cli("apply", root=install.root, env=faults(f"{call}:before=raise:ENOSPC"))
    assert done.returncode == Exit.IO_ERROR, done.stderr
    assert "(the disk is full)" in done.stderr
    assert "Next: free some space on the file system of" in done.stderr
    assert "df -h" in done.stderr and "chattr" not in done.stderr
    assert snapshot(install.root) == before
    install.no_leftovers()


# --- the messages of a failure around the journal --------------------------------------------


def test_a_leftover_that_cannot_be_removed_is_refused_before_writing(install: Install) -> None:
    leftover = install.file(SPEECH).parent / f".events.py{TMP_SUFFIX}"
    leftover.symlink_to("/etc/passwd")
    before = snapshot(install.root)
    done = cli("apply", root=install.root, env=faults(f"os.unlink~{TMP_SUFFIX}#1:before=raise"))
    assert done.returncode == Exit.IO_ERROR, done.stderr
    assert f"could not remove the leftover {leftover}" in done.stderr
    assert "nothing was changed" in done.stderr and snapshot(install.root) == before


def test_a_failed_rollback_of_a_killed_run_keeps_its_journal_and_says_so(install: Install) -> None:
    killed = cli("apply", root=install.root, env=faults(BETWEEN_THE_WRITES["apply"] + "=exit"))
    assert killed.returncode == FAULT_EXIT
    done = cli("apply", root=install.root, env=faults("os.replace#1:before=raise:ENOSPC"))
    assert done.returncode == Exit.IO_ERROR, done.stderr
    assert "cannot roll back the interrupted run" in done.stderr
    assert "(the disk is full)" in done.stderr and "Traceback" not in done.stderr
    assert f"its journal {_journal(install)} keeps the original bytes" in done.stderr
    assert install.state() == {SPEECH: "patched", EVENTS: "pristine"} and _journal(install).exists()
    assert cli("apply", root=install.root).returncode == 0 and install.state() == PATCHED
