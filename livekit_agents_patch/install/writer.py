"""The crash-safe writer: both target files replaced, or neither.

The new bytes go to temporary files beside the targets, then a journal of the original bytes is
written, then both targets are replaced with ``os.replace`` in the order ``patching`` gives (the
only mixed state a kill can leave is the harmless one: patched ``speech_handle.py``, stock
``events.py``), then both are checked by hash and only then is the journal removed. Any failure,
and SIGINT/SIGTERM/SIGHUP (``stopping.Stopped``), rolls back at once; a run killed outright leaves
the journal, and the next ``apply`` or ``revert`` rolls it back before doing anything else
(``status`` reports it meanwhile). Cached bytecode of the targets is removed so that a fresh
interpreter compiles the new source, also when it held unchecked hash-based .pyc files, which
Python would otherwise trust without looking. Names are created and read as ``ownfiles`` says:
never through a link.

Why the rollback judges by the bytes on disk and not by a record of what was replaced: a signal
raises ``Stopped`` at any bytecode boundary, also between ``os.replace`` returning and the line
that would record it, and an injected or real error can come after a rename that did happen. So
no bookkeeping is trusted: the rollback compares each file with the journal's original and puts
back what differs, last-written file first (so a rollback torn in turn leaves the harmless mix,
journaled), checks both by hash, and only then removes the journal. The rollback and the commit
(hash check, journal removal) run with the signals deferred (``stopping.deferred``), so a second
Ctrl-C cannot tear them; the writes themselves are not deferred, so Ctrl-C stops a run on a slow
disk at once.

This module decides nothing: ``patching`` says what to write.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
from pathlib import Path

from .. import stopping
from ..exits import Exit
from . import ownfiles, writable
from .index import TARGETS, sha256
from .target import PatchingError, Target

JOURNAL = ownfiles.JOURNAL
TMP_SUFFIX = ownfiles.TMP_SUFFIX


def _directory(target: Target) -> Path:
    return target.path(TARGETS[0]).parent


def _journal_path(target: Target) -> Path:
    return _directory(target) / JOURNAL


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _current(path: Path) -> bytes | None:
    """The bytes of a target file now (``None``: no regular file there)."""
    try:
        return ownfiles.read_regular(path)
    except FileNotFoundError:
        return None


def _write_journal(
    target: Target, operation: str, original: dict[str, bytes], new: dict[str, bytes]
) -> None:
    """The original bytes, in the order the files are written (the rollback reverses it)."""
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
    tmp = ownfiles.write_temp(journal, json.dumps(data).encode("utf-8"))
    os.replace(tmp, journal)
    _fsync_dir(journal.parent)


def read_journal(target: Target) -> dict[str, bytes] | None:
    """The original bytes an interrupted run saved (in its write order), checked against the
    files now on disk. Anything but a regular file at the journal's name is no journal: it is
    a leftover (``leftovers``), never read."""
    journal = _journal_path(target)
    if not ownfiles.is_regular(journal):
        return None
    stale = (
        f"Next: if the files are as you want them, delete {journal}; otherwise "
        f"{target.reinstall}, then delete {journal}."
    )
    try:
        data = json.loads(ownfiles.read_regular(journal).decode("utf-8"))
        files = data["files"]
        original = {
            rel: base64.b64decode(entry["original"], validate=True) for rel, entry in files.items()
        }
        new = {rel: str(entry["new_sha256"]) for rel, entry in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, binascii.Error) as e:
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
        path = writable.real_path(target, relative)
        found = _current(path)
        current = sha256(found) if found is not None else None
        if current not in (sha256(saved), new[relative]):
            raise PatchingError(
                Exit.INTERRUPTED,
                f"{journal} records an interrupted {data.get('operation')}, but {path} has changed "
                f"since: expected sha256 {sha256(saved)[:12]}… or {new[relative][:12]}…, found "
                f"{(current or 'no file')[:12]}…. {stale}",
            )
    return original


def interrupted(target: Target) -> bool:
    """Whether an interrupted run's journal is there (a regular file, as only this tool writes)."""
    return ownfiles.is_regular(_journal_path(target))


