"""What the two target files are: pristine, patched (by which revision), a foreign edit, missing.

Judged by sha256 against the index (or, for a release it does not support, the wheel's
``RECORD``); nothing here decides what to do or writes. ``patching`` plans from these reports,
``status`` shows them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..exits import Exit
from . import ownfiles
from .index import TARGETS, Index, Release, load, sha256
from .target import PatchingError, Target


class State(enum.Enum):
    PRISTINE = "pristine"
    PATCHED = "patched"
    FOREIGN = "foreign edit"
    MISSING = "missing"


@dataclass(frozen=True)
class FileReport:
    relative: str
    path: Path
    state: State
    sha256: str | None
    note: str | None = None
    """What a foreign file is: the file of another release, or nothing the index knows."""
    revisions: frozenset[int] = frozenset()
    """A patched file: the revisions of the patch whose result it is (several when equal)."""


def revision_of(reports: list[FileReport]) -> int | None:
    """The revision both files are patched by (the newest they share), or ``None``: not all
    patched, or patched by revisions that differ."""
    if not reports or any(r.state is not State.PATCHED for r in reports):
        return None
    common = frozenset.intersection(*(r.revisions for r in reports))
    return max(common) if common else None


def read(target: Target) -> dict[str, bytes | None]:
    """The bytes of both targets as they are on disk (``None``: missing, or no regular file:
    a FIFO or a device there is never opened for reading, a file is read up to a bound)."""
    out: dict[str, bytes | None] = {}
    for relative in TARGETS:
        path = target.path(relative)
        try:
            out[relative] = ownfiles.read_regular(path.resolve()) if path.is_file() else None
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
    found = []
    if pristine:
        found.append(f"the pristine file of livekit-agents {_versions(pristine)}")
    latest = max((n for r in releases for n in r.revisions), default=1)
    for n in sorted({n for r in releases for n in r.revisions}, reverse=True):
        patched = [r.version for r in releases if digest in r.revisions.get(n, {}).values()]
        if patched:
            which = "" if n == latest else f" (revision {n})"
            found.append(f"the patched file{which} of livekit-agents {_versions(patched)}")
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
        revisions = release.revisions_of(relative, digest) if release else frozenset()
        if digest == pristine:
            reports.append(FileReport(relative, path, State.PRISTINE, digest))
        elif revisions:
            reports.append(FileReport(relative, path, State.PATCHED, digest, None, revisions))
        else:
            note = identify(digest)
            if note is None and digest == target.record.get(relative):
                note = (
                    "the wheel's RECORD lists it, but the patch index does not (a rebuilt wheel?)"
                )
            reports.append(FileReport(relative, path, State.FOREIGN, digest, note))
    return reports


def describe(report: FileReport, release: Release | None, *, short: bool = False) -> str:
    """One line: the file, its state, and for a foreign edit what was expected and found."""
    line = f"{report.relative if short else report.path}: {report.state.value}"
    if report.state is State.PATCHED and release is not None:
        newest = max(report.revisions)
        line += (
            f" (revision {newest})"
            if newest == release.revision
            else (f" (revision {newest}; revision {release.revision} is newer)")
        )
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


def from_patched_wheel(target: Target, contents: Mapping[str, bytes | None]) -> bool:
    """Whether the files are a patched wheel's own (see ``wheel``): the distribution's version
    carries the wheel's local label and its RECORD lists these very bytes."""
    return target.wheel_version is not None and all(
        data is not None and target.record.get(relative) == sha256(data)
        for relative, data in ((rel, contents[rel]) for rel in TARGETS)
    )
