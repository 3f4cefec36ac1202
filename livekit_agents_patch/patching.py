"""Apply and revert the patch on an installed livekit-agents: checked first, all-or-nothing.

Every hunk of both files is placed in memory and the result is checked against the index's
hashes before any byte is written. The new bytes go to temporary files beside the targets, then
a journal of the original bytes is written, then both targets are replaced with ``os.replace``,
all under a lock on the directory. An exception restores the originals at once; a run killed
between the two replacements leaves the journal, and the next ``apply`` or ``revert`` rolls it
back before doing anything else (``status`` reports it meanwhile). Cached bytecode of the
targets is removed so that a fresh interpreter compiles the new source, also when it held
unchecked hash-based .pyc files, which Python would otherwise trust without looking.

No git and no GNU patch: ``applier`` places the hunks in memory.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import fcntl
import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import applier
from .index import STRIP, TARGETS, Index, Release, load, sha256

JOURNAL = ".livekit-agents-patch.journal"
TMP_SUFFIX = ".livekit-agents-patch.tmp"
CRASH_ENV = "LIVEKIT_AGENTS_PATCH_TEST_CRASH"
"""Test hook: ``exception`` or ``exit`` between the two file replacements."""
HOLD_ENV = "LIVEKIT_AGENTS_PATCH_TEST_HOLD"
"""Test hook: the path of a FIFO; once the lock is held, wait until something writes to it."""


class Exit(enum.IntEnum):
    """Exit codes, one per outcome a script may want to tell apart."""

    OK = 0
    """Done, already done, or (``status``) patched."""
    VIOLATION = 1
    """``verify``: a property of the contract does not hold."""
    USAGE = 2
    """Bad arguments, an interpreter that cannot be run, an unreadable patch."""
    NOT_INSTALLED = 3
    UNSUPPORTED = 4
    FOREIGN_EDIT = 5
    """A target file is neither pristine nor patched, missing, or the two disagree."""
    PRISTINE = 6
    """``status``: the fix is not applied."""
    IO_ERROR = 7
    """Cannot write (read-only, another owner, symlink out of the package); nothing changed."""
    INTERRUPTED = 8
    """``status``: a run was killed mid-write; the next apply or revert rolls it back."""


class State(enum.Enum):
    PRISTINE = "pristine"
    PATCHED = "patched"
    FOREIGN = "foreign edit"
    MISSING = "missing"


class PatchingError(Exception):
    """A refusal: says what was expected, what was found, and what to do next."""

    def __init__(self, code: Exit, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    """One installed livekit-agents: its version and the directory holding ``livekit/``."""

    version: str
    root: Path
    record: dict[str, str]
    """sha256 of the files as the wheel's RECORD lists them (may be empty)."""
    dist_root: Path | None = None
    """Where the distribution's metadata says it is installed, if that is not ``root``."""
    files_version: str | None = None
    """``__version__`` in ``livekit/agents/version.py``, if readable."""
    python: str | None = None
    """The interpreter the target belongs to, for the commands this tool suggests."""
    notes: tuple[str, ...] = field(default=())

    def path(self, relative: str) -> Path:
        return self.root / relative

    @property
    def package_dir(self) -> Path:
        return self.root / "livekit" / "agents"

    @property
    def reinstall(self) -> str:
        """The command that puts back the wheel's own files."""
        python = self.python or "python"
        return f"{python} -m pip install --force-reinstall --no-deps livekit-agents=={self.version}"


@dataclass(frozen=True)
class FileReport:
    relative: str
    path: Path
    state: State
    sha256: str | None
    note: str | None = None
    """What a foreign file is: the file of another release, or nothing the index knows."""


# --- reading and judging ---------------------------------------------------------------------


def read(target: Target) -> dict[str, bytes | None]:
    """The bytes of both targets as they are on disk (``None``: missing)."""
    out: dict[str, bytes | None] = {}
    for relative in TARGETS:
        path = target.path(relative)
        try:
            out[relative] = path.read_bytes() if path.is_file() else None
        except OSError as e:
            raise PatchingError(Exit.IO_ERROR, f"cannot read {path}: {e}") from e
    return out


