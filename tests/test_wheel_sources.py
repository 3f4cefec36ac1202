"""``wheel`` and the wheels it is given (issue 17, defects 6, 7, 8, 10): tampered, damaged, not a
file, huge, cached and damaged, and what a stopped or failed run leaves behind.

Structure cases use small synthetic wheels of an unlisted release (``9.9.9``, built with
``--allow-unlisted``): no pin applies there, so what refuses them is the structure check alone.
The pin cases use the real cached 1.8.9 wheel. Downloads go through a fake ``pip`` module put
first on ``PYTHONPATH`` (``python -m pip`` finds it), into a cache under ``XDG_CACHE_HOME``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import resource
import struct
import subprocess
import warnings
import zipfile
from pathlib import Path

import pytest
from support.cli import LK, NEWEST, PYTHON, cli, cli_env, faults, json_of, real_venv_ready, sha
from support.fake_install import WHEELS

from livekit_agents_patch.exits import Exit
from livekit_agents_patch.install import matrix
from livekit_agents_patch.install.index import load

if not real_venv_ready(LK / ".ok") and os.environ.get("LIVEKIT_AGENTS_PATCH_REQUIRE_REAL"):
    raise AssertionError(f"{LK} is required (make venvs)")
NEEDS_LK = pytest.mark.skipif(
    not real_venv_ready(LK / ".ok"),
    reason=f"needs the real-package venv {LK}; `make test` runs this in cli-real",
)

UNLISTED = "9.9.9"
INFO = f"livekit_agents-{UNLISTED}.dist-info"
UPSTREAM = matrix.wheel(NEWEST, WHEELS)
PIN = load().data["releases"][NEWEST].get("wheel_sha256")


def _hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def synthetic(
    path: Path,
    files: dict[str, bytes] | None = None,
    *,
    extra_rows: str = "",
    unrecorded: dict[str, bytes] | None = None,
    record: bytes | None = None,
) -> Path:
    """A small wheel of ``9.9.9`` whose RECORD is true for ``files``, deflated."""
    files = {"livekit/agents/x.py": b"x = 1\n" * 400, **(files or {})}
    files[f"{INFO}/METADATA"] = f"Name: livekit-agents\nVersion: {UNLISTED}\n".encode()
    rows = "".join(f"{name},{_hash(data)},{len(data)}\n" for name, data in files.items())
    rows += extra_rows + f"{INFO}/RECORD,,\n"
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        warnings.simplefilter("ignore")  # "Duplicate name": the point of one case
        for name, data in [*files.items(), *(unrecorded or {}).items()]:  # a name may repeat
            out.writestr(name, data)
        out.writestr(f"{INFO}/RECORD", rows.encode() if record is None else record)
    return path


def _patch_entry(path: Path, name: str, *, flags: int = 0, method: int | None = None) -> None:
    """Set bits of an entry's general-purpose flags, or its method, in both of its headers."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
        central = archive.start_dir
    local = info.header_offset
    position = central
    while data[position : position + 4] == b"PK\x01\x02":
        n, m, k = struct.unpack("<HHH", data[position + 28 : position + 34])
        if data[position + 46 : position + 46 + n].decode() == name:
            for flag_at, method_at in ((local + 6, local + 8), (position + 8, position + 10)):
                old = struct.unpack("<H", data[flag_at : flag_at + 2])[0]
                data[flag_at : flag_at + 2] = struct.pack("<H", old | flags)
                if method is not None:
                    data[method_at : method_at + 2] = struct.pack("<H", method)
        position += 46 + n + m + k
    path.write_bytes(bytes(data))


