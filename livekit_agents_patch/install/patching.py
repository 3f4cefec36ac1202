"""Apply and revert the patch on an installed livekit-agents: decided first, all-or-nothing.

Every hunk of both files is placed in memory and the result is checked against the index's
hashes before any byte is written; ``writer`` then replaces both files or neither. No git and no
GNU patch: ``applier`` places the hunks in memory.

Revisions: an install patched by an older revision of the patch (``patches/revisions/``) counts
as patched by that revision. ``apply`` upgrades it in memory (older revision reversed to the
pristine bytes, checked, then the current revision applied, checked) and writes once; ``revert``
reverses whichever revision is there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..exits import Exit
from . import applier, lock, unlisted, writable, writer
from .index import STRIP, TARGETS, Index, Release, load, sha256
from .judging import FileReport, State, describe, from_patched_wheel, judge, read, revision_of
from .target import PatchingError, Target


def release_for(
    target: Target,
    index: Index | None = None,
    *,
    contents: Mapping[str, bytes | None] | None = None,
    allow_unlisted: bool = False,
) -> Release:
    """The index entry for the target's version; refuse unsupported versions, and versions the
    index does not list unless ``allow_unlisted`` (then the entry is made from ``contents``)."""
    index = index or load()
    release = index.releases.get(target.version)
    if release is None and index.predates(target.version):
        raise PatchingError(
            Exit.UNSUPPORTED,
            f"livekit-agents {target.version} is older than every release the patch index "
            f"lists, and not supported. Next: upgrade livekit-agents to {index.supported()[0]} "
            "or later.",
        )
    if release is None:
        if not allow_unlisted or contents is None:
            raise unlisted.refusal(target, index)
        return unlisted.release(target, contents, index)
    if release.patch is None:
        raise PatchingError(
            Exit.UNSUPPORTED,
            f"livekit-agents {target.version} is not supported: {release.unsupported}. "
            f"Next: upgrade livekit-agents to {index.supported()[0]} or later.",
        )
    return release


def _patch_files(release: Release, revision: int) -> dict[str, Any]:
    """The per-file diffs of the patch's ``revision``, by target path."""
    name = release.patch_file(revision)
    try:
        patch_set = applier.parse(load().patch_text(name))
        files = {applier.target_path(f, STRIP): f for f in patch_set}
    except (OSError, applier.PatchError) as e:
        raise PatchingError(
            Exit.USAGE, f"cannot read the patch {name}: {e}. Next: reinstall this tool."
        ) from e
    if sorted(files) != sorted(TARGETS):
        raise PatchingError(
            Exit.USAGE,
            f"the patch {name} changes {sorted(files)}, expected {sorted(TARGETS)}. "
            "Next: reinstall this tool.",
        )
    return files


def _transform_file(
    target: Target,
    release: Release,
    relative: str,
    current: bytes | None,
    *,
    reverse: bool,
    revision: int | None = None,
) -> bytes:
    """The new bytes of one file, every hunk of ``revision`` (default: the current one) placed
    and the hash checked; nothing written."""
    revision = release.revision if revision is None else revision
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
        new, _ = applier.apply_file(
            text, _patch_files(release, revision)[relative], reverse=reverse
        )
    except applier.PatchError as e:
        raise PatchingError(Exit.FOREIGN_EDIT, f"{path}: {e}") from e
    data = new.encode("utf-8")
    expected = (release.pristine if reverse else release.revisions[revision])[relative]
    if sha256(data) != expected:
        raise PatchingError(
            Exit.FOREIGN_EDIT,
            f"{path}: every hunk can {'reverse' if reverse else 'apply'}, but the result's "
            f"sha256 is {sha256(data)[:12]}…, expected {expected[:12]}… for {target.version}: "
            f"the file differs from the {'patched' if reverse else 'pristine'} one outside "
            "the patch's hunks",
        )
    return data


def transform(
    target: Target,
    release: Release,
    contents: Mapping[str, bytes | None],
    *,
    reverse: bool,
    revision: int | None = None,
) -> dict[str, bytes]:
    """The new bytes of both files, in the patch's order; nothing written."""
    revision = release.revision if revision is None else revision
    return {
        relative: _transform_file(
            target, release, relative, contents[relative], reverse=reverse, revision=revision
        )
        for relative in _patch_files(release, revision)
    }


def upgrade(
    target: Target, release: Release, contents: Mapping[str, bytes | None], revision: int
) -> dict[str, bytes]:
    """The current revision's bytes from files patched by an older ``revision``, in memory:
    reversed to pristine (hash checked), then patched again (hash checked)."""
    pristine = transform(target, release, contents, reverse=True, revision=revision)
    return transform(target, release, pristine, reverse=False)


# --- the commands ----------------------------------------------------------------------------


def _preflight(
    target: Target, contents: Mapping[str, bytes | None], allow_unlisted: bool
) -> tuple[Release, list[FileReport]]:
    release = release_for(target, contents=contents, allow_unlisted=allow_unlisted)
    for relative in TARGETS:
        writable.real_path(target, relative)
    reports = judge(target, release, contents)
    for report in reports:
        if report.state is State.MISSING:
            raise PatchingError(
                Exit.FOREIGN_EDIT,
                f"expected {report.path} (livekit-agents {target.version}), found no file. "
                f"Next: {target.reinstall}",
            )
    return release, reports


