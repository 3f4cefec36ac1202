"""Where the tool may write, and why a write would fail: named before anything is written.

A target file is written at its real path only while that stays inside the package; the cause of
a refusal or a failed write (read-only mount, ``chattr +i``, another owner) is told apart so the
message can say the real one and the next step that works.
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import os
import stat
import struct
from pathlib import Path

from ..exits import Exit
from .index import TARGETS
from .target import PatchingError, Target


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


def _caches(target: Target, relative: str) -> list[Path]:
    """The ``__pycache__`` directories Python may hold the target's bytecode in: beside the name
    it is imported by and beside the real file (the same one unless the target is a link)."""
    sources = [target.path(relative), real_path(target, relative)]
    return list(dict.fromkeys(source.parent / "__pycache__" for source in sources))


def cached_bytecode(target: Target, relative: str) -> list[Path]:
    """The target's cached .pyc files (``stem.*.pyc``), found without following a link. A
    directory at such a name is no bytecode (Python cannot load it and compiles the source)
    and cannot be unlinked: it is left alone."""
    found = []
    stem = target.path(relative).stem, real_path(target, relative).stem
    for cache in _caches(target, relative):
        if not cache.is_dir() or cache.is_symlink():
            continue
        found += [
            cache / name
            for name in sorted(os.listdir(cache))
            if any(fnmatch.fnmatchcase(name, f"{s}.*.pyc") for s in stem)
            and not _is_directory(cache / name)
        ]
    return found


def _is_directory(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _unwritable_cache(target: Target) -> str | None:
    """Why the target's cached bytecode could not be removed: the write would replace a file
    whose stale unchecked-hash .pyc then still runs, so this is refused before writing."""
    for relative in TARGETS:
        for cache in _caches(target, relative):
            if cache.is_symlink():
                return (
                    f"{cache} is a symbolic link (to {os.readlink(cache)}), where Python keeps "
                    "the files' bytecode; this tool removes stale bytecode there and never "
                    f"through a link. Next: remove the link (`rm {cache}`)"
                )
        if not cached_bytecode(target, relative):
            continue
        for cache in _caches(target, relative):
            if not any(p.parent == cache for p in cached_bytecode(target, relative)):
                continue
            if _read_only_mount(cache):
                return (
                    f"{cache}, which holds bytecode of the files that must be removed with "
                    "them, is on a read-only file system. Next: apply the fix where the "
                    "environment is built (or install a patched wheel)"
                )
            if flag := _locked_flag(cache):
                return (
                    f"the directory {cache}, which holds bytecode of the files that must be "
                    f"removed with them, is {flag} (chattr +i/+a). Next: as root, "
                    f"`chattr -i -a {cache}`"
                )
            if not os.access(cache, os.W_OK):
                return (
                    f"the directory {cache}, which holds bytecode of the files that must be "
                    f"removed with them, is not writable by this user ({_owner(cache)}). Next: "
                    "run as the owner of the environment, or remove that bytecode"
                )
    return None


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
    return _unwritable_cache(target)


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


_FULL = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the user's disk quota is used up"}


def cause(e: OSError, path: Path) -> str:
    if e.errno in _FULL:
        return _FULL[e.errno]
    if e.errno == errno.EROFS or _read_only_mount(path.parent):
        return "a read-only file system"
    flag = next((f for p in (path, path.parent) if p.exists() and (f := _locked_flag(p))), None)
    if flag:
        return f"an {flag} file or directory"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permissions: " + _owner(path.parent)
    return "an I/O error"


def remedy(e: OSError, path: Path) -> str:
    cause_ = cause(e, path)
    if e.errno in _FULL:
        return (
            f"free some space on the file system of {path.parent} (`df -h {path.parent}`; the "
            "write needs about three times the two files' size, under a megabyte)"
        )
    if cause_.startswith("a read-only"):
        return "apply the fix where the environment is built, before it is made read-only"
    if cause_.endswith("file or directory"):
        return "as root, `chattr -i -a` the file and its directory"
    if cause_.startswith("permissions"):
        return "make the directory writable (run as its owner)"
    return (
        f"check the disk and the file system of {path.parent} (`dmesg` shows I/O errors) and "
        "that the path is a regular file"
    )