def _flip_a_deflated_byte(path: Path, name: str) -> None:
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    n, m = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + n + m
    data[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _build_unlisted(source: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(
        "wheel",
        "--release",
        UNLISTED,
        "--allow-unlisted",
        "--from",
        str(source),
        "--output",
        str(out),
        *extra,
    )


def _case(name: str, path: Path) -> tuple[Path, str]:
    """Each damaged or hostile wheel, and the cause the refusal must name."""
    if name == "absolute":
        return synthetic(path, {"/tmp/x": b"x"}), "'/tmp/x' has an absolute path"
    if name == "dotdot":
        return synthetic(path, {"../../x": b"x"}), "'../../x' has a '..' component"
    if name == "backslash":
        return synthetic(path, {"livekit\\x.py": b"x"}), "has a backslash"
    if name == "duplicate":
        wheel = synthetic(path, unrecorded={"livekit/agents/x.py": b"other\n"})
        return wheel, "holds 'livekit/agents/x.py' twice"
    if name == "row-for-a-missing-file":
        row = f"livekit/agents/gone.py,{_hash(b'gone')},4\n"
        return synthetic(path, extra_rows=row), "RECORD lists 'livekit/agents/gone.py', which"
    if name == "entry-not-in-record":
        wheel = synthetic(path, unrecorded={"livekit/agents/extra.py": b"y = 2\n"})
        return wheel, "livekit/agents/extra.py is not in its RECORD"
    if name == "untrue-record":
        row = f"livekit/agents/y.py,{_hash(b'other')},5\n"
        wheel = synthetic(path, unrecorded={"livekit/agents/y.py": b"y = 2\n"}, extra_rows=row)
        return wheel, "its RECORD is not true: livekit/agents/y.py"
    if name == "one-column-row":
        wheel = synthetic(path, extra_rows="livekit/agents/lonely.py\n")
        return wheel, "has 1 column(s), expected 3"
    if name == "non-utf8-record":
        return synthetic(path, record=b"livekit/agents/x\xe9.py,,\n"), "its RECORD is not UTF-8"
    if name == "flipped-deflate-byte":
        wheel = synthetic(path)
        _flip_a_deflated_byte(wheel, "livekit/agents/x.py")
        return wheel, "its entry livekit/agents/x.py cannot be read"
    if name == "encrypted":
        wheel = synthetic(path)
        _patch_entry(wheel, "livekit/agents/x.py", flags=0x1)
        return wheel, "livekit/agents/x.py cannot be read (RuntimeError"
    if name == "unknown-method":
        wheel = synthetic(path)
        _patch_entry(wheel, "livekit/agents/x.py", method=99)
        return wheel, "livekit/agents/x.py cannot be read (NotImplementedError"
    raise AssertionError(name)


CASES = [
    "absolute",
    "dotdot",
    "backslash",
    "duplicate",
    "row-for-a-missing-file",
    "entry-not-in-record",
    "untrue-record",
    "one-column-row",
    "non-utf8-record",
    "flipped-deflate-byte",
    "encrypted",
    "unknown-method",
]


@pytest.mark.parametrize("name", CASES)
def test_a_hostile_or_damaged_wheel_is_exit_5_with_its_cause(tmp_path: Path, name: str) -> None:
    """Before: ``../../x`` and ``/tmp/x`` landed in the output wheel, a duplicate and a RECORD
    row for a missing file passed, and the damaged ones crashed with exit 10."""
    source, cause = _case(name, tmp_path / f"livekit_agents-{UNLISTED}-py3-none-any.whl")
    done = _build_unlisted(source, tmp_path / "out")
    assert done.returncode == Exit.FOREIGN_EDIT, done.stderr
    assert cause in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_clean_synthetic_wheel_passes_the_source_checks(tmp_path: Path) -> None:
    """Negative control: the same wheel undamaged is refused later, for lacking the targets."""
    source = synthetic(tmp_path / f"livekit_agents-{UNLISTED}-py3-none-any.whl")
    done = _build_unlisted(source, tmp_path / "out")
    assert "not a wheel as published" not in done.stderr and "cannot be read" not in done.stderr
    assert "livekit/agents/voice/speech_handle.py" in done.stderr, done.stderr
    truncated = tmp_path / "truncated.whl"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    done = _build_unlisted(truncated, tmp_path / "out")
    assert done.returncode == Exit.USAGE and f"cannot read {truncated} as a wheel" in done.stderr


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "directory"])
def test_a_source_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    """Before: ``--from /dev/zero`` read forever."""
    if kind == "fifo":
        source = tmp_path / "w.whl"
        os.mkfifo(source)
    elif kind == "directory":
        source = tmp_path
    else:
        source = Path(kind)
    done = cli("wheel", "--release", NEWEST, "--from", str(source), "--output", str(tmp_path / "o"))
    assert done.returncode == Exit.USAGE, done.stderr
    assert f"expected {source} to be a regular file" in done.stderr
    assert not (tmp_path / "o").exists()


GIB = 1 << 30