def _restore(target: Target, original: dict[str, bytes]) -> None:
    """Put back ``original`` where the bytes on disk differ, the last-written file first; check
    both by hash; only then remove the journal (so a failure on the way keeps it)."""
    for relative in reversed(original):
        path = writable.real_path(target, relative)
        current = _current(path)
        if current != original[relative]:
            like = os.stat(path) if current is not None else None
            os.replace(ownfiles.write_temp(path, original[relative], like), path)
            with contextlib.suppress(OSError):  # the restored bytes are those the .pyc was of
                _drop_bytecode(target, relative)
    _fsync_dir(_directory(target))
    _check(target, original, "restored")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_journal_path(target))
    _fsync_dir(_directory(target))


def _check(target: Target, wanted: dict[str, bytes], what: str) -> None:
    for relative, data in wanted.items():
        path = writable.real_path(target, relative)
        found = _current(path)
        if found is None or sha256(found) != sha256(data):
            raise OSError(
                f"{path} was {what}, but reads back with sha256 "
                f"{sha256(found)[:12] if found is not None else 'no file'}…, expected "
                f"{sha256(data)[:12]}…"
            )


def recover(target: Target) -> bool:
    """Roll back a run that was killed mid-write; return whether there was one."""
    original = read_journal(target)
    if original is None:
        return False
    try:
        _restore(target, original)
    except OSError as e:
        where = Path(e.filename) if e.filename else _directory(target)
        raise PatchingError(
            Exit.IO_ERROR,
            f"cannot roll back the interrupted run: {where}: {e.strerror or e} "
            f"({writable.cause(e, where)}); its journal {_journal_path(target)} keeps the "
            "original bytes, and the files are as the interrupted run left them (a state that "
            f"runs). Next: {writable.remedy(e, where)}, then run the same command again.",
        ) from e
    return True


def _drop_bytecode(target: Target, relative: str) -> None:
    """Remove cached bytecode of a target: unchecked hash-based .pyc would hide the change.

    Python caches a module under the name it is imported by, which is the link's when the
    target is a symlink inside the package, so both that name and the real file's are cleared.
    ``unlink`` removes a planted link itself; ``writable`` refused a ``__pycache__`` that is one.
    """
    for pyc in writable.cached_bytecode(target, relative):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pyc)


def _temps(paths: dict[str, Path], target: Target) -> list[Path]:
    return [ownfiles.temp_name(p) for p in paths.values()] + [
        ownfiles.temp_name(_journal_path(target))
    ]


def write_both(target: Target, operation: str, new: dict[str, bytes]) -> None:
    """Replace both files, in ``new``'s order, or neither: temporaries and journal first,
    restore on any failure or stopping signal."""
    paths = {relative: writable.real_path(target, relative) for relative in new}
    original = {}
    for relative, path in paths.items():
        data = _current(path)
        if data is None:
            raise PatchingError(Exit.FOREIGN_EDIT, f"expected the file {path}, found none")
        original[relative] = data
    committing = False
    try:
        for relative, data in new.items():
            ownfiles.write_temp(paths[relative], data, like=os.stat(paths[relative]))
        _write_journal(target, operation, original, new)
        for relative, path in paths.items():
            os.replace(ownfiles.temp_name(path), path)
            _drop_bytecode(target, relative)
        # from the last write to the commit no signal may land unhandled: a Stopped raised as
        # the hold begins is still inside this try (rolled back); once it holds, the commit runs
        with stopping.deferred():
            committing = True
            _fsync_dir(_directory(target))
            _commit(target, paths, original, new)
    except BaseException as e:
        if committing:  # the commit decided (and rolled back itself where it had to)
            raise
        _held_roll_back(target, paths, original, e)
        if isinstance(e, OSError):
            raise _failed(target, e) from e
        raise


