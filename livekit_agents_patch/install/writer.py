"""The crash-safe writer: both target files replaced, or neither, under a lock.

The new bytes go to temporary files beside the targets, then a journal of the original bytes is
written, then both targets are replaced with ``os.replace``, all under a lock on the directory.
An exception restores the originals at once; a run killed between the two replacements leaves
the journal, and the next ``apply`` or ``revert`` rolls it back before doing anything else
(``status`` reports it meanwhile). Cached bytecode of the targets is removed so that a fresh
interpreter compiles the new source, also when it held unchecked hash-based .pyc files, which
Python would otherwise trust without looking.

This module decides nothing: ``patching`` says what to write.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from ..exits import Exit
from . import writable
from .index import TARGETS, sha256
from .target import PatchingError, Target

JOURNAL = ".livekit-agents-patch.journal"
TMP_SUFFIX = ".livekit-agents-patch.tmp"


def _directory(target: Target) -> Path:
    return target.path(TARGETS[0]).parent


@contextlib.contextmanager
def locked(target: Target) -> Iterator[None]:
    """An exclusive ``flock`` on the targets' directory itself: no lock file is left behind,
    and a read-only directory can still be locked (and so be reported as read-only)."""
    directory = _directory(target)
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as e:
        raise PatchingError(
            Exit.FOREIGN_EDIT,
            f"expected the directory {directory}, found: {e}. Next: {target.reinstall}",
        ) from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another livekit-agents-patch run on {directory}", file=sys.stderr)
            sys.stderr.flush()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_temp(path: Path, data: bytes, like: Path | None = None) -> Path:
    """``data`` in a temporary file beside ``path``, synced, with the mode and owner of ``like``."""
    tmp = path.with_name(f".{path.name}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if like is not None:
            st = like.stat()
            os.chmod(tmp, st.st_mode & 0o7777)
            if hasattr(os, "chown") and os.geteuid() == 0:
                with contextlib.suppress(OSError):
                    os.chown(tmp, st.st_uid, st.st_gid)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _journal_path(target: Target) -> Path:
    return _directory(target) / JOURNAL


def _write_journal(
    target: Target, operation: str, original: dict[str, bytes], new: dict[str, bytes]
) -> None:
    data = {
        "format": 1,
        "operation": operation,
        "version": target.version,
        "files": {
            relative: {
                "original": base64.b64encode(original[relative]).decode("ascii"),
                "original_sha256": sha256(original[relative]),
                "new_sha256": sha256(new[relative]),
            }
            for relative in new
        },
    }
    journal = _journal_path(target)
    tmp = _write_temp(journal, json.dumps(data).encode("utf-8"))
    os.replace(tmp, journal)
    _fsync_dir(journal.parent)


def read_journal(target: Target) -> dict[str, bytes] | None:
    """The original bytes an interrupted run saved, checked against the files now on disk."""
    journal = _journal_path(target)
    if not journal.exists():
        return None
    stale = (
        f"Next: if the files are as you want them, delete {journal}; otherwise "
        f"{target.reinstall}, then delete {journal}."
    )
    try:
        data = json.loads(journal.read_text(encoding="utf-8"))
        files = data["files"]
        original = {
            rel: base64.b64decode(entry["original"], validate=True) for rel, entry in files.items()
        }
        new = {rel: str(entry["new_sha256"]) for rel, entry in files.items()}
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as e:
        raise PatchingError(
            Exit.INTERRUPTED,
            f"{journal}: expected the journal of an interrupted run, found "
            f"unreadable data ({e}). {stale}",
        ) from e
    if data.get("version") != target.version or sorted(files) != sorted(TARGETS):
        raise PatchingError(
            Exit.INTERRUPTED,
            f"{journal} was left by a run on livekit-agents {data.get('version')}, but "
            f"{target.version} is installed now: it cannot be rolled back. {stale}",
        )
    for relative, saved in original.items():
        path = target.path(relative)
        current = sha256(path.read_bytes()) if path.is_file() else None
        if current not in (sha256(saved), new[relative]):
            raise PatchingError(
                Exit.INTERRUPTED,
                f"{journal} records an interrupted {data.get('operation')}, but {path} has changed "
                f"since: expected sha256 {sha256(saved)[:12]}… or {new[relative][:12]}…, found "
                f"{(current or 'no file')[:12]}…. {stale}",
            )
    return original


def interrupted(target: Target) -> bool:
    return _journal_path(target).exists()


def recover(target: Target) -> bool:
    """Roll back a run that was killed mid-write; return whether there was one."""
    original = read_journal(target)
    if original is None:
        return False
    for relative, data in original.items():
        path = writable.real_path(target, relative)
        if not path.is_file() or path.read_bytes() != data:
            os.replace(_write_temp(path, data, like=path if path.is_file() else None), path)
            _drop_bytecode(target, relative)
    _fsync_dir(_directory(target))
    _journal_path(target).unlink()
    return True


def _drop_bytecode(target: Target, relative: str) -> None:
    """Remove cached bytecode of a target: unchecked hash-based .pyc would hide the change.

    Python caches a module under the name it is imported by, which is the link's when the
    target is a symlink inside the package, so both that name and the real file's are cleared.
    """
    sources = {target.path(relative), writable.real_path(target, relative)}
    for source in sources:
        for pyc in (source.parent / "__pycache__").glob(f"{source.stem}.*.pyc"):
            pyc.unlink(missing_ok=True)


def write_both(target: Target, operation: str, new: dict[str, bytes]) -> None:
    """Replace both files, or neither: temporaries and journal first, restore on any failure."""
    paths = {relative: writable.real_path(target, relative) for relative in new}
    original = {relative: paths[relative].read_bytes() for relative in new}
    temps: dict[str, Path] = {}
    replaced: list[str] = []
    try:
        for relative, data in new.items():
            temps[relative] = _write_temp(paths[relative], data, like=paths[relative])
        _write_journal(target, operation, original, new)
        for relative in new:
            os.replace(temps[relative], paths[relative])
            del temps[relative]  # only once it is gone: a failed replace leaves it to clean up
            replaced.append(relative)
            _drop_bytecode(target, relative)
        _fsync_dir(_directory(target))
    except BaseException as e:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        try:
            for relative in replaced:
                path = paths[relative]
                os.replace(_write_temp(path, original[relative], like=path), path)
                _drop_bytecode(target, relative)
            _journal_path(target).unlink(missing_ok=True)
        except OSError as restore_error:
            raise PatchingError(
                Exit.IO_ERROR,
                f"writing failed ({e}) and so did restoring ({restore_error}); the journal "
                f"{_journal_path(target)} keeps the original bytes. Next: run the same command "
                "again once the disk is writable; it rolls back first.",
            ) from e
        if isinstance(e, OSError):
            where = Path(e.filename) if e.filename else _directory(target)
            raise PatchingError(
                Exit.IO_ERROR,
                f"cannot write {where}: {e.strerror or e} ({writable.cause(e, where)}); every file "
                "was restored to its previous bytes and no temporary file is left. Next: "
                f"{writable.remedy(e, where)}, then run the same command again.",
            ) from e
        raise
    _journal_path(target).unlink()
    _fsync_dir(_directory(target))


# --- leftovers -------------------------------------------------------------------------------


def leftovers(target: Target) -> list[Path]:
    """Temporary files a killed run left beside the targets (its journal's included)."""
    found = []
    names = [_real_path_or_none(target, relative) for relative in TARGETS]
    names.append(_journal_path(target))
    for path in names:
        if path is not None:
            tmp = path.with_name(f".{path.name}{TMP_SUFFIX}")
            if tmp.is_file() and not tmp.is_symlink():
                found.append(tmp)
    return found


def _real_path_or_none(target: Target, relative: str) -> Path | None:
    try:
        return writable.real_path(target, relative)
    except PatchingError:
        return None


def clean_leftovers(target: Target) -> list[str]:
    """Remove leftover temporary files; return a note for each that could not be removed."""
    notes = []
    for tmp in leftovers(target):
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            notes.append(f"could not remove the leftover {tmp}: {e.strerror or e}")
    return notes