@pytest.fixture(scope="module")
def huge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 MB wheel holding a 1 GiB entry of zeros whose RECORD lies about its size."""
    path = tmp_path_factory.mktemp("huge") / f"livekit_agents-{UNLISTED}-py3-none-any.whl"
    chunk = bytes(1 << 20)
    digest = hashlib.sha256()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        info = zipfile.ZipInfo("livekit/agents/zeros.bin")
        info.compress_type = zipfile.ZIP_DEFLATED
        with out.open(info, "w", force_zip64=True) as entry:
            for _ in range(GIB // len(chunk)):
                entry.write(chunk)
                digest.update(chunk)
        recorded = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
        out.writestr(f"{INFO}/METADATA", f"Version: {UNLISTED}\n")
        out.writestr(
            f"{INFO}/RECORD",
            f"livekit/agents/zeros.bin,sha256={recorded},1\n{INFO}/METADATA,,\n{INFO}/RECORD,,\n",
        )
    return path


def test_a_huge_entry_is_read_in_chunks_within_a_memory_limit(huge: Path, tmp_path: Path) -> None:
    """Before: the 1 GiB entry was read whole (2.1 GB of memory); here the run is limited to
    600 MiB of address space, so reading it whole fails (MemoryError, exit 10)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (600 << 20, 600 << 20))

    argv = [PYTHON, "-m", "livekit_agents_patch", "wheel", "--release", UNLISTED]
    argv += ["--allow-unlisted", "--from", str(huge), "--output", str(tmp_path / "o")]
    done = subprocess.run(
        argv, env=cli_env(None), capture_output=True, text=True, preexec_fn=limit, cwd="/"
    )
    assert done.returncode == Exit.FOREIGN_EDIT, done.stderr[-2000:]
    assert "RECORD says" in done.stderr and f"size {GIB}" in done.stderr


# --- the pin ---------------------------------------------------------------------------------


def test_the_pin_is_pypis_hash_of_the_cached_wheel_and_the_output_says_so(tmp_path: Path) -> None:
    assert sha(UPSTREAM.read_bytes()) == PIN  # checked with pip --require-hashes when recorded
    assert all(load().releases[v].wheel_sha256 for v in load().supported())
    data = json_of(
        cli(
            "wheel",
            "--json",
            "--release",
            NEWEST,
            "--from",
            str(UPSTREAM),
            "--output",
            str(tmp_path),
        )
    )
    assert (data["source_sha256"], data["source_pinned"]) == (PIN, True)
    done = cli("wheel", "--release", NEWEST, "--from", str(UPSTREAM), "--output", str(tmp_path))
    assert f"sha256 {PIN}, the index's pin" in done.stdout


def _fake_pip(tmp_path: Path, serves: Path) -> tuple[Path, Path]:
    """A ``pip`` package whose ``download -d DIR`` copies ``serves`` there; logs each call."""
    root = tmp_path / "fakepip"
    (root / "pip").mkdir(parents=True)
    log = tmp_path / "pip.log"
    (root / "pip" / "__init__.py").write_text("", encoding="utf-8")
    (root / "pip" / "__main__.py").write_text(
        "import shutil, sys\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "dest = sys.argv[sys.argv.index('-d') + 1]\n"
        f"shutil.copy({str(serves)!r}, dest + '/livekit_agents-{NEWEST}-py3-none-any.whl')\n",
        encoding="utf-8",
    )
    return root, log


def _cached(tmp_path: Path) -> Path:
    path = tmp_path / "xdg" / "livekit-agents-patch" / "wheels"
    path.mkdir(parents=True)
    return path / f"livekit_agents-{NEWEST}-py3-none-any.whl"


def test_a_damaged_cached_wheel_is_downloaded_again_once(tmp_path: Path) -> None:
    """Before: a truncated file in the cache failed every later run with "pass upstream's .whl
    file" to a user who had passed none."""
    cached = _cached(tmp_path)
    cached.write_bytes(UPSTREAM.read_bytes()[:100_000])
    fake, log = _fake_pip(tmp_path, UPSTREAM)
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    done = cli("wheel", "--release", NEWEST, "--output", str(tmp_path / "o"), root=fake, env=env)
    assert done.returncode == Exit.OK, done.stderr
    assert len(log.read_text().splitlines()) == 1
    assert sha(cached.read_bytes()) == PIN


