"""The tool's own names in the package directory, written and read without following a link.

Operators run ``apply`` as root in environments an unprivileged user may own, who can plant a
symlink, a FIFO or a device at any name in the package directory before the run. So a temporary
file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (never an existing entry, never through a
link) and given its mode and owner through its descriptor (``fchmod``/``fchown``); a file read
back (the journal, a target's bytes) is opened ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO does not
block the open), must be a regular file by ``fstat`` and is read up to a bound. Whatever sits at
one of the tool's own names and is not what the tool writes there is a leftover: ``status``
reports it, the next ``apply`` or ``revert`` unlinks it (``unlink`` removes a link, never its
target).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

TMP_SUFFIX = ".livekit-agents-patch.tmp"
JOURNAL = ".livekit-agents-patch.journal"
READ_LIMIT = 16 * 1024 * 1024
"""The most bytes read from a target or the journal: both are a few hundred KiB at most."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def temp_name(path: Path) -> Path:
    """The temporary file beside ``path`` that is renamed over it."""
    return path.with_name(f".{path.name}{TMP_SUFFIX}")


def kind(path: Path) -> str | None:
    """What is at ``path`` without following a link: ``None`` (nothing), ``"a regular file"``,
    ``"a symbolic link to X"``, ``"a FIFO"``... (``lstat`` only)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISREG(st.st_mode):
        return "a regular file"
    if stat.S_ISLNK(st.st_mode):
        try:
            return f"a symbolic link to {os.readlink(path)}"
        except OSError:
            return "a symbolic link"
    return mode_kind(st.st_mode)


def mode_kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words, for a message: "a FIFO", "a directory"..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "a special file"


def write_temp(path: Path, data: bytes, like: os.stat_result | None = None) -> Path:
    """``data`` in a new file beside ``path`` (never an existing one, never through a link),
    synced, with the mode and (as root) the owner of ``like``; return its name."""
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        if like is not None:
            os.fchmod(fd, stat.S_IMODE(like.st_mode))
            if os.geteuid() == 0:
                with contextlib.suppress(OSError):
                    os.fchown(fd, like.st_uid, like.st_gid)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # the file this call created (O_EXCL): never someone else's
        raise
    os.close(fd)
    return tmp


def read_regular(path: Path, limit: int = READ_LIMIT) -> bytes:
    """The bytes of the regular file at ``path``; a link, FIFO or device is refused with an
    ``OSError`` naming what is there, and so is a file larger than ``limit``."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"expected a regular file at {path}, found {kind(path)}")
        if st.st_size > limit:
            raise OSError(f"{path} is {st.st_size} bytes, more than the {limit} expected")
        chunks = []
        size = 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise OSError(f"{path} grew past the {limit} bytes expected")
        return b"".join(chunks)
    finally:
        os.close(fd)


def is_regular(path: Path) -> bool:
    return kind(path) == "a regular file"


def leftovers(names: list[Path], journal: Path) -> list[tuple[Path, str]]:
    """What sits at the tool's temporary names (anything), and at the journal's name when it is
    not a regular file (a regular one is an interrupted run's, rolled back, not deleted)."""
    found = [(path, what) for path in names if (what := kind(path)) is not None]
    what = kind(journal)
    if what is not None and what != "a regular file":
        found.append((journal, what))
    return found


def unremovable(found: list[tuple[Path, str]]) -> list[str]:
    """The notes ``remove`` would give for ``found`` without removing anything: a directory
    cannot be unlinked (and the tool never removes one recursively). For ``check``."""
    return [
        f"could not remove the leftover {path}: {os.strerror(errno.EISDIR)}"
        for path, what in found
        if what == "a directory"
    ]


def note(path: Path, what: str) -> str:
    """``status``'s note on a leftover, by what it is."""
    if what == "a directory":
        return (
            f"{path} is a directory, at a name only this tool writes; an apply or revert that "
            "must write refuses while it is there (the tool never removes a directory). Next: "
            f"`rmdir {path}` once you have checked what it holds"
        )
    if what == "a regular file":
        size = os.lstat(path).st_size
        return (
            f"{path} ({size} bytes) was left by a killed run; the next apply or revert removes it"
        )
    return (
        f"{path} is {what}, at a name only this tool writes (the tool never follows or opens "
        "it); the next apply or revert removes it"
    )


def remove(found: list[tuple[Path, str]]) -> list[str]:
    """Unlink each leftover (a link itself, never its target); a note for each that stays."""
    notes = []
    for path, _ in found:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            notes.append(f"could not remove the leftover {path}: {e.strerror or e}")
    return notes
