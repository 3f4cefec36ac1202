"""``livekit-agents-patch wheel`` and installs from its wheel, as a user runs them.

The wheel is built from upstream's real wheel (``.cache/wheels``, passed with ``--from``, so
these tests need no network once it is cached); ``make wheel-check`` installs it for real, with
pip and with uv (``tests/test_wheel_install.py``).
"""

from __future__ import annotations

import csv
import io
import os
import shlex
import subprocess
import zipfile
from pathlib import Path

import pytest
from support.cli import NEWEST, PYTHON, REINSTALL, Install, cli, cli_env, json_of, sha
from support.fake_install import EVENTS, SPEECH, WHEELS, from_wheel, make, record_hash, snapshot
from support.readme import blocks, section

from livekit_agents_patch.exits import Exit
from livekit_agents_patch.install import matrix
from livekit_agents_patch.install.index import load, local_version, split_local

PATCHED = local_version(load().releases[NEWEST])
NAME = f"livekit_agents-{PATCHED}-py3-none-any.whl"
OLD_INFO = f"livekit_agents-{NEWEST}.dist-info"
NEW_INFO = f"livekit_agents-{PATCHED}.dist-info"


@pytest.fixture(scope="module")
def upstream() -> Path:
    return matrix.wheel(NEWEST, WHEELS)


