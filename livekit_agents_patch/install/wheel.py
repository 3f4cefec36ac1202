"""Patched wheels: upstream's wheel of a release with the fix in it, for lockfiles and images.

``build`` takes upstream's wheel of a release (downloaded once with ``pip download --no-deps``
into the user cache, or a file given for air-gapped builds) and writes
``livekit_agents-X+fix5359.rN-py3-none-any.whl``: both target files as ``apply`` would write
them (``patching.plan`` decides and produces the bytes, refusals included), the dist-info
renamed for the new version, ``METADATA``'s ``Version`` line changed and nothing else in it,
``RECORD`` rewritten (hash and size of the changed files, the renamed paths). Every other entry,
``WHEEL`` included, is upstream's, byte for byte.

Reproducible: entries in upstream's order with upstream's timestamps and modes, stored
uncompressed (compressed bytes would depend on the machine's zlib), so the same upstream wheel
gives the same bytes on every build and every machine, and a lockfile's hash never churns.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import os
import re
import secrets
import shlex
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..exits import Exit
from . import matrix, patching, wheel_source
from .index import TARGETS, Release, load, local_version
from .target import PatchingError, Target

PACKAGE = "livekit_agents"
"""The distribution's name as wheel and dist-info names spell it."""


def cache_dir() -> Path:
    """Where upstream's wheels are kept: ``$XDG_CACHE_HOME`` or ``~/.cache``. A relative (or
    empty) ``XDG_CACHE_HOME`` is ignored, as the XDG spec says: it would put the cache under
    whatever the working directory is."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = str(Path.home() / ".cache")
    return Path(base) / "livekit-agents-patch" / "wheels"


def wheel_name(version: str) -> str:
    return f"{PACKAGE}-{version}-py3-none-any.whl"


@dataclass(frozen=True)
class Built:
    """A patched wheel, written."""

    path: Path
    """As the caller named the output directory (relative stays relative)."""
    sha256: str
    release: str
    """Upstream's release, ``1.8.9``."""
    version: str
    """The wheel's version, ``1.8.9+fix5359.r1``."""
    revision: int
    patch: str
    source: Path
    """Upstream's wheel it was made from."""
    source_sha256: str = ""
    pinned: bool = False
    """Whether ``source_sha256`` is the index's pin (a listed release); else it was checked for
    structure and a true RECORD only."""

    @property
    def snippets(self) -> dict[str, str]:
        """The lines to paste, per tool: pip (hash-checked), uv and poetry (path sources)."""
        return {
            "pip": (
                f"livekit-agents @ file://{quote(str(self.path.resolve()), safe='/+')} "
                f"--hash=sha256:{self.sha256}"
            ),
            "uv": f'[tool.uv.sources]\nlivekit-agents = {{ path = "{self.path}" }}',
            "poetry": f'[tool.poetry.dependencies]\nlivekit-agents = {{ path = "{self.path}" }}',
        }


def fetch(release: str, cache: Path | None = None) -> Path:
    """Upstream's wheel of ``release``, downloaded once into the cache (``matrix.wheel``)."""
    cache = cache or cache_dir()
    try:
        return matrix.wheel(release, cache, tries=1)
    except subprocess.CalledProcessError as e:
        stderr = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else ""
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        raise PatchingError(
            Exit.USAGE,
            f"cannot download upstream's wheel of livekit-agents {release} with pip download "
            f"into {cache}: {tail}. Next: check access to the package index, or download "
            f"{wheel_name(release)} elsewhere and pass it with --from FILE.",
        ) from e
    except OSError as e:
        raise PatchingError(
            Exit.USAGE,
            f"cannot run pip download into {cache}: {e}. Next: pass upstream's wheel with "
            "--from FILE.",
        ) from e


def _source(release: str, given: Path | None, pin: str | None) -> wheel_source.Source:
    """Upstream's wheel, checked: ``given`` (``--from``), or the cached download, which is
    downloaded again once if it fails the checks (a damaged or partial file in the cache)."""
    if given is not None:
        return wheel_source.open_checked(given, release, pin)
    path = fetch(release)
    try:
        return wheel_source.open_checked(path, release, pin)
    except wheel_source.SourceError as e:
        _drop_cached(path, e)
    path = fetch(release)
    try:
        return wheel_source.open_checked(path, release, pin)
    except wheel_source.SourceError as e:
        _drop_cached(path, e)
        raise PatchingError(
            Exit.FOREIGN_EDIT if e.code is Exit.FOREIGN_EDIT else Exit.USAGE,
            f"the download cache's wheel {path} fails the checks, also downloaded again: "
            f"{e.cause}. It was removed. Next: check which package index pip uses "
            f"(`pip config list`), or download {wheel_name(release)} from PyPI elsewhere and "
            "pass it with --from FILE.",
        ) from e


