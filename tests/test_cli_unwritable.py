"""Installs that cannot be written: decide first, write only what must change, name the cause.

A read-only mount is made with a bind mount (needs root; skipped otherwise), an immutable file
with ``chattr +i`` (needs root and a file system with inode flags; skipped otherwise). Every
refusal leaves the install byte-identical, with no temporary file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import (
    NEWEST,
    Install,
    cli,
    fresh_process_sees_fix,
    unchecked_pyc,
)
from support.fake_install import EVENTS, SPEECH, make, snapshot

from livekit_agents_patch.exits import Exit
from livekit_agents_patch.install.writer import TMP_SUFFIX


@pytest.fixture
def install(tmp_path: Path) -> Install:
    return Install(make(tmp_path / "site", NEWEST), NEWEST)


def _run(*argv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, capture_output=True)


@contextlib.contextmanager
def read_only_mount(path: Path) -> Iterator[None]:
    """``path`` bind-mounted read-only onto itself for the duration."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only bind mount needs root and mount(8)")
    if _run("mount", "--bind", str(path), str(path)).returncode != 0:
        pytest.skip("bind mounts are not permitted here (no CAP_SYS_ADMIN)")
    try:
        assert _run("mount", "-o", "remount,bind,ro", str(path)).returncode == 0
        # the mount really is read-only, else these tests would prove nothing
        probe = _run("touch", str(path / "probe"))
        assert probe.returncode != 0 and b"Read-only file system" in probe.stderr
        yield
    finally:
        assert _run("umount", str(path)).returncode == 0


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        pytest.skip("chattr +i needs root and chattr(1)")
    done: list[Path] = []
    try:
        for path in paths:
            if _run("chattr", "+i", str(path)).returncode != 0:
                pytest.skip(f"this file system does not take chattr +i ({path})")
            done.append(path)
        # root itself cannot replace it: the flag is the only thing in the way
        probe = _run("python3", "-c", f"import os; os.rename({str(paths[0])!r}, '/dev/null/x')")
        assert probe.returncode != 0
        yield
    finally:
        for path in done:
            _run("chattr", "-i", str(path))


def test_already_applied_on_a_read_only_mount_writes_nothing(install: Install) -> None:
    assert cli("apply", root=install.root).returncode == 0
    before = snapshot(install.root)
    with read_only_mount(install.root):
        for command, said in (("check", "already applied"), ("apply", "already applied")):
            done = cli(command, root=install.root)
            assert done.returncode == Exit.OK, (command, done.stderr)
            assert done.stdout.startswith(said), done.stdout
        assert cli("status", root=install.root).returncode == Exit.OK
        refused = cli("revert", root=install.root)
    assert snapshot(install.root) == before
    assert refused.returncode == Exit.IO_ERROR
    assert "is on a read-only file system" in refused.stderr
    assert "nothing was changed" in refused.stderr
    install.no_leftovers()


def test_already_pristine_on_a_read_only_mount_writes_nothing(install: Install) -> None:
    before = snapshot(install.root)
    with read_only_mount(install.root):
        done = cli("revert", root=install.root)
        assert done.returncode == Exit.OK, done.stderr
        assert done.stdout.startswith("already pristine")
        for command in ("check", "apply"):
            refused = cli(command, root=install.root)
            assert refused.returncode == Exit.IO_ERROR, (command, refused.stderr)
            assert f"{install.file(SPEECH).parent} is on a read-only file system" in refused.stderr
            assert "before its file system is made read-only" in refused.stderr
    assert snapshot(install.root) == before
    install.no_leftovers()


def test_immutable_files_are_named_by_check_and_apply(install: Install) -> None:
    before = snapshot(install.root)
    with immutable(install.file(SPEECH), install.file(EVENTS)):
        for command in ("check", "apply"):
            done = cli(command, root=install.root)
            assert done.returncode == Exit.IO_ERROR, (command, done.stdout, done.stderr)
            assert f"the file {install.file(SPEECH)} is immutable" in done.stderr
            assert f"chattr -i -a {install.file(SPEECH)}" in done.stderr
            assert "nothing was changed" in done.stderr
            assert "directory" not in done.stderr.split("Next:")[0]
    assert snapshot(install.root) == before
    install.no_leftovers()


def test_immutable_second_file_found_before_the_first_is_written(install: Install) -> None:
    before = snapshot(install.root)
    with immutable(install.file(EVENTS)):
        done = cli("apply", root=install.root)
    assert done.returncode == Exit.IO_ERROR
    assert f"the file {install.file(EVENTS)} is immutable" in done.stderr
    assert snapshot(install.root) == before
    install.no_leftovers()


def test_symlinked_target_bytecode_is_dropped_under_the_imported_name(install: Install) -> None:
    """Python caches ``speech_handle`` under the link's name, not the link target's."""
    real = install.file("livekit/agents/voice/real_speech_handle.py")
    shutil.move(install.file(SPEECH), real)
    install.file(SPEECH).symlink_to(real.name)
    pyc = unchecked_pyc(install.file(SPEECH))
    assert pyc.name.startswith("speech_handle.")
    assert not fresh_process_sees_fix(install.file(SPEECH))
    assert cli("apply", root=install.root).returncode == 0
    assert not pyc.exists()
    assert fresh_process_sees_fix(install.file(SPEECH))


def test_leftover_journal_temp_is_reported_and_cleaned_by_a_no_op_run(install: Install) -> None:
    voice = install.file(SPEECH).parent
    leftover = voice / f"..livekit-agents-patch.journal{TMP_SUFFIX}"
    leftover.write_bytes(b"{" * 46_000)  # a journal cut short by a kill
    status = cli("status", root=install.root)
    assert status.returncode == Exit.PRISTINE
    assert f"note: {leftover} (46000 bytes) was left by a killed run" in status.stdout
    done = cli("revert", root=install.root)  # nothing to revert: still cleans up
    assert done.returncode == Exit.OK and done.stdout.startswith("already pristine")
    assert not leftover.exists()
    assert "left by a killed run" not in cli("status", root=install.root).stdout
    install.no_leftovers()
