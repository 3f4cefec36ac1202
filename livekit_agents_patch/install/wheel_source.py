"""Upstream's wheel as ``wheel`` reads it: checked before a byte of it is used.

A wheel given with ``--from`` or found in the download cache may be tampered with, damaged, or
not a file at all. ``open_checked`` refuses, naming the cause, unless:

- it is a regular file (``/dev/zero`` or a FIFO would be read forever);
- its sha256 is the one the index pins for the release, as the package index publishes it
  (an unlisted release has no pin: ``Source.pinned`` says so, and the output says it plainly);
- it is a zip archive whose entry names are safe (relative, no ``..``, no backslash, no
  duplicates) and whose entries all decompress (no encryption, a known method, true CRCs);
- its ``RECORD`` is UTF-8 CSV of three columns, lists every entry with a true sha256 and size,
  and lists no file the wheel does not hold.

Entries are read in chunks and never past their declared size, so a huge entry costs time, not
memory; only the few files ``wheel`` changes are held in memory, each under ``MAX_HELD`` bytes.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..exits import Exit
from . import ownfiles
from .target import PatchingError

CHUNK = 1 << 20
MAX_HELD = 32 << 20
"""The most bytes of one entry held in memory: the target files, METADATA and RECORD."""
UNREADABLE = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,  # an unknown compression method
    RuntimeError,  # an encrypted entry ("password required")
    ValueError,
    OSError,
)
"""What ``zipfile`` raises on a damaged, truncated, encrypted or exotic archive."""


class SourceError(PatchingError):
    """Upstream's wheel cannot be used; ``cause`` is the finding without advice, for the
    caller that words the next step (a ``--from`` file or the download cache)."""

    def __init__(self, code: Exit, cause: str, next_step: str) -> None:
        super().__init__(code, f"{cause}. Next: {next_step}")
        self.cause = cause


@dataclass
class Source:
    """An opened, checked wheel; close it (``with``) when done."""

    path: Path
    archive: zipfile.ZipFile
    sha256: str
    pinned: bool
    """Whether ``sha256`` was checked against the index's pin for the release."""
    rows: list[list[str]]
    """``RECORD``'s rows, in its order."""

    def read(self, name: str) -> bytes:
        """A whole entry, for the few files that are changed (under ``MAX_HELD`` bytes)."""
        info = self.archive.getinfo(name)
        if info.file_size > MAX_HELD:
            raise SourceError(
                Exit.FOREIGN_EDIT,
                f"{self.path}: expected {name} under {MAX_HELD >> 20} MiB, found "
                f"{info.file_size} bytes declared",
                "pass upstream's own wheel with --from",
            )
        return b"".join(chunks(self, info))

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *_: object) -> None:
        self.archive.close()