def _versions(versions: list[str]) -> str:
    if len(versions) <= 3:
        return ", ".join(versions)
    return f"{versions[0]} … {versions[-1]} ({len(versions)} releases)"


def identify(digest: str, index: Index | None = None) -> str | None:
    """Which release's pristine or patched file has this sha256, if any."""
    releases = (index or load()).releases.values()
    pristine = [r.version for r in releases if digest in r.pristine.values()]
    patched = [r.version for r in releases if digest in r.patched.values()]
    found = []
    if pristine:
        found.append(f"the pristine file of livekit-agents {_versions(pristine)}")
    if patched:
        found.append(f"the patched file of livekit-agents {_versions(patched)}")
    return " and ".join(found) or None


def judge(
    target: Target, release: Release | None, contents: Mapping[str, bytes | None]
) -> list[FileReport]:
    """Each target's state: pristine or patched by the index's hashes (or, for a release the
    index does not support, pristine by the wheel's RECORD), else a foreign edit or missing."""
    reports = []
    for relative in TARGETS:
        data = contents[relative]
        path = target.path(relative)
        if data is None:
            reports.append(FileReport(relative, path, State.MISSING, None))
            continue
        digest = sha256(data)
        pristine = release.pristine.get(relative) if release else target.record.get(relative)
        if digest == pristine:
            reports.append(FileReport(relative, path, State.PRISTINE, digest))
        elif release is not None and digest == release.patched.get(relative):
            reports.append(FileReport(relative, path, State.PATCHED, digest))
        else:
            note = identify(digest)
            if note is None and digest == target.record.get(relative):
                note = (
                    "the wheel's RECORD lists it, but the patch index does not (a rebuilt wheel?)"
                )
            reports.append(FileReport(relative, path, State.FOREIGN, digest, note))
    return reports


def states(target: Target, release: Release | None) -> dict[str, State]:
    return {r.relative: r.state for r in judge(target, release, read(target))}


def describe(report: FileReport, release: Release | None, *, short: bool = False) -> str:
    """One line: the file, its state, and for a foreign edit what was expected and found."""
    line = f"{report.relative if short else report.path}: {report.state.value}"
    if report.state is State.FOREIGN and report.sha256:
        expected = ""
        if release is not None and release.pristine:
            expected = (
                f"expected sha256 {release.pristine[report.relative][:12]}… (pristine) or "
                f"{release.patched[report.relative][:12]}… (patched) of {release.version}; "
            )
        line += f" ({expected}found {report.sha256[:12]}…"
        line += f", {report.note})" if report.note else ", a file no release has)"
    return line


def release_for(target: Target, index: Index | None = None) -> Release:
    """The index entry for the target's version; refuse unknown and unsupported versions."""
    index = index or load()
    release = index.releases.get(target.version)
    if release is None:
        supported = index.supported()
        raise PatchingError(
            Exit.UNSUPPORTED,
            f"livekit-agents {target.version} is not in the patch index (it covers "
            f"{supported[0]} to {supported[-1]}). Next: run `livekit-agents-patch verify` to see "
            "whether this release still needs the fix; if it does, upgrade livekit-agents-patch.",
        )
    if release.patch is None:
        raise PatchingError(
            Exit.UNSUPPORTED,
            f"livekit-agents {target.version} is not supported: {release.unsupported}. "
            f"Next: upgrade livekit-agents to {index.supported()[0]} or later.",
        )
    return release


def _real_path(target: Target, relative: str) -> Path:
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


def _patch_files(release: Release) -> dict[str, Any]:
    """The patch's per-file diffs, by target path."""
    try:
        patch_set = applier.parse(load().patch_text(release.patch or ""))
        files = {applier.target_path(f, STRIP): f for f in patch_set}
    except (OSError, applier.PatchError) as e:
        raise PatchingError(
            Exit.USAGE, f"cannot read the patch {release.patch}: {e}. Next: reinstall this tool."
        ) from e
    if sorted(files) != sorted(TARGETS):
        raise PatchingError(
            Exit.USAGE,
            f"the patch {release.patch} changes {sorted(files)}, expected {sorted(TARGETS)}. "
            "Next: reinstall this tool.",
        )
    return files