def _drop_cached(path: Path, e: wheel_source.SourceError) -> None:
    """Remove a cached wheel that failed the checks, so that it is downloaded again; what
    cannot be unlinked (a directory there) is refused, naming it: never removed recursively."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise PatchingError(
            Exit.USAGE,
            f"the download cache's wheel {path} fails the checks ({e.cause}), and cannot be "
            f"removed to download it again: {error.strerror or error}. Next: remove it "
            f"(`rm -r {shlex.quote(str(path))}`) and run the same command again, or pass "
            "upstream's wheel with --from FILE.",
        ) from error


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _record_hash(data: bytes) -> str:
    return wheel_source.record_hash(hashlib.sha256(data).digest())


def _write_record(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _relabel(metadata: bytes, old: str, new: str, source: Path) -> bytes:
    pattern = rf"^Version: {re.escape(old)}\r?$".encode()
    found = re.findall(pattern, metadata, flags=re.M)
    if len(found) != 1:
        raise PatchingError(
            Exit.FOREIGN_EDIT,
            f"{source}: expected one 'Version: {old}' line in METADATA, found {len(found)}. "
            "Next: build from upstream's own wheel (drop --from).",
        )
    return re.sub(pattern, f"Version: {new}".encode(), metadata, count=1, flags=re.M)


def _release(version: str) -> Release:
    """The index entry, refused exactly as ``apply`` refuses an installed release."""
    return patching.release_for(Target(version=version, root=Path("."), record={}))


def build(
    release: str,
    output: Path,
    source: Path | None = None,
    *,
    allow_unlisted: bool = False,
    python: str | None = None,
) -> Built:
    """Write the patched wheel of ``release`` into ``output``; return what was written.

    Refuses (``PatchingError``) before any download when the index does not support the
    release, and before writing anything when upstream's wheel is not what the index expects.
    With ``allow_unlisted``, a release the index does not list is built when the patch applies
    exactly to the wheel's files and the contract holds on them, run by ``python`` (an
    interpreter whose environment has that release's dependencies; default: this one).
    """
    listed = release in load().releases
    if not allow_unlisted or listed:
        _release(release)
    pin = load().releases[release].wheel_sha256 if listed else None
    with _source(release, source, pin) as upstream:
        return _build(upstream, release, output, allow_unlisted=allow_unlisted, python=python)


def _build(
    upstream: wheel_source.Source,
    release: str,
    output: Path,
    *,
    allow_unlisted: bool,
    python: str | None,
) -> Built:
    source = upstream.path
    old_info = f"{PACKAGE}-{release}.dist-info"
    names = upstream.archive.namelist()
    recorded = {row[0]: row[1] for row in upstream.rows}
    contents = {rel: upstream.read(rel) if rel in names else None for rel in TARGETS}
    target = Target(
        version=release,
        root=source,
        record={
            rel: base64.urlsafe_b64decode(recorded[rel].split("=", 1)[1] + "==").hex()
            for rel in TARGETS
            if recorded.get(rel, "").startswith("sha256=")
        },
        python=python,
        command=python,
    )
    result, patched = patching.plan(target, contents, reverse=False, allow_unlisted=allow_unlisted)
    entry = patching.release_for(target, contents=contents, allow_unlisted=allow_unlisted)
    version = local_version(entry)
    new_info = f"{PACKAGE}-{version}.dist-info"
    if patched is None:
        raise PatchingError(
            Exit.FOREIGN_EDIT,
            f"{source}: its files are already patched ({result}); expected upstream's "
            "wheel. Next: build from upstream's own wheel (drop --from).",
        )
    changed: dict[str, bytes] = dict(patched)
    metadata = f"{old_info}/METADATA"
    changed[metadata] = _relabel(upstream.read(metadata), release, version, source)
    members: list[Member] = []
    for info in upstream.archive.infolist():
        if info.is_dir():
            continue
        name = info.filename
        if name.startswith(f"{old_info}/"):
            name = new_info + name[len(old_info) :]
        members.append(Member(_entry(name, info), info, changed.get(info.filename)))
    new_rows = []
    for row in upstream.rows:  # upstream's order; RECORD lists itself without a hash
        name = new_info + row[0][len(old_info) :] if row[0].startswith(f"{old_info}/") else row[0]
        data = changed.get(row[0])
        if name.endswith(".dist-info/RECORD"):
            new_rows.append([name, "", ""])
        elif data is not None:
            new_rows.append([name, _record_hash(data), str(len(data))])
        else:  # unchanged: upstream's row, which was checked true
            new_rows.append([name, row[1], row[2]])
    record = _write_record(new_rows)
    members = [
        Member(m.info, m.upstream, record) if m.info.filename == f"{new_info}/RECORD" else m
        for m in members
    ]
    path, digest = _write(output, wheel_name(version), members, upstream)
    return Built(
        path=path,
        sha256=digest,
        release=release,
        version=version,
        revision=entry.revision,
        patch=entry.patch or "",
        source=source,
        source_sha256=upstream.sha256,
        pinned=upstream.pinned,
    )


@dataclass(frozen=True)
class Member:
    """One entry of the new wheel: its header, upstream's entry, and new bytes if changed."""

    info: zipfile.ZipInfo
    upstream: zipfile.ZipInfo
    data: bytes | None