def build(upstream: Path, output: Path, *extra: str, env: dict[str, str] | None = None) -> Path:
    done = cli(
        "wheel",
        "--release",
        NEWEST,
        "--from",
        str(upstream),
        "--output",
        str(output),
        *extra,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return output / NAME


def entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


# --- the wheel -------------------------------------------------------------------------------


def test_label_names_the_bug_and_the_revision() -> None:
    release = load().releases[NEWEST]
    assert f"{NEWEST}+fix5359.r{release.revision}" == PATCHED
    assert split_local(PATCHED) == (NEWEST, release.revision)
    assert split_local(NEWEST) == (NEWEST, None)
    assert split_local(f"{NEWEST}+cu118") == (f"{NEWEST}+cu118", None)


def test_built_twice_is_byte_identical(upstream: Path, tmp_path: Path) -> None:
    first = build(upstream, tmp_path / "a")
    # another time zone, umask and directory: nothing of the machine or the moment gets in
    old = os.umask(0o077)
    try:
        second = build(upstream, tmp_path / "b" / "c", env={"TZ": "Pacific/Kiritimati"})
    finally:
        os.umask(old)
    assert first.read_bytes() == second.read_bytes()
    # negative control for the comparison: a rebuild with a different timestamp would be seen
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(tmp_path / "moved.whl", "w") as out:
        for info in a.infolist():
            info.date_time = (2021, 1, 1, 0, 0, 0)
            out.writestr(info, a.read(info))
    assert (tmp_path / "moved.whl").read_bytes() != first.read_bytes()


def test_only_the_patched_files_metadata_version_and_record_change(
    upstream: Path, tmp_path: Path
) -> None:
    old, new = entries(upstream), entries(build(upstream, tmp_path))
    renamed = {name.replace(OLD_INFO, NEW_INFO): data for name, data in old.items()}
    assert list(new) == list(renamed)  # upstream's entries, upstream's order
    changed = sorted(name for name in new if new[name] != renamed[name])
    assert changed == sorted([SPEECH, EVENTS, f"{NEW_INFO}/METADATA", f"{NEW_INFO}/RECORD"])
    assert new[f"{NEW_INFO}/WHEEL"] == old[f"{OLD_INFO}/WHEEL"]
    # METADATA: the Version line and nothing else (Requires-Dist identical)
    old_meta = old[f"{OLD_INFO}/METADATA"].decode().splitlines()
    new_meta = new[f"{NEW_INFO}/METADATA"].decode().splitlines()
    diff = [(a, b) for a, b in zip(old_meta, new_meta, strict=True) if a != b]
    assert diff == [(f"Version: {NEWEST}", f"Version: {PATCHED}")]
    assert any(line.startswith("Requires-Dist: ") for line in new_meta)
    # the patched files are the index's patched files
    release = load().releases[NEWEST]
    assert {rel: sha(new[rel]) for rel in (SPEECH, EVENTS)} == release.patched


def test_record_is_true_for_every_entry(upstream: Path, tmp_path: Path) -> None:
    new = entries(build(upstream, tmp_path))
    rows = list(csv.reader(io.StringIO(new[f"{NEW_INFO}/RECORD"].decode())))
    assert [row[0] for row in rows] == list(new)
    for name, digest, size in rows:
        if name == f"{NEW_INFO}/RECORD":
            assert (digest, size) == ("", "")
        else:
            assert (digest, size) == (record_hash(new[name]), str(len(new[name]))), name


def test_files_are_the_bytes_apply_writes(upstream: Path, tmp_path: Path) -> None:
    new = entries(build(upstream, tmp_path / "out"))
    install = Install(make(tmp_path / "site", NEWEST), NEWEST)
    assert cli("apply", root=install.root).returncode == 0
    assert {rel: install.read(rel) for rel in (SPEECH, EVENTS)} == {
        rel: new[rel] for rel in (SPEECH, EVENTS)
    }


def test_output_prints_the_lines_to_paste(upstream: Path, tmp_path: Path) -> None:
    done = cli("wheel", "--release", NEWEST, "--from", str(upstream), "--output", str(tmp_path))
    path = tmp_path / NAME
    digest = sha(path.read_bytes())
    pip_line = f"livekit-agents @ file://{path} --hash=sha256:{digest}"
    assert pip_line in done.stdout
    assert f'livekit-agents = {{ path = "{path}" }}' in done.stdout
    assert "[tool.uv.sources]" in done.stdout and "[tool.poetry.dependencies]" in done.stdout
    data = json_of(
        cli(
            "wheel",
            "--json",
            "--release",
            NEWEST,
            "--from",
            str(upstream),
            "--output",
            str(tmp_path),
        )
    )
    assert (data["path"], data["sha256"], data["version"]) == (str(path), digest, PATCHED)
    snippets = data["snippets"]
    assert isinstance(snippets, dict) and snippets["pip"] == pip_line
    assert sorted(snippets) == ["pip", "poetry", "uv"]
    assert [p.name for p in tmp_path.iterdir()] == [NAME]  # no temporary file left


# --- refusals: nothing written ---------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.2.1", "1.2.5", "9.9.9"])
def test_refuses_releases_exactly_like_apply(tmp_path: Path, version: str) -> None:
    root = make(tmp_path / "site", NEWEST, claim=version)
    applied = json_of(cli("apply", "--json", root=root))
    built = json_of(cli("wheel", "--json", "--release", version, "--output", str(tmp_path / "o")))
    assert built["exit"] == applied["exit"] == Exit.UNSUPPORTED
    assert built["error"] == applied["error"]
    assert not (tmp_path / "o").exists()  # refused before any download or write


def _tampered(upstream: Path, dest: Path, *, fix_record: bool) -> Path:
    """Upstream's wheel with a comment added to speech_handle.py (RECORD fixed or not)."""
    with zipfile.ZipFile(upstream) as a, zipfile.ZipFile(dest, "w") as out:
        for info in a.infolist():
            data = a.read(info)
            info = zipfile.ZipInfo(info.filename, info.date_time)  # not a's own, which writing sets
            if info.filename == SPEECH:
                data += b"# edited\n"
            if info.filename == f"{OLD_INFO}/RECORD" and fix_record:
                old = a.read(SPEECH)
                new = old + b"# edited\n"
                data = data.replace(
                    f"{SPEECH},{record_hash(old)},{len(old)}".encode(),
                    f"{SPEECH},{record_hash(new)},{len(new)}".encode(),
                )
            out.writestr(info, data)
    return dest


@pytest.mark.parametrize("fix_record", [True, False])
def test_refuses_a_wheel_that_is_not_upstreams(
    upstream: Path, tmp_path: Path, fix_record: bool
) -> None:
    source = _tampered(
        upstream, tmp_path / f"livekit_agents-{NEWEST}-py3-none-any.whl", fix_record=fix_record
    )
    out = tmp_path / "out"
    done = cli("wheel", "--release", NEWEST, "--from", str(source), "--output", str(out))
    assert done.returncode == Exit.FOREIGN_EDIT, done.stderr
    # before the pin, a RECORD regenerated to match passed as "upstream's 1.8.9" if the edit
    # kept the hunks' context; now any byte differing from the published wheel is refused
    pin = load().releases[NEWEST].wheel_sha256
    assert pin is not None and pin == sha(upstream.read_bytes())
    assert f"expected sha256 {pin} (the index's pin)" in done.stderr
    assert f"found sha256 {sha(source.read_bytes())}" in done.stderr
    assert not out.exists()


def test_refuses_another_release_wheel_and_an_unwritable_output(
    upstream: Path, tmp_path: Path
) -> None:
    done = cli("wheel", "--release", "1.8.8", "--from", str(upstream), "--output", str(tmp_path))
    assert done.returncode == Exit.USAGE
    assert "upstream's wheel of livekit-agents 1.8.8" in done.stderr
    assert OLD_INFO in done.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = cli("wheel", "--release", NEWEST, "--from", str(upstream), "--output", str(blocker))
    assert done.returncode == Exit.IO_ERROR and f"cannot write into {blocker}" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    done = cli("wheel", "--release", NEWEST, "--from", str(tmp_path / "none.whl"))
    assert done.returncode == Exit.USAGE and "cannot read" in done.stderr


# --- installs from the wheel are first-class -------------------------------------------------


def test_an_install_from_the_wheel_is_patched_and_its_own(upstream: Path, tmp_path: Path) -> None:
    root = from_wheel(tmp_path / "site", build(upstream, tmp_path / "out"))
    before = snapshot(root)
    done = cli("status", root=root)
    assert done.returncode == Exit.OK, done.stdout
    assert f"livekit-agents {PATCHED} at {root}" in done.stdout
    assert f"patched (installed from a patched wheel, {PATCHED})" in done.stdout
    status = json_of(cli("status", "--json", root=root))
    assert (status["version"], status["wheel_version"]) == (NEWEST, PATCHED)
    assert status["from_patched_wheel"] is True and status["supported"] is True

    done = cli("apply", root=root)
    assert done.returncode == 0
    assert done.stdout.startswith("already applied (installed from a patched wheel)")
    assert cli("check", root=root).stdout.startswith("already applied")

    done = cli("revert", root=root)
    assert done.returncode == Exit.FOREIGN_EDIT
    assert f"livekit-agents {PATCHED} was installed from a patched wheel" in done.stderr
    assert f"{REINSTALL}{NEWEST}\n" in done.stderr + "\n"  # upstream's release, no label
    assert snapshot(root) == before


def test_a_labelled_install_whose_files_are_not_its_record_is_judged_by_its_files(
    upstream: Path, tmp_path: Path
) -> None:
    """Files put back to pristine by hand under the wheel's dist-info: pristine, and apply
    patches them (the RECORD is true again afterwards)."""
    root = from_wheel(tmp_path / "site", build(upstream, tmp_path / "out"))
    with zipfile.ZipFile(upstream) as a:
        for rel in (SPEECH, EVENTS):
            (root / rel).write_bytes(a.read(rel))
    done = cli("status", root=root)
    assert done.returncode == Exit.PRISTINE and "patched wheel" not in done.stdout
    assert cli("revert", root=root).stdout.startswith("already pristine")
    assert cli("apply", root=root).stdout.startswith("applied:")
    assert "installed from a patched wheel" in cli("status", root=root).stdout


def test_a_label_alone_does_not_make_an_install_a_patched_wheel(tmp_path: Path) -> None:
    """Negative control for the RECORD half of the detection: upstream's files and RECORD under
    a METADATA that claims the label are upstream's install; apply and revert work in place."""
    root = make(tmp_path / "site", NEWEST, claim=PATCHED)
    assert cli("status", root=root).returncode == Exit.PRISTINE
    assert cli("apply", root=root).stdout.startswith("applied:")
    done = cli("status", root=root)
    assert done.returncode == Exit.OK and "patched wheel" not in done.stdout
    assert json_of(cli("status", "--json", root=root))["from_patched_wheel"] is False
    assert cli("revert", root=root).stdout.startswith("reverted:")


# --- the README's snippets are wheel's own ---------------------------------------------------


def test_readme_snippets_are_what_wheel_prints(upstream: Path, tmp_path: Path) -> None:
    found = blocks(section("Lockfiles and immutable images"))
    langs = [lang for lang, _ in found]
    assert langs == ["sh", "", "toml", "toml", "dockerfile"]
    (_, command), (_, pip), (_, uv), (_, poetry), (_, dockerfile) = found
    # the command, as written, run in a project directory (upstream's wheel given with --from)
    argv = shlex.split(command)
    assert argv[:2] == ["livekit-agents-patch", "wheel"]
    done = subprocess.run(
        [PYTHON, "-m", "livekit_agents_patch", *argv[1:], "--json", "--from", str(upstream)],
        env=cli_env(None),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    data = json_of(done)
    assert data["path"] == f"wheels/{NAME}"
    snippets = data["snippets"]
    assert isinstance(snippets, dict)
    assert uv.endswith(snippets["uv"] + "\n")
    assert 'dependencies = ["livekit-agents"]' in uv
    assert poetry == snippets["poetry"] + "\n"
    # pip: the line for a wheel in /app/wheels, as the Dockerfile's first stage writes it
    pinned = snippets["pip"].replace(f"file://{tmp_path}/wheels/", "file:///app/wheels/")
    assert pip.strip() == pinned.replace(str(data["sha256"]), "<the sha256 wheel prints>")
    assert "livekit-agents-patch wheel --release 1.8.9 --output /app/wheels" in dockerfile
    assert "COPY --from=fix5359 /app/wheels/ /app/wheels/" in dockerfile
    assert "pip install --no-cache-dir --require-hashes -r /app/requirements.txt" in dockerfile
    assert (tmp_path / "wheels" / NAME).read_bytes() == build(upstream, tmp_path / "o").read_bytes()