def _transform_file(
    target: Target, release: Release, relative: str, current: bytes | None, *, reverse: bool
) -> bytes:
    """The new bytes of one file, every hunk placed and the hash checked; nothing written."""
    path = target.path(relative)
    if current is None:
        raise PatchingError(
            Exit.FOREIGN_EDIT, f"expected {path}, found no file. Next: {target.reinstall}"
        )
    try:
        text = current.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PatchingError(Exit.FOREIGN_EDIT, f"{path}: expected UTF-8 text, found {e}") from e
    try:
        new, _ = applier.apply_file(text, _patch_files(release)[relative], reverse=reverse)
    except applier.PatchError as e:
        raise PatchingError(Exit.FOREIGN_EDIT, f"{path}: {e}") from e
    data = new.encode("utf-8")
    expected = (release.pristine if reverse else release.patched)[relative]
    if sha256(data) != expected:
        raise PatchingError(
            Exit.FOREIGN_EDIT,
            f"{path}: every hunk can {'reverse' if reverse else 'apply'}, but the result's "
            f"sha256 is {sha256(data)[:12]}…, expected {expected[:12]}… for {target.version}: "
            f"the file differs from the {'patched' if reverse else 'pristine'} one outside "
            "the patch's hunks",
        )
    return data


def _transform(
    target: Target, release: Release, contents: Mapping[str, bytes | None], *, reverse: bool
) -> dict[str, bytes]:
    """The new bytes of both files, in the patch's order; nothing written."""
    return {
        relative: _transform_file(target, release, relative, contents[relative], reverse=reverse)
        for relative in _patch_files(release)
    }


# --- the lock and the journal ----------------------------------------------------------------


def _directory(target: Target) -> Path:
    return target.path(TARGETS[0]).parent


@contextlib.contextmanager
def _locked(target: Target) -> Iterator[None]:
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


def _read_journal(target: Target) -> dict[str, bytes] | None:
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
    original = _read_journal(target)
    if original is None:
        return False
    for relative, data in original.items():
        path = _real_path(target, relative)
        if not path.is_file() or path.read_bytes() != data:
            os.replace(_write_temp(path, data, like=path if path.is_file() else None), path)
            _drop_bytecode(path)
    _fsync_dir(_directory(target))
    _journal_path(target).unlink()
    return True


def _drop_bytecode(source: Path) -> None:
    """Remove cached bytecode of ``source``: unchecked hash-based .pyc would hide the change."""
    for pyc in (source.parent / "__pycache__").glob(f"{source.stem}.*.pyc"):
        pyc.unlink(missing_ok=True)


def _crash_hook() -> None:
    crash = os.environ.get(CRASH_ENV)
    if crash == "exit":
        os._exit(70)
    if crash:
        raise OSError("injected crash between the two file writes (test hook)")


def _write(target: Target, operation: str, new: dict[str, bytes]) -> None:
    """Replace both files, or neither: temporaries and journal first, restore on any failure."""
    paths = {relative: _real_path(target, relative) for relative in new}
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
            os.replace(temps.pop(relative), paths[relative])
            replaced.append(relative)
            _drop_bytecode(paths[relative])
        _fsync_dir(_directory(target))
    except BaseException as e:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        try:
            for relative in replaced:
                path = paths[relative]
                os.replace(_write_temp(path, original[relative], like=path), path)
                _drop_bytecode(path)
            _journal_path(target).unlink(missing_ok=True)
        except OSError as restore_error:
            raise PatchingError(
                Exit.IO_ERROR,
                f"writing failed ({e}) and so did restoring ({restore_error}); the journal "
                f"{_journal_path(target)} keeps the original bytes. Next: run the same command "
                "again once the disk is writable; it rolls back first.",
            ) from e
        if isinstance(e, OSError):
            raise PatchingError(
                Exit.IO_ERROR,
                f"cannot write {e.filename or _directory(target)}: {e.strerror or e}; every file "
                "was restored to its previous bytes. Next: make the directory writable (run as "
                "its owner), then run the same command again.",
            ) from e
        raise
    _journal_path(target).unlink()
    _fsync_dir(_directory(target))


def _writable(target: Target) -> None:
    for relative in TARGETS:
        directory = _real_path(target, relative).parent
        if not os.access(directory, os.W_OK):
            raise PatchingError(
                Exit.IO_ERROR,
                f"expected a writable directory {directory}, found it read-only (a read-only "
                "file system, or owned by another user); nothing was changed. Next: run as the "
                "owner of the environment, e.g. in the Dockerfile before USER.",
            )


