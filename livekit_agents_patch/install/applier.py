"""Exact patch application in memory: context must match to the byte, only its position may move.

``unidiff`` parses the patch; this module only places hunks. No maintained Python library does
that part exactly: patch-ng and whatthepatch fail on moved lines, and GNU patch's default fuzz
applies a hunk whose context has changed. Nothing here touches the disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from unidiff.constants import LINE_TYPE_ADDED, LINE_TYPE_CONTEXT, LINE_TYPE_REMOVED
from unidiff.errors import UnidiffParseError
from unidiff.patch import Hunk, PatchedFile, PatchSet


class PatchError(Exception):
    """The patch cannot be applied as it is; the message says what was expected and found."""


@dataclass(frozen=True)
class Placement:
    hunk: str
    offset: int
    """Lines between where the patch says the hunk is and where it was found."""


def parse(text: str) -> PatchSet:
    """Parse a patch, tolerating CRLF line ends that a checkout may have added to it."""
    try:
        return PatchSet(text.replace("\r\n", "\n"))
    except UnidiffParseError as e:
        raise PatchError(f"the patch file is not a valid unified diff: {e}") from e


def target_path(patched_file: PatchedFile, strip: int) -> str:
    """The file's path with the leading ``a/`` and ``strip`` more components removed."""
    parts = patched_file.source_file.split("/")[1:]
    if len(parts) <= strip:
        raise PatchError(f"cannot strip {strip} components from {patched_file.source_file}")
    return "/".join(parts[strip:])


def _lines(hunk: Hunk, kinds: tuple[str, ...]) -> list[str]:
    return [line.value for line in hunk if line.line_type in kinds]


def apply_file(
    text: str, patched_file: PatchedFile, *, reverse: bool = False
) -> tuple[str, list[Placement]]:
    """Apply (or reverse) every hunk of one file to ``text``; raise ``PatchError`` if any fails.

    Each hunk's old lines must appear exactly, at or after the end of the previous hunk; the
    occurrence nearest to the position the patch gives wins, as in ``git apply``.
    """
    if "\r\n" in text:
        raise PatchError("the target file has CRLF line ends; upstream's files use LF")
    lines = text.splitlines(keepends=True)
    removed, added = LINE_TYPE_REMOVED, LINE_TYPE_ADDED
    if reverse:
        removed, added = added, removed
    placements: list[Placement] = []
    floor = 0
    delta = 0
    for hunk in patched_file:
        old = _lines(hunk, (LINE_TYPE_CONTEXT, removed))
        new = _lines(hunk, (LINE_TYPE_CONTEXT, added))
        start = (hunk.target_start if reverse else hunk.source_start) - 1 + delta
        at = _find(lines, old, max(start, floor), floor)
        header = (
            f"@@ -{hunk.source_start},{hunk.source_length} "
            f"+{hunk.target_start},{hunk.target_length} @@"
        )
        if at is None:
            raise PatchError(_mismatch(lines, old, max(start, floor), header, reverse))
        lines[at : at + len(old)] = new
        placements.append(Placement(header, at - start))
        delta += at - start + len(new) - len(old)
        floor = at + len(new)
    return "".join(lines), placements


def _find(lines: list[str], old: list[str], start: int, floor: int) -> int | None:
    """The index nearest ``start`` (not before ``floor``) where ``old`` stands in ``lines``."""
    last = len(lines) - len(old)
    for distance in range(max(last - floor, start - floor) + 1):
        for at in (start - distance, start + distance):
            if floor <= at <= last and lines[at : at + len(old)] == old:
                return at
    return None


def _mismatch(lines: list[str], old: list[str], start: int, header: str, reverse: bool) -> str:
    """Say which hunk failed, and the first line at its expected place that differs."""
    action = "reverse" if reverse else "apply"
    for i, expected in enumerate(old):
        found = lines[start + i] if start + i < len(lines) else "<end of file>"
        if found != expected:
            return (
                f"cannot {action} hunk {header}: its context is not in the file at any position. "
                f"At line {start + i + 1}, expected {expected.rstrip()!r}, "
                f"found {found.rstrip()!r}"
            )
    return f"cannot {action} hunk {header}: the file ends before the hunk does"
