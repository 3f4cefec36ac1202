"""Revisions of the patch, through the CLI: an install patched by revision 1 (the kept
``patches/revisions/1/`` file, applied to a fake install's real files) is reported as patched by
an older revision, upgraded in one write, and reverted to the wheel's bytes.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from support.cli import (
    BETWEEN_THE_WRITES,
    FAULT_EXIT,
    FIRST,
    NEWEST,
    PATCH,
    Install,
    cli,
    faults,
    json_of,
    sha,
)
from support.fake_install import EVENTS, SPEECH, make, record_hash, snapshot, wheel_file

from livekit_agents_patch.exits import Exit
from livekit_agents_patch.install import matrix
from livekit_agents_patch.install.index import REVISIONS_DIR, load
from livekit_agents_patch.install.writer import JOURNAL

OLD = 1
LATEST = load().revision
OLD_PATCH = PATCH.parent / REVISIONS_DIR / str(OLD) / PATCH.name


def _patched(version: str, patch: Path) -> dict[str, bytes]:
    pristine = {rel: wheel_file(version, rel) for rel in (SPEECH, EVENTS)}
    return matrix.patch_files(pristine, patch.read_text(encoding="utf-8"))


@pytest.fixture(params=[FIRST, NEWEST])
def old_install(tmp_path: Path, request: pytest.FixtureRequest) -> Install:
    """A fake install patched by revision 1, as an earlier livekit-agents-patch left it."""
    version: str = request.param
    install = Install(make(tmp_path / "site", version), version)
    for rel, data in _patched(version, OLD_PATCH).items():
        install.file(rel).write_bytes(data)
    return install


def test_the_index_keeps_every_revision_of_every_supported_release() -> None:
    assert LATEST == 2
    for version in load().supported():
        release = load().releases[version]
        assert sorted(release.revisions) == [1, 2], version
        assert release.revisions[LATEST] == release.patched
        # revision 2 changes speech_handle.py only; its events.py is revision 1's
        assert release.revisions[1][SPEECH] != release.revisions[2][SPEECH]
        assert release.revisions[1][EVENTS] == release.revisions[2][EVENTS]


def test_the_kept_revision_1_hashes_are_the_old_patch_s_results(old_install: Install) -> None:
    release = load().releases[old_install.version]
    for rel in (SPEECH, EVENTS):
        assert sha(old_install.read(rel)) == release.revisions[OLD][rel]


def test_status_names_the_older_revision(old_install: Install) -> None:
    done = cli("status", root=old_install.root)
    assert done.returncode == Exit.OK, done.stdout + done.stderr
    assert f"{SPEECH}: patched (revision 1; revision {LATEST} is newer)" in done.stdout
    assert (
        "patched: the fix for livekit/agents#5359 is in place at revision 1; revision "
        f"{LATEST} is newer" in done.stdout
    )
    assert f"Next: `livekit-agents-patch apply` upgrades it to revision {LATEST}" in done.stdout
    data = json_of(cli("status", "--json", root=old_install.root))
    assert (data["state"], data["revision"], data["latest_revision"]) == ("patched", 1, LATEST)
    files = data["files"]
    assert isinstance(files, list)
    assert [f["revisions"] for f in files] == [[1], [1, 2]]  # speech_handle.py, events.py


def test_check_says_it_would_upgrade_and_writes_nothing(old_install: Install) -> None:
    before = snapshot(old_install.root)
    done = cli("check", root=old_install.root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        f"would upgrade revision 1 to revision {LATEST} ({PATCH.name}): one write of both files"
    )
    assert snapshot(old_install.root) == before


def test_apply_upgrades_to_the_current_revision_byte_exact(old_install: Install) -> None:
    done = cli("apply", "--json", root=old_install.root)
    data = json_of(done)
    assert data["result"] == f"upgraded from revision 1 to revision {LATEST}", done.stderr
    assert {rel: old_install.read(rel) for rel in (SPEECH, EVENTS)} == _patched(
        old_install.version, PATCH
    )
    assert old_install.state() == {SPEECH: "patched", EVENTS: "patched"}
    old_install.no_leftovers()
    status = json_of(cli("status", "--json", root=old_install.root))
    assert (status["state"], status["revision"]) == ("patched", LATEST)
    again = json_of(cli("apply", "--json", root=old_install.root))
    assert again["result"] == "already applied"


def test_revert_from_an_older_revision_gives_the_wheel_s_bytes(old_install: Install) -> None:
    done = cli("revert", root=old_install.root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("reverted (from revision 1):")
    for rel in (SPEECH, EVENTS):
        assert old_install.read(rel) == wheel_file(old_install.version, rel)
    old_install.no_leftovers()


def test_a_failed_upgrade_leaves_revision_1_in_place(old_install: Install) -> None:
    before = snapshot(old_install.root)
    done = cli("apply", root=old_install.root, env=faults(BETWEEN_THE_WRITES["apply"] + "=raise"))
    assert done.returncode == Exit.IO_ERROR
    assert snapshot(old_install.root) == before


def test_an_upgrade_killed_between_the_writes_is_rolled_back_then_redone(
    old_install: Install,
) -> None:
    done = cli("apply", root=old_install.root, env=faults(BETWEEN_THE_WRITES["apply"] + "=exit"))
    assert done.returncode == FAULT_EXIT
    assert old_install.file(SPEECH).parent.joinpath(JOURNAL).exists()
    assert cli("status", root=old_install.root).returncode == Exit.INTERRUPTED
    check = cli("check", root=old_install.root)
    assert check.stdout.startswith(f"would upgrade revision 1 to revision {LATEST}")
    done = cli("apply", root=old_install.root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        f"upgraded from revision 1 to revision {LATEST} (after rolling back an interrupted run)"
    )
    assert old_install.state() == {SPEECH: "patched", EVENTS: "patched"}
    old_install.no_leftovers()


def test_revision_1_s_handle_under_a_foreign_events_file_is_refused(old_install: Install) -> None:
    """Revisions are judged for both files together: one patched, one foreign is refused."""
    old_install.file(EVENTS).write_bytes(old_install.read(EVENTS) + b"# edited\n")
    before = snapshot(old_install.root)
    done = cli("apply", root=old_install.root)
    assert done.returncode == Exit.FOREIGN_EDIT
    assert snapshot(old_install.root) == before


def _as_patched_wheel_install(install: Install, label: str) -> None:
    """Make ``install`` look installed from a patched wheel ``label``: its METADATA version
    carries the label, and its RECORD lists the patched files' bytes."""
    [info] = install.root.glob("livekit_agents-*.dist-info")
    metadata = (info / "METADATA").read_text(encoding="utf-8")
    metadata = re.sub(r"(?m)^Version: .*$", f"Version: {label}", metadata)
    (info / "METADATA").write_text(metadata, encoding="utf-8")
    rows = []
    for row in csv.reader(io.StringIO((info / "RECORD").read_text(encoding="utf-8"))):
        if row and row[0] in (SPEECH, EVENTS):
            data = install.read(row[0])
            row = [row[0], record_hash(data), str(len(data))]
        rows.append(row)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    (info / "RECORD").write_text(out.getvalue(), encoding="utf-8")
    info.rename(info.with_name(f"livekit_agents-{label}.dist-info"))


def test_a_patched_wheel_of_revision_1_is_not_upgraded_in_place(tmp_path: Path) -> None:
    """Its files are the package's own (RECORD lists them): status names the newer revision and
    the wheel to install; apply refuses, names the fallbacks, and writes nothing."""
    install = Install(make(tmp_path / "site", NEWEST), NEWEST)
    for rel, patched in _patched(NEWEST, OLD_PATCH).items():
        install.file(rel).write_bytes(patched)
    _as_patched_wheel_install(install, f"{NEWEST}+fix5359.r1")
    before = snapshot(install.root)
    status = json_of(cli("status", "--json", root=install.root))
    assert (status["state"], status["from_patched_wheel"], status["revision"]) == (
        "patched",
        True,
        1,
    )
    assert f"install the patched wheel of revision {LATEST}" in str(status["next"])
    done = cli("apply", root=install.root)
    assert done.returncode == Exit.FOREIGN_EDIT
    assert f"livekit-agents {NEWEST}+fix5359.r1 was installed from a patched wheel" in done.stderr
    assert "install the patched wheel of the current revision" in done.stderr
    assert snapshot(install.root) == before
