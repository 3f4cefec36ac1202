"""Apply and revert the patch on an installed livekit-agents: checked first, all-or-nothing.

Every hunk of both files is placed in memory and the result is checked against the index's
hashes before any byte is written. Files are then replaced with ``os.replace`` under a lock,
behind a journal of the original bytes: an exception restores them at once, and a run killed
between the two replacements is rolled back by the next run. Stale bytecode of the targets is
removed so that a fresh interpreter sees the new source, unchecked hash-based .pyc included.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import applier
from .index import STRIP, TARGETS, Index, Release, load, sha256

JOURNAL = ".livekit-agents-patch.journal"
LOCK = ".livekit-agents-patch.lock"
CRASH_ENV = "LIVEKIT_AGENTS_PATCH_TEST_CRASH"
"""Test hook: ``exception`` or ``exit`` between the two file replacements."""


class Exit(enum.IntEnum):
    """Exit codes, one per outcome a script may want to tell apart."""

    OK = 0
    VIOLATION = 1
    USAGE = 2
    NOT_INSTALLED = 3
    UNSUPPORTED = 4
    FOREIGN_EDIT = 5
    PRISTINE = 6
    IO_ERROR = 7


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

    def path(self, relative: str) -> Path:
        return self.root / relative

    @property
    def package_dir(self) -> Path:
        return self.root / "livekit" / "agents"


def file_state(target: Target, release: Release | None, relative: str) -> State:
    path = target.path(relative)
    if not path.is_file():
        return State.MISSING
    digest = sha256(path.read_bytes())
    pristine = release.pristine.get(relative) if release else target.record.get(relative)
    if digest == pristine or digest == target.record.get(relative):
        return State.PRISTINE
    if release and digest == release.patched.get(relative):
        return State.PATCHED
    return State.FOREIGN


def release_for(target: Target, index: Index | None = None) -> Release:
    """The index entry for the target's version; refuse unknown and unsupported versions."""
    releases = (index or load()).releases
    release = releases.get(target.version)
    if release is None:
        supported = (index or load()).supported()
        raise PatchingError(
            Exit.UNSUPPORTED,
            f"livekit-agents {target.version} is not in the patch index (known: "
            f"{supported[0]} to {supported[-1]}). Next: upgrade livekit-agents-patch, or check "
            "that the fix is still needed (`verify`).",
        )
    if release.patch is None:
        raise PatchingError(
            Exit.UNSUPPORTED,
            f"livekit-agents {target.version} is not supported: {release.unsupported}",
        )
    return release


def _check_paths(target: Target) -> None:
    package = target.package_dir.resolve()
    for relative in TARGETS:
        path = target.path(relative)
        if path.is_symlink() and not path.resolve().is_relative_to(package):
            raise PatchingError(
                Exit.IO_ERROR,
                f"{path} is a symlink to {path.resolve()}, outside the package directory "
                f"{package}; refusing to write through it",
            )


def _transform(target: Target, release: Release, *, reverse: bool) -> dict[str, bytes]:
    """The new bytes of both files, every hunk placed and the hashes checked; nothing written."""
    text = load().patch_text(release.patch or "")
    out = {}
    for patched_file in applier.parse(text):
        relative = applier.target_path(patched_file, STRIP)
        current = target.path(relative).read_bytes()
        try:
            new, _ = applier.apply_file(current.decode("utf-8"), patched_file, reverse=reverse)
        except applier.PatchError as e:
            raise PatchingError(Exit.FOREIGN_EDIT, f"{target.path(relative)}: {e}") from e
        out[relative] = new.encode("utf-8")
    expected = release.pristine if reverse else release.patched
    for relative, data in out.items():
        if sha256(data) != expected[relative]:
            raise PatchingError(
                Exit.FOREIGN_EDIT,
                f"{target.path(relative)}: the result's sha256 is not the index's for "
                f"{target.version}; the file was edited in a way the hunks do not see",
            )
    return out


@contextlib.contextmanager
def _locked(target: Target) -> Iterator[None]:
    lock_dir = target.path(TARGETS[0]).parent
    try:
        handle = open(lock_dir / LOCK, "a")  # noqa: SIM115 - held for the whole block
    except OSError as e:
        raise PatchingError(Exit.IO_ERROR, f"cannot create the lock file in {lock_dir}: {e}") from e
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def recover(target: Target) -> bool:
    """Roll back a run that was killed mid-write; return whether there was one."""
    journal = target.path(TARGETS[0]).parent / JOURNAL
    if not journal.exists():
        return False
    saved = json.loads(journal.read_text(encoding="utf-8"))
    _replace_all(target, {k: base64.b64decode(v) for k, v in saved.items()})
    journal.unlink()
    return True


