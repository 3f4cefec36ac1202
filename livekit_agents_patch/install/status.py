"""What ``status`` reports about one install: each file's state, the verdict and the next step.

Returns data only; the CLI prints it as text or JSON. The verdict's exit code is one of
``Exit``: patched 0 (also when installed from a patched wheel, see ``wheel``), pristine 6,
unsupported 4, foreign edit or missing 5, interrupted 8.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..exits import Exit
from . import judging, unlisted, writer
from .index import TARGETS, load
from .judging import FileReport, State
from .target import PatchingError, Target


@dataclass
class Status:
    code: Exit
    state: str
    """patched, pristine, unsupported, interrupted, foreign edit or missing."""
    summary: str
    next_step: str
    data: dict[str, Any]
    """Everything above and each file, as the JSON output shows it."""
    reports: list[FileReport] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    """Per-file lines and notes, in the order a reader wants them."""


def status(target: Target, command: Callable[[str], str]) -> Status:
    """Judge ``target``. ``command(name)`` spells how to run another command on the same target."""
    index = load()
    contents = judging.read(target)
    release = index.releases.get(target.version)
    listed = release is not None
    too_old = not listed and index.predates(target.version)
    unlisted_reason = "older than every release the patch index lists" if too_old else None
    if not listed and not too_old:
        # judged against the newest patch, as `apply --allow-unlisted` would
        try:
            release = unlisted.release(target, contents, index)
        except PatchingError as e:
            unlisted_reason = str(e).split(" Next: ")[0]
    supported = release is not None and release.patch is not None
    judged = release if supported else None
    reports = judging.judge(target, judged, contents)
    kinds = {r.state for r in reports}
    revision = judging.revision_of(reports)
    latest = judged.revision if judged is not None else None
    from_wheel = judging.from_patched_wheel(target, contents)
    files = []
    for r in reports:
        entry: dict[str, Any] = {
            "file": r.relative,
            "path": str(r.path),
            "state": r.state.value,
            "sha256": r.sha256,
            "note": r.note,
            "revisions": sorted(r.revisions),
        }
        if judged is not None:
            entry["expected"] = {
                "pristine": judged.pristine[r.relative],
                "patched": judged.patched[r.relative],
            }
        real = r.path.resolve()
        if not real.is_relative_to(target.package_dir.resolve()):
            entry["note"] = f"a link to {real}, outside the package: apply refuses to write it"
        files.append(entry)
    reason = None
    if not supported:
        code, state = Exit.UNSUPPORTED, "unsupported"
        reason = release.unsupported if release else unlisted_reason
        summary = (
            f"unsupported: livekit-agents {target.version}: {reason}"
            if listed
            else f"unsupported: {reason}"
        )
        next_step = (
            f"upgrade livekit-agents to {index.supported()[0]} or later"
            if release or too_old
            else f"run `{command('verify')}` to see whether this release needs the fix"
        )
    elif writer.interrupted(target):
        code, state = Exit.INTERRUPTED, "interrupted"
        journal = target.path(TARGETS[0]).parent / writer.JOURNAL
        summary = (
            "interrupted: a write was cut short (a run killed mid-write, or stopped or failing "
            f"while rolling one back); its journal {journal} keeps the original bytes"
        )
        next_step = f"`{command('apply')}` (or revert): it rolls the files back first"
    elif revision is not None:  # both files patched, by the same revision
        code, state = Exit.OK, "patched"
        summary = "patched: the fix for livekit/agents#5359 is in place"
        if from_wheel:
            summary = (
                f"patched (installed from a patched wheel, {target.wheel_version}): the fix for "
                "livekit/agents#5359 is in place"
            )
        if not listed:
            summary += f" (release {target.version} is not in the patch index)"
        next_step = f"`{command('verify')}` to check it"
        if revision != latest:
            summary += f" at revision {revision}; revision {latest} is newer"
            next_step = (
                f"install the patched wheel of revision {latest} "
                f"(`{command('wheel --release ' + target.version)}`)"
                if from_wheel
                else f"`{command('apply')}` upgrades it to revision {latest}"
            )
    elif kinds == {State.PRISTINE}:
        code, state = Exit.PRISTINE, "pristine"
        summary = "pristine: the fix for livekit/agents#5359 is NOT applied"
        next_step = f"`{command('apply')}`"
        if not listed:
            summary += (
                f" (release {target.version} is not in the patch index; the patch applies "
                "exactly to it)"
            )
            next_step = f"`{command('apply ' + unlisted.FLAG)}` (checks the contract first)"
    else:
        code = Exit.FOREIGN_EDIT
        state = "missing" if State.MISSING in kinds else "foreign edit"
        summary = f"{state}: expected both files pristine or both patched"
        next_step = f"put back the wheel's files: {target.reinstall}"
    notes = list(target.notes) + writer.leftover_notes(target)
    data = {
        "state": state,
        "version": target.version,
        "wheel_version": target.wheel_version,
        "from_patched_wheel": from_wheel,
        "root": str(target.root),
        "dist_root": str(target.dist_root) if target.dist_root else None,
        "files_version": target.files_version,
        "python": target.python,
        "supported": supported,
        "listed": listed,
        "unsupported_reason": reason,
        "patch": release.patch if release else None,
        "revision": revision,
        "latest_revision": latest,
        "files": files,
        "notes": notes,
        "summary": summary,
        "next": next_step,
    }
    lines = [f"note: {note}" for note in notes]
    if target.files_version and target.files_version != target.version:
        lines.append(f"note: livekit/agents/version.py says {target.files_version}")
    for r, entry in zip(reports, files, strict=True):
        line = judging.describe(r, judged, short=True)
        if entry["note"] and entry["note"] != r.note:
            line += f" ({entry['note']})"
        lines.append(line)
    return Status(code, state, summary, next_step, data, reports, lines)


def label(found: Status) -> str:
    """What the files are, in a few words: ``verify`` names its subject with this, so that a
    foreign edit is never reported as stock or patched."""
    kinds = {r.state for r in found.reports}
    if kinds == {State.PATCHED} and found.data.get("revision") is not None:
        # (both files patched by different revisions is a foreign edit, below)
        words = ["patched", f"revision {found.data['revision']}"]
        if found.data["revision"] != found.data.get("latest_revision"):
            words.append(f"revision {found.data['latest_revision']} is newer")
        if found.data.get("from_patched_wheel"):
            words.append("from a patched wheel")
        if found.data.get("listed") is False:
            words.append("release not in the patch index")
        text = ", ".join(words)
    elif kinds == {State.PRISTINE}:
        text = "pristine"
    elif State.MISSING in kinds:
        text = "files missing"
    else:
        text = "foreign edit: neither pristine nor patched"
    return text + (", a run was interrupted mid-write" if found.state == "interrupted" else "")