# --- the commands ----------------------------------------------------------------------------


def _preflight(
    target: Target, contents: Mapping[str, bytes | None]
) -> tuple[Release, list[FileReport]]:
    release = release_for(target)
    for relative in TARGETS:
        _real_path(target, relative)
    reports = judge(target, release, contents)
    for report in reports:
        if report.state is State.MISSING:
            raise PatchingError(
                Exit.FOREIGN_EDIT,
                f"expected {report.path} (livekit-agents {target.version}), found no file. "
                f"Next: {target.reinstall}",
            )
    return release, reports


def _plan(
    target: Target, contents: Mapping[str, bytes | None], *, reverse: bool
) -> tuple[str, dict[str, bytes] | None]:
    """What apply (or revert) would do from ``contents``: ``(result, new bytes or None)``."""
    release, reports = _preflight(target, contents)
    done, todo = (State.PRISTINE, State.PATCHED) if reverse else (State.PATCHED, State.PRISTINE)
    if all(r.state is done for r in reports):
        return ("already pristine" if reverse else "already applied"), None
    if not all(r.state is todo for r in reports):
        raise PatchingError(
            Exit.FOREIGN_EDIT, _mixed(target, release, reports, contents, reverse=reverse)
        )
    return ("reverted" if reverse else "applied"), _transform(
        target, release, contents, reverse=reverse
    )


def _clean_temps(target: Target) -> None:
    """Remove temporary files a killed run left beside the targets."""
    for relative in TARGETS:
        path = target.path(relative).resolve()
        if path.is_relative_to(target.package_dir.resolve()):
            path.with_name(f".{path.name}{TMP_SUFFIX}").unlink(missing_ok=True)


def _run(target: Target, *, reverse: bool) -> str:
    with _locked(target):
        recovered = recover(target)
        _clean_temps(target)
        result, new = _plan(target, read(target), reverse=reverse)
        if new is not None:
            _writable(target)
            # the one mixed state a hard kill can leave must still run: the patched events.py
            # calls a method only the patched speech_handle.py has, so that file is patched
            # first and reverted last (stock behaviour, never an AttributeError)
            order = tuple(reversed(TARGETS)) if reverse else TARGETS
            _write(target, "revert" if reverse else "apply", {rel: new[rel] for rel in order})
        return result + (" (after rolling back an interrupted run)" if recovered else "")


def apply(target: Target) -> str:
    """Patch both files; idempotent. Return what was done."""
    return _run(target, reverse=False)


def revert(target: Target) -> str:
    """Restore the pristine bytes; idempotent. Return what was done."""
    return _run(target, reverse=True)


def check(target: Target) -> str:
    """What ``apply`` would do, without writing anything."""
    contents = read(target)
    original = _read_journal(target)
    result, new = _plan(target, {**contents, **(original or {})}, reverse=False)
    if new is not None:
        _writable(target)
        result = f"would apply {release_for(target).patch}"
    if original is not None:
        result += " (after rolling back an interrupted run)"
    return result


def _mixed(
    target: Target,
    release: Release,
    reports: list[FileReport],
    contents: Mapping[str, bytes | None],
    *,
    reverse: bool,
) -> str:
    """Explain files that are neither all pristine nor all patched, hunk and line included."""
    want, other = ("patched", "pristine") if reverse else ("pristine", "patched")
    lines = [
        f"expected both files {want} (or both {other}) for livekit-agents {target.version}; found:"
    ]
    lines += [f"  {describe(r, release)}" for r in reports]
    if target.files_version and target.files_version != target.version:
        lines.append(
            f"  {target.package_dir / 'version.py'} says {target.files_version}, the installed "
            f"metadata says {target.version}"
        )
    for report in reports:
        if report.state is State.FOREIGN:
            try:
                _transform_file(
                    target, release, report.relative, contents[report.relative], reverse=reverse
                )
            except PatchingError as e:
                lines.append(f"  first difference: {e}")
    lines.append(f"Next: put back the pristine files with {target.reinstall}, then run this again.")
    return "\n".join(lines)