def _replace_all(target: Target, contents: dict[str, bytes]) -> None:
    for i, (relative, data) in enumerate(contents.items()):
        if i == 1 and (crash := os.environ.get(CRASH_ENV)):
            if crash == "exit":
                os._exit(70)
            raise OSError("injected crash between the two file writes")
        path = target.path(relative).resolve()
        tmp = path.with_name(f".{path.name}.livekit-agents-patch.tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
        _drop_bytecode(path)


def _drop_bytecode(source: Path) -> None:
    """Remove cached bytecode of ``source``: unchecked hash-based .pyc would hide the change."""
    for pyc in (source.parent / "__pycache__").glob(f"{source.stem}.*.pyc"):
        pyc.unlink(missing_ok=True)


def _write(target: Target, new: dict[str, bytes]) -> None:
    """Replace both files, or neither: journal first, restore on any failure."""
    original = {relative: target.path(relative).read_bytes() for relative in new}
    journal = target.path(TARGETS[0]).parent / JOURNAL
    data = {k: base64.b64encode(v).decode("ascii") for k, v in original.items()}
    journal.write_text(json.dumps(data), encoding="utf-8")
    try:
        _replace_all(target, new)
    except BaseException:
        _replace_all(target, original)
        journal.unlink()
        raise
    journal.unlink()


def _writable(target: Target) -> None:
    for relative in TARGETS:
        directory = target.path(relative).resolve().parent
        if not os.access(directory, os.W_OK):
            raise PatchingError(
                Exit.IO_ERROR,
                f"{directory} is not writable (read-only file system or another owner). "
                "Next: run as the owner of the environment, e.g. in the Dockerfile before USER.",
            )


def states(target: Target, release: Release | None) -> dict[str, State]:
    return {relative: file_state(target, release, relative) for relative in TARGETS}


def _preflight(target: Target) -> tuple[Release, dict[str, State]]:
    release = release_for(target)
    _check_paths(target)
    found = states(target, release)
    for relative, state in found.items():
        if state is State.MISSING:
            raise PatchingError(
                Exit.FOREIGN_EDIT,
                f"{target.path(relative)} is missing. Next: pip install --force-reinstall "
                f"--no-deps livekit-agents=={target.version}",
            )
    return release, found


def apply(target: Target) -> str:
    """Patch both files; idempotent. Return what was done."""
    with _locked(target):
        recovered = recover(target)
        release, found = _preflight(target)
        if all(s is State.PATCHED for s in found.values()):
            return "already applied"
        if not all(s is State.PRISTINE for s in found.values()):
            raise PatchingError(Exit.FOREIGN_EDIT, _mixed(target, release, found, reverse=False))
        _writable(target)
        _write(target, _transform(target, release, reverse=False))
        return "applied" + (" (after rolling back an interrupted run)" if recovered else "")


def revert(target: Target) -> str:
    """Restore the pristine bytes; idempotent. Return what was done."""
    with _locked(target):
        recover(target)
        release, found = _preflight(target)
        if all(s is State.PRISTINE for s in found.values()):
            return "already pristine"
        if not all(s is State.PATCHED for s in found.values()):
            raise PatchingError(Exit.FOREIGN_EDIT, _mixed(target, release, found, reverse=True))
        _writable(target)
        _write(target, _transform(target, release, reverse=True))
        return "reverted"


def check(target: Target) -> str:
    """What ``apply`` would do, without writing."""
    release, found = _preflight(target)
    if all(s is State.PATCHED for s in found.values()):
        return "already applied"
    if not all(s is State.PRISTINE for s in found.values()):
        raise PatchingError(Exit.FOREIGN_EDIT, _mixed(target, release, found, reverse=False))
    _writable(target)
    _transform(target, release, reverse=False)
    return f"would apply {release.patch}"


def _mixed(target: Target, release: Release, found: dict[str, State], *, reverse: bool) -> str:
    """Explain files that are neither all pristine nor all patched, hunk and line included."""
    lines = [
        f"expected both files {'patched' if reverse else 'pristine'} (or both "
        f"{'pristine' if reverse else 'patched'}) for livekit-agents {target.version}; found:"
    ]
    lines += [f"  {target.path(rel)}: {state.value}" for rel, state in found.items()]
    for relative, state in found.items():
        if state is State.FOREIGN:
            try:
                _transform(target, release, reverse=reverse)
            except PatchingError as e:
                lines.append(f"  first difference: {e}")
            break
    lines.append(
        "Next: reinstall the pristine files with pip install --force-reinstall --no-deps "
        f"livekit-agents=={target.version}, then apply again."
    )
    return "\n".join(lines)