def test_a_cached_wheel_that_fails_again_is_named_as_the_caches(tmp_path: Path) -> None:
    cached = _cached(tmp_path)
    tampered = tmp_path / "tampered.whl"
    tampered.write_bytes(UPSTREAM.read_bytes() + b"\0")  # still a zip; not the published bytes
    cached.write_bytes(tampered.read_bytes())
    fake, log = _fake_pip(tmp_path, tampered)
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    done = cli("wheel", "--release", NEWEST, "--output", str(tmp_path / "o"), root=fake, env=env)
    assert done.returncode == Exit.FOREIGN_EDIT, done.stderr
    assert f"the download cache's wheel {cached} fails the checks, also downloaded again" in (
        done.stderr
    )
    assert f"expected sha256 {PIN}" in done.stderr and sha(tampered.read_bytes()) in done.stderr
    assert "pass upstream's .whl file" not in done.stderr
    assert len(log.read_text().splitlines()) == 1 and not cached.exists()
    assert not (tmp_path / "o").exists()


# --- leftovers -------------------------------------------------------------------------------

NAME = f"livekit_agents-{NEWEST}+fix5359.r{load().revision}-py3-none-any.whl"


def test_a_dead_runs_temp_files_are_removed_by_the_next_run(tmp_path: Path) -> None:
    """Before: SIGKILL's multi-MB ``.…whl.*.tmp`` files stayed in the output directory."""
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([PYTHON, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(dead.stdout)
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    stale = out / f".{NAME}.{dead_pid}.0a1b2c.tmp"
    stale.write_bytes(b"x" * 1000)
    link = out / f".{NAME}.{dead_pid}.0a1b2d.tmp"
    link.symlink_to(victim)
    live = out / f".{NAME}.{os.getpid()}.0a1b2e.tmp"  # a run still going: not ours to remove
    live.write_bytes(b"y")
    other = out / ".something-else.tmp"
    other.write_bytes(b"z")
    done = cli("wheel", "--release", NEWEST, "--from", str(UPSTREAM), "--output", str(out))
    assert done.returncode == Exit.OK, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([NAME, live.name, other.name])
    assert victim.read_bytes() == b"keep"


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        ("os.fsync#1:before=SIGTERM", 143),
        ("os.fsync#1:before=SIGINT", 130),
        ("os.replace#1:before=raise", 7),
    ],
)
def test_a_stopped_or_failed_write_leaves_no_file_and_no_created_directory(
    tmp_path: Path, rule: str, code: int
) -> None:
    """Before: ``--output a/b/c`` stayed created after a failure that said "nothing was
    written", and a stopped run left its temporary file."""
    out = tmp_path / "a" / "b" / "c"
    done = cli(
        "wheel",
        "--release",
        NEWEST,
        "--from",
        str(UPSTREAM),
        "--output",
        str(out),
        env=faults(rule),
    )
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def _relabelled(dest: Path, version: str) -> Path:
    """Upstream's 1.8.9 wheel relabelled as ``version`` (dist-info, METADATA, a true RECORD):
    a release the index does not list, whose files the patch fits."""
    old, new = f"livekit_agents-{NEWEST}.dist-info", f"livekit_agents-{version}.dist-info"
    path = dest / f"livekit_agents-{version}-py3-none-any.whl"
    rows = []
    with zipfile.ZipFile(UPSTREAM) as a, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in a.infolist():
            name, data = info.filename.replace(old, new), a.read(info)
            if name == f"{new}/RECORD":
                continue
            if name == f"{new}/METADATA":
                data = data.replace(f"Version: {NEWEST}".encode(), f"Version: {version}".encode())
            out.writestr(name, data)
            rows.append(f"{name},{_hash(data)},{len(data)}\n")
        out.writestr(f"{new}/RECORD", "".join(rows) + f"{new}/RECORD,,\n")
    return path


@NEEDS_LK
def test_an_unlisted_release_is_built_and_said_to_be_not_pinned(tmp_path: Path) -> None:
    """Before: the output called any source "upstream's", pinned or not."""
    source = _relabelled(tmp_path, UNLISTED)
    python = str(LK / "bin" / "python")
    done = _build_unlisted(source, tmp_path / "out", "--python", python)
    assert done.returncode == Exit.OK, done.stdout + done.stderr
    assert f"NOT PINNED, sha256 {sha(source.read_bytes())}" in done.stdout
    assert "not against a published hash" in done.stdout