def chunks(source: Source, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """The entry's bytes in chunks, never past its declared size; ``SourceError`` if damaged."""
    try:
        with source.archive.open(info) as entry:
            left = info.file_size
            while chunk := entry.read(min(CHUNK, left + 1)):
                left -= len(chunk)
                if left < 0:  # zipfile stops at the declared size; this is the belt to it
                    raise zipfile.BadZipFile(f"longer than its declared {info.file_size} bytes")
                yield chunk
    except UNREADABLE as e:
        raise SourceError(
            Exit.FOREIGN_EDIT,
            f"{source.path}: its entry {info.filename} cannot be read ({type(e).__name__}: {e})",
            "pass upstream's own wheel with --from",
        ) from e


def record_hash(digest: bytes) -> str:
    """``sha256=…`` as RECORD spells a digest (urlsafe base64, no padding)."""
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def open_checked(path: Path, release: str, pin: str | None) -> Source:
    """``path`` opened and checked as upstream's wheel of ``release`` (see the module)."""
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer; regular files ignore it
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise SourceError(
            Exit.USAGE,
            f"cannot read {path}: {e.strerror or e}",
            f"pass upstream's wheel of livekit-agents {release} (a .whl file)",
        ) from e
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise SourceError(
            Exit.USAGE,
            f"expected {path} to be a regular file (a .whl), found {ownfiles.mode_kind(mode)}",
            f"pass upstream's wheel of livekit-agents {release} (a .whl file)",
        )
    os.set_blocking(fd, True)
    handle: BinaryIO = os.fdopen(fd, "rb")
    try:
        digest = _sha256(handle)
        handle.seek(0)
        try:
            archive = zipfile.ZipFile(handle)
        except UNREADABLE as e:
            raise SourceError(
                Exit.USAGE,
                f"cannot read {path} as a wheel: {type(e).__name__}: {e}",
                f"pass upstream's wheel of livekit-agents {release} (a .whl file)",
            ) from e
        source = Source(path, archive, digest, pin is not None, [])
        try:
            _check_release(source, release)  # the wrong release's wheel: say that first
            if pin is not None and digest != pin:
                raise SourceError(
                    Exit.FOREIGN_EDIT,
                    f"{path} is not upstream's wheel of livekit-agents {release} as published: "
                    f"expected sha256 {pin} (the index's pin), found sha256 {digest}",
                    "pass upstream's own wheel with --from, e.g. from `pip download --no-deps "
                    f"livekit-agents=={release}`",
                )
            _check_names(source)
            source.rows = _check_record(source, release)
        except BaseException:
            archive.close()
            raise
        return source
    except BaseException:
        handle.close()
        raise


def _sha256(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _refuse(source: Source, finding: str) -> SourceError:
    return SourceError(
        Exit.FOREIGN_EDIT,
        f"{source.path} is not a wheel as published: {finding}",
        "pass upstream's own wheel with --from",
    )


def unsafe_name(name: str) -> str | None:
    """Why an entry name could land outside the install (or be two files), else ``None``."""
    if not name or "\\" in name or "\0" in name:
        return "a backslash or NUL in it"
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (parts and ":" in parts[0]):
        return "an absolute path"
    if ".." in name.split("/"):
        return "a '..' component"
    return None


def _check_names(source: Source) -> None:
    seen: set[str] = set()
    for info in source.archive.infolist():
        why = unsafe_name(info.filename)
        if why is not None:
            raise _refuse(source, f"its entry {info.filename!r} has {why}")
        key = info.filename.rstrip("/")
        if key in seen:
            raise _refuse(source, f"it holds {info.filename!r} twice")
        seen.add(key)


def _check_release(source: Source, release: str) -> None:
    names = source.archive.namelist()
    if f"livekit_agents-{release}.dist-info/RECORD" not in names:
        infos = sorted({n.split("/")[0] for n in names if ".dist-info/" in n})
        raise SourceError(
            Exit.USAGE,
            f"expected {source.path} to be upstream's wheel of livekit-agents {release} (with "
            f"livekit_agents-{release}.dist-info/), found {', '.join(infos) or 'no dist-info'}",
            f"pass the wheel of {release}, or --release for the wheel you have",
        )


def _check_record(source: Source, release: str) -> list[list[str]]:
    """RECORD's rows, after checking it describes every entry truly."""
    own = f"livekit_agents-{release}.dist-info/RECORD"
    try:
        text = source.read(own).decode("utf-8")
        rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except UnicodeDecodeError as e:
        raise _refuse(source, f"its RECORD is not UTF-8 ({e})") from e
    except csv.Error as e:
        raise _refuse(source, f"its RECORD is not CSV ({e})") from e
    listed: dict[str, list[str]] = {}
    for number, row in enumerate(rows, 1):
        if len(row) != 3:
            raise _refuse(
                source, f"RECORD line {number} has {len(row)} column(s), expected 3: {row!r}"
            )
        if row[0] in listed:
            raise _refuse(source, f"RECORD lists {row[0]!r} twice")
        listed[row[0]] = row
    files = [info for info in source.archive.infolist() if not info.is_dir()]
    present = {info.filename for info in files}
    for name in listed:
        if name not in present:
            raise _refuse(source, f"RECORD lists {name!r}, which the wheel does not hold")
    for info in files:
        if info.filename not in listed:
            raise _refuse(source, f"{info.filename} is not in its RECORD")
        row = listed[info.filename]
        if info.filename == own:
            continue  # RECORD lists itself without a hash
        digest = hashlib.sha256()
        size = 0
        for chunk in chunks(source, info):
            digest.update(chunk)
            size += len(chunk)
        found = (record_hash(digest.digest()), str(size))
        if (row[1], row[2]) != found:
            raise _refuse(
                source,
                f"its RECORD is not true: {info.filename}: RECORD says {row[1] or 'no hash'} "
                f"size {row[2] or '?'}, the entry has {found[0]} size {found[1]}",
            )
    return rows