def _entry(name: str, upstream: zipfile.ZipInfo) -> zipfile.ZipInfo:
    """A fresh entry with nothing from this machine: upstream's timestamp and mode, stored."""
    info = zipfile.ZipInfo(name, date_time=upstream.date_time)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = upstream.external_attr
    return info


TEMP_SUFFIX = ".tmp"


def _temp_name(name: str) -> str:
    """``.NAME.PID.RANDOM.tmp``: the pid tells a leftover of a dead run from a live run's file."""
    return f".{name}.{os.getpid()}.{secrets.token_hex(6)}{TEMP_SUFFIX}"


def _remove_leftovers(output: Path) -> None:
    """Remove temporary files of earlier runs that died (SIGKILL) before removing them: only
    this tool's own naming, only regular files (a link there is unlinked, never followed), only
    when the run that made it is gone."""
    pattern = re.compile(rf"^\.{re.escape(PACKAGE)}-.+\.whl\.([0-9]+)\.[0-9a-f]+\.tmp$")
    try:
        entries = list(os.scandir(output))
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or _alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            if entry.is_symlink() or entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _created_dirs(output: Path) -> list[Path]:
    """The directories ``mkdir(parents=True)`` would create for ``output``, deepest first."""
    missing = []
    current = output.absolute()
    while not os.path.lexists(current):
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    return missing


def _write(
    output: Path, name: str, members: list[Member], upstream: wheel_source.Source
) -> tuple[Path, str]:
    """The archive, written to a temporary file beside it and renamed: all or nothing.

    The temporary file is created ``O_EXCL|O_NOFOLLOW`` (a planted link is not followed) and
    removed on any failure or stop; directories this run created for ``output`` are removed
    again on failure, so "nothing was written" holds."""
    path = output / name
    created = _created_dirs(output)
    tmp: Path | None = None
    done = False
    try:
        try:
            output.mkdir(parents=True, exist_ok=True)
            _remove_leftovers(output)
            tmp = output / _temp_name(name)
            # O_RDWR: the hash is read back through this descriptor, never by the name
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(tmp, flags, 0o600)
        except OSError as e:
            tmp = None
            raise PatchingError(
                Exit.IO_ERROR,
                f"cannot write into {output}: {e}. Nothing was written. Next: choose a writable "
                "directory with --output.",
            ) from e
        try:
            with os.fdopen(fd, "w+b") as f:
                with zipfile.ZipFile(f, "w") as out:
                    for member in members:
                        _copy(out, member, upstream)
                f.flush()
                os.fchmod(f.fileno(), 0o644)
                os.fsync(f.fileno())
                digest = _file_sha256(f)
                os.replace(tmp, path)
                _check_published(f.fileno(), path)
            done = True
        except OSError as e:
            raise PatchingError(
                Exit.IO_ERROR,
                f"cannot write {path}: {e}. Nothing was written. Next: free space or choose "
                "another directory with --output.",
            ) from e
    finally:
        if not done:
            if tmp is not None:
                _unlink_quietly(tmp)
            for directory in created:  # deepest first; only if still empty
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
    return path, digest


def _copy(out: zipfile.ZipFile, member: Member, upstream: wheel_source.Source) -> None:
    """One entry: new bytes as given, upstream's streamed in chunks (never whole in memory)."""
    info = member.info
    if member.data is not None:
        out.writestr(info, member.data)
        return
    info.file_size = member.upstream.file_size  # as writestr sets it: the same bytes result
    with out.open(info, "w") as dest:
        for chunk in wheel_source.chunks(upstream, member.upstream):
            dest.write(chunk)


def _file_sha256(f: io.BufferedRandom) -> str:
    """The sha256 of what this run wrote, read through its own descriptor: whoever can write
    the output directory may rename another file over the temporary name meanwhile."""
    f.seek(0)
    digest = hashlib.sha256()
    while chunk := f.read(wheel_source.CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _check_published(fd: int, path: Path) -> None:
    """The file now at ``path`` must be the one this run wrote (``fd``); another one, renamed
    over the temporary name, is removed from ``path`` and refused: its hash is not the one
    printed, and it is no wheel of this tool's."""
    ours = os.fstat(fd)
    try:
        there = os.lstat(path)
    except FileNotFoundError:
        there = None
    if there is None or (there.st_dev, there.st_ino) != (ours.st_dev, ours.st_ino):
        if there is not None:
            _unlink_quietly(path)
        raise PatchingError(
            Exit.IO_ERROR,
            f"{path.parent}: the wheel's temporary file was replaced by another process while "
            "it was written; nothing was published (the file found at its name was removed). "
            "Next: write the wheel to a directory only you can write, with --output.",
        )