def plan(
    target: Target,
    contents: Mapping[str, bytes | None],
    *,
    reverse: bool,
    allow_unlisted: bool = False,
) -> tuple[str, dict[str, bytes] | None]:
    """What apply (or revert) would do from ``contents``: ``(result, new bytes or None)``.

    Nothing is written: ``apply`` and revert on disk and ``wheel`` in an archive take their
    decisions and bytes from here, refusals included. For a release the index does not list,
    the contract is checked on the new bytes first. Files patched by an older revision are
    upgraded (``apply``) or reverted from that revision (``revert``)."""
    release, reports = _preflight(target, contents, allow_unlisted)
    revision = revision_of(reports)
    latest = release.revision
    pristine = all(r.state is State.PRISTINE for r in reports)
    wheel = from_patched_wheel(target, contents)
    if reverse and pristine:
        return "already pristine", None
    if not reverse and revision == latest:
        if wheel:
            return "already applied (installed from a patched wheel)", None
        return "already applied", None
    if wheel and revision is not None:
        what = "reverted" if reverse else f"upgraded to revision {latest}"
        raise PatchingError(
            Exit.FOREIGN_EDIT,
            f"livekit-agents {target.wheel_version} was installed from a patched wheel: the "
            "patched files are the package's own, and its RECORD lists them, so they are not "
            f"{what} in place. Next: reinstall upstream's wheel with {target.reinstall}"
            + ("" if reverse else ", or install the patched wheel of the current revision"),
        )
    if pristine:
        new = transform(target, release, contents, reverse=False)
        if target.version not in load().releases:
            unlisted.contract(target, new)
            return (
                f"applied to unlisted release {target.version} (hunks exact, contract holds)",
                new,
            )
        return "applied", new
    if revision is None:
        raise PatchingError(
            Exit.FOREIGN_EDIT, _mixed(target, release, reports, contents, reverse=reverse)
        )
    if reverse:
        result = "reverted" if revision == latest else f"reverted (from revision {revision})"
        return result, transform(target, release, contents, reverse=True, revision=revision)
    return (
        f"upgraded from revision {revision} to revision {latest}",
        upgrade(target, release, contents, revision),
    )


def _run(
    target: Target, *, reverse: bool, allow_unlisted: bool = False, lock_timeout: float
) -> str:
    """Decide from the bytes on disk (as an interrupted run's rollback would leave them), then
    write only if something must change: an install already in the wanted state is left alone,
    so a read-only one is fine."""
    with lock.locked(target, lock_timeout):
        original = writer.read_journal(target)
        contents = {**read(target), **(original or {})}
        # revert needs no opt-in: the pristine bytes it restores are the ones RECORD lists
        allow = allow_unlisted or reverse
        result, new = plan(target, contents, reverse=reverse, allow_unlisted=allow)
        if new is None and original is None:
            notes = writer.clean_leftovers(target)
            return result + "".join(f" ({note})" for note in notes)
        writable.check_writable(target)
        # first: a link planted at a temporary name is unlinked before anything is written
        stuck = writer.clean_leftovers(target)
        if stuck:
            raise _stuck(stuck)
        recovered = writer.recover(target)
        if new is not None:
            # the one mixed state a hard kill can leave must still run: the patched events.py
            # calls a method only the patched speech_handle.py has, so that file is patched
            # first and reverted last (stock behaviour, never an AttributeError)
            order = tuple(reversed(TARGETS)) if reverse else TARGETS
            writer.write_both(
                target, "revert" if reverse else "apply", {rel: new[rel] for rel in order}
            )
        return result + (" (after rolling back an interrupted run)" if recovered else "")


def _stuck(notes: list[str]) -> PatchingError:
    return PatchingError(
        Exit.IO_ERROR,
        f"expected to remove what sits at this tool's own names first, but {notes[0]}; "
        "nothing was changed. Next: remove it, then run the same command again.",
    )


def apply(
    target: Target, *, allow_unlisted: bool = False, lock_timeout: float = lock.TIMEOUT
) -> str:
    """Patch both files; idempotent. Return what was done."""
    return _run(target, reverse=False, allow_unlisted=allow_unlisted, lock_timeout=lock_timeout)


def revert(target: Target, *, lock_timeout: float = lock.TIMEOUT) -> str:
    """Restore the pristine bytes; idempotent. Return what was done."""
    return _run(target, reverse=True, lock_timeout=lock_timeout)


def check(
    target: Target, *, allow_unlisted: bool = False, lock_timeout: float = lock.TIMEOUT
) -> str:
    """What ``apply`` would do, without writing anything (under the lock: never judged from a
    write half done by another run)."""
    with lock.locked(target, lock_timeout):
        return _check(target, allow_unlisted=allow_unlisted)


def _check(target: Target, *, allow_unlisted: bool) -> str:
    original = writer.read_journal(target)
    contents = {**read(target), **(original or {})}
    result, new = plan(target, contents, reverse=False, allow_unlisted=allow_unlisted)
    if new is not None or original is not None:
        writable.check_writable(target)
        stuck = writer.unremovable_leftovers(target)
        if stuck:
            raise _stuck(stuck)
    if new is not None:
        release = release_for(target, contents=contents, allow_unlisted=allow_unlisted)
        if result.startswith("upgraded"):
            old = revision_of(judge(target, release, contents))
            result = (
                f"would upgrade revision {old} to revision {release.revision} "
                f"({release.patch}): one write of both files"
            )
        else:
            result = f"would apply {release.patch}"
        if target.version not in load().releases:
            result += f" to unlisted release {target.version} (hunks exact, contract holds)"
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