def _commit(
    target: Target, paths: dict[str, Path], original: dict[str, bytes], new: dict[str, bytes]
) -> None:
    """Both files checked by hash, then the journal goes (signals held by the caller)."""
    try:
        _check(target, new, "written")
    except OSError as e:
        _roll_back(target, paths, original, e)
        raise _failed(target, e) from e
    try:
        os.unlink(_journal_path(target))
    except OSError as e:
        where = _journal_path(target)
        raise PatchingError(
            Exit.IO_ERROR,
            f"both files were written and checked by hash, but the journal {where} could "
            f"not be removed: {e.strerror or e} ({writable.cause(e, where)}); while it is "
            "there, the next apply or revert rolls the files back first. Next: "
            f"{writable.remedy(e, where)}, then run the same command again.",
        ) from e
    _fsync_dir(_directory(target))


def _held_roll_back(
    target: Target, paths: dict[str, Path], original: dict[str, bytes], e: BaseException
) -> None:
    """``_roll_back`` with the signals held; one that lands as the hold begins (before it
    holds) starts it again, and one held during it is raised once it is done."""
    done = False
    while not done:
        try:
            with stopping.deferred():
                _roll_back(target, paths, original, e)
                done = True
        except stopping.Stopped:
            if done:
                raise


def _roll_back(
    target: Target, paths: dict[str, Path], original: dict[str, bytes], e: BaseException
) -> None:
    """Undo a write that failed (or was stopped) anywhere: the tool's temporary names first
    (whatever is there, by name), then the files by their bytes, then the journal."""
    try:
        for tmp in _temps(paths, target):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _restore(target, original)
    except OSError as restore_error:
        why = f"stopped by {e.name}" if isinstance(e, stopping.Stopped) else f"writing failed ({e})"
        raise PatchingError(
            Exit.IO_ERROR,
            f"{why} and so did restoring ({restore_error}); the journal "
            f"{_journal_path(target)} keeps the original bytes, and the files are either both "
            "as before, both new, or patched speech_handle.py with stock events.py (which "
            "runs). Next: run the same command again once the disk is writable; it rolls "
            "back first.",
        ) from e


def _failed(target: Target, e: OSError) -> PatchingError:
    where = Path(e.filename) if e.filename else _directory(target)
    return PatchingError(
        Exit.IO_ERROR,
        f"cannot write {where}: {e.strerror or e} ({writable.cause(e, where)}); every file "
        "was restored to its previous bytes (checked by hash) and no temporary file is left. "
        f"Next: {writable.remedy(e, where)}, then run the same command again.",
    )


# --- leftovers -------------------------------------------------------------------------------


def _own_names(target: Target) -> list[Path]:
    names = [_real_path_or_none(target, relative) for relative in TARGETS]
    names.append(_journal_path(target))
    return [ownfiles.temp_name(path) for path in names if path is not None]


def leftovers(target: Target) -> list[tuple[Path, str]]:
    """What sits at the tool's own names and is no journal: a killed run's temporary files, or
    a link or special file planted there (``ownfiles.kind`` says which)."""
    return ownfiles.leftovers(_own_names(target), _journal_path(target))


def leftover_notes(target: Target) -> list[str]:
    return [ownfiles.note(path, what) for path, what in leftovers(target)]


def _real_path_or_none(target: Target, relative: str) -> Path | None:
    try:
        return writable.real_path(target, relative)
    except PatchingError:
        return None


def unremovable_leftovers(target: Target) -> list[str]:
    """What ``clean_leftovers`` could not remove (``check``'s dry run of it)."""
    return ownfiles.unremovable(leftovers(target))


def clean_leftovers(target: Target) -> list[str]:
    """Unlink every leftover (a link itself, never what it points to); return a note for each
    that could not be removed."""
    return ownfiles.remove(leftovers(target))
