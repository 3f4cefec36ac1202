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
import errno
import fcntl
import json
import os
import stat
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

from .index import TARGETS, sha256
from .target import Exit, PatchingError, Target

JOURNAL = ".livekit-agents-patch.journal"
TMP_SUFFIX = ".livekit-agents-patch.tmp"
CRASH_ENV = "LIVEKIT_AGENTS_PATCH_TEST_CRASH"
"""Test hook: ``exception`` or ``exit`` between the two file replacements."""
HOLD_ENV = "LIVEKIT_AGENTS_PATCH_TEST_HOLD"
"""Test hook: the path of a FIFO; once the lock is held, wait until something writes to it."""


def real_path(target: Target, relative: str) -> Path:
    """The file to write: a symlink is followed only while it stays inside the package."""
    path = target.path(relative)
    package = target.package_dir.resolve()
    real = path.resolve()
    if not real.is_relative_to(package):
        raise PatchingError(
            Exit.IO_ERROR,
            f"{path} resolves to {real}, outside the package directory {package}: expected a "
            "file inside it. Refusing to write through the link; nothing was changed. Next: "
            f"replace the link with the package's own file ({target.reinstall}).",
        )
    return real


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
        if hold := os.environ.get(HOLD_ENV):
            print("test hook: holding the lock", file=sys.stderr, flush=True)
            with open(hold) as fifo:
                fifo.read()
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
        path = real_path(target, relative)
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
    sources = {target.path(relative), real_path(target, relative)}
    for source in sources:
        for pyc in (source.parent / "__pycache__").glob(f"{source.stem}.*.pyc"):
            pyc.unlink(missing_ok=True)


def _crash_hook() -> None:
    crash = os.environ.get(CRASH_ENV)
    if crash == "exit":
        os._exit(70)
    if crash:
        raise OSError("injected crash between the two file writes (test hook)")


def write_both(target: Target, operation: str, new: dict[str, bytes]) -> None:
    """Replace both files, or neither: temporaries and journal first, restore on any failure."""
    paths = {relative: real_path(target, relative) for relative in new}
    original = {relative: paths[relative].read_bytes() for relative in new}
    temps: dict[str, Path] = {}
    replaced: list[str] = []
    try:
        for relative, data in new.items():
            temps[relative] = _write_temp(paths[relative], data, like=paths[relative])
        _write_journal(target, operation, original, new)
        for i, relative in enumerate(new):
            if i == 1:
                _crash_hook()
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
                f"cannot write {where}: {e.strerror or e} ({_cause(e, where)}); every file was "
                "restored to its previous bytes and no temporary file is left. Next: "
                f"{_remedy(e, where)}, then run the same command again.",
            ) from e
        raise
    _journal_path(target).unlink()
    _fsync_dir(_directory(target))


# --- why a write would fail ------------------------------------------------------------------

_FS_IOC_GETFLAGS = 0x80086601  # Linux _IOR('f', 1, long)
_FS_IMMUTABLE_FL = 0x10
_FS_APPEND_FL = 0x20


def _linux_flags(path: Path) -> int | None:
    """The file's inode flags (``lsattr``), where the file system has them."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf, True)
        flags: int = struct.unpack_from("i", buf)[0]
        return flags
    except OSError:  # not Linux, or a file system without inode flags
        return None
    finally:
        os.close(fd)


def _locked_flag(path: Path) -> str | None:
    """``immutable`` or ``append-only`` when the file or directory carries that flag."""
    flags = _linux_flags(path)
    if flags is not None:
        if flags & _FS_IMMUTABLE_FL:
            return "immutable"
        if flags & _FS_APPEND_FL:
            return "append-only"
    bsd_flags = getattr(os.lstat(path), "st_flags", 0)  # macOS and the BSDs: chflags
    if bsd_flags & (stat.UF_IMMUTABLE | stat.SF_IMMUTABLE):
        return "immutable"
    if bsd_flags & (stat.UF_APPEND | stat.SF_APPEND):
        return "append-only"
    return None


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _owner(path: Path) -> str:
    st = path.stat()
    mode = stat.filemode(st.st_mode)
    return f"owned by uid {st.st_uid}, mode {mode}; this run is uid {os.geteuid()}"


def unwritable(target: Target) -> str | None:
    """Why replacing the targets would fail, naming the real cause; ``None`` if nothing does.

    Replacing a file needs a writable directory on a writable mount, and neither the file nor
    the directory may carry the immutable or append-only flag (``chattr +i``, ``chflags uchg``),
    which even root cannot get past without clearing it first.
    """
    for relative in TARGETS:
        path = real_path(target, relative)
        directory = path.parent
        if _read_only_mount(directory):
            return (
                f"{directory} is on a read-only file system. Next: apply the fix where the "
                "environment is built, before its file system is made read-only (or install a "
                "patched wheel)"
            )
        for each in (path, directory):
            if each.exists() and (flag := _locked_flag(each)):
                kind = "file" if each is path else "directory"
                return (
                    f"the {kind} {each} is {flag} (chattr +i/+a). Next: as root, "
                    f"`chattr -i -a {each}`"
                )
        if not os.access(directory, os.W_OK):
            return (
                f"the directory {directory} is not writable by this user ({_owner(directory)}). "
                "Next: run as the owner of the environment, e.g. in the Dockerfile before USER"
            )
    return None


def check_writable(target: Target) -> None:
    """Refuse, before anything is written, when a write could not succeed."""
    reason = unwritable(target)
    if reason is not None:
        cause, _, next_step = reason.partition(". Next: ")
        raise PatchingError(
            Exit.IO_ERROR,
            f"expected to be able to replace the target files, but {cause}; nothing was "
            f"changed. Next: {next_step}, then run the same command again.",
        )


def _cause(e: OSError, path: Path) -> str:
    if e.errno == errno.EROFS or _read_only_mount(path.parent):
        return "a read-only file system"
    flag = next((f for p in (path, path.parent) if p.exists() and (f := _locked_flag(p))), None)
    if flag:
        return f"an {flag} file or directory"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permissions: " + _owner(path.parent)
    return "an I/O error"


def _remedy(e: OSError, path: Path) -> str:
    cause = _cause(e, path)
    if cause.startswith("a read-only"):
        return "apply the fix where the environment is built, before it is made read-only"
    if cause.startswith("an "):
        return "as root, `chattr -i -a` the file and its directory"
    return "make the directory writable (run as its owner)"


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
        return real_path(target, relative)
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
