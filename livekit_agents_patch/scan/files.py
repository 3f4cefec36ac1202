"""``scan``: before deploying the fix, find the tools whose behaviour changes and where it is
swallowed, statically (standard library ``ast``; the scanned code is never imported or run).

``scan(paths)`` walks files and directories (``*.py``, skipping virtualenvs, ``site-packages``,
``node_modules``, ``__pycache__`` and hidden directories, never following a symlink out of the
tree), applies ``rules`` to each file, then links the open findings across the tree
(``modules``: decorators and callers in other files), and returns the findings as data,
sorted by path, line and column. ``# noqa`` and ``# noqa: CODE[, CODE]`` comments on a
finding's line silence it, as in ruff (read as comments, codes exact).

Only a file that mentions ``wait_for_playout`` can hold a finding, so only such a file is decoded
and parsed in the first pass; the link pass reads the files an open finding asks about. A file
or directory that cannot be read, a file over the size bound, or a file that mentions the wait
but cannot be decoded or parsed is one ``LKP900`` error finding, and the scan goes on.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from ..exits import Exit
from . import source
from .messages import SEVERITY, UNREADABLE, WAIT, Hit
from .modules import Program, module_name
from .rules import Open, analyse

_WAIT_BYTES = WAIT.encode("ascii")
_CONTEXT_BYTES = b"RunContext"
_PER_WORKER = 1000
"""Files per worker process worth its start: a tree of 2,000 files or more uses two cores."""
_CHUNK = 250
SKIPPED_DIRS = frozenset({"node_modules", "site-packages", "__pycache__", "__pypackages__"})


class ScanError(Exception):
    """A usage error: a path to scan does not exist."""


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    col: int
    """1-based, in characters (as ruff prints it)."""
    code: str
    severity: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ScanResult:
    files: int
    findings: list[Finding]

    @property
    def exit(self) -> Exit:
        """1 when there is a warning or an error finding (a CI gate), else 0."""
        bad = any(f.severity in ("warning", "error") for f in self.findings)
        return Exit.VIOLATION if bad else Exit.OK

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)


@dataclass(frozen=True)
class _Pending:
    """An open wait of one file, with what converting its hits to findings needs."""

    path: str
    open: Open
    cols: tuple[int, ...]
    """Each hit's column in characters."""
    noqa: tuple[frozenset[str] | None, ...]
    """The codes ``# noqa`` names on each hit's line (``None``: all; empty: no comment)."""


def scan(paths: list[str], max_bytes: int = source.MAX_BYTES) -> ScanResult:
    """Scan ``paths`` (files or directories). Raises ``ScanError`` if one does not exist."""
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:
        raise ScanError(
            f"no such file or directory: {', '.join(missing)}. Next: pass the directory of your "
            "agent's code (or its .py files)"
        )
    modules: dict[str, str] = {}  # path -> dotted module name
    real: set[str] = set()  # one file reached twice (``a/x.py``, ``./a/x.py``, a link) once
    errors: list[Finding] = []
    for root in paths:
        for path in iter_files(root, errors):
            # one root without links cannot reach a file twice: skip the costly realpath
            key = os.path.realpath(path) if len(paths) > 1 or os.path.islink(path) else path
            if key not in real:
                real.add(key)
                relative = os.path.relpath(path, root) if path != root else os.path.basename(path)
                modules[path] = module_name(relative)
    items = list(modules.items())
    done = _in_workers(items, max_bytes) if len(items) >= 2 * _PER_WORKER else None
    findings, pending, imports = done if done is not None else _scan_files(items, max_bytes)
    findings += errors + _link(modules, pending, imports, max_bytes)
    findings.sort(key=lambda f: (f.path, f.line, f.col, f.code))
    return ScanResult(files=len(items), findings=findings)


def _link(
    modules: dict[str, str],
    pending: list[_Pending],
    imports: dict[str, frozenset[bytes]],
    max_bytes: int,
) -> list[Finding]:
    if not pending:
        return []

    def read(path: str) -> bytes | None:
        data = source.read_bytes(path, max_bytes)
        return data if isinstance(data, bytes) else None

    program = Program(modules, read)
    wanted = {
        word
        for p in pending
        if p.open.function is not None
        for word in program.helper_words(p.path, p.open.function)
    }
    program.index_importers(imports, wanted)
    out = []
    for p in pending:
        try:
            linked = program.link(p.path, p.open)
        except RecursionError:  # another file nested too deeply: this file's own verdict
            linked = [] if p.open.parameter is not None else list(p.open.hits)
        for hit, col, noqa in zip(linked, p.cols, p.noqa, strict=False):
            if noqa is None or hit.code in noqa:
                continue
            out.append(Finding(p.path, hit.line, col, hit.code, SEVERITY[hit.code], hit.message))
    return out


_Pass = tuple[list[Finding], list[_Pending], dict[str, frozenset[bytes]]]
"""The first pass: findings, open waits, and each file's import words."""


def _in_workers(items: list[tuple[str, str]], max_bytes: int) -> _Pass | None:
    """The results from one worker process per core, or ``None`` where processes cannot be
    started (one core, a sandbox without process semaphores): then the caller scans in-process."""
    workers = min(os.cpu_count() or 1, len(items) // _PER_WORKER)
    if workers < 2:
        return None
    chunks = [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]
    findings: list[Finding] = []
    pending: list[_Pending] = []
    imports: dict[str, frozenset[bytes]] = {}
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for part in pool.map(partial(_scan_files, max_bytes=max_bytes), chunks):
                findings += part[0]
                pending += part[1]
                imports.update(part[2])
    except (OSError, BrokenProcessPool):
        return None
    return findings, pending, imports


def iter_files(path: str, errors: list[Finding] | None = None) -> Iterator[str]:
    """``path`` itself if it is not a directory, else the ``*.py`` files under it; a directory
    that cannot be listed is an ``LKP900`` finding in ``errors``."""
    if not os.path.isdir(path):
        yield path
        return
    root = os.path.realpath(path)

    def unreadable(e: OSError) -> None:
        if errors is not None:
            where = e.filename if isinstance(e.filename, str) else path
            errors.append(_error(where, 1, 1, f"cannot read directory: {e.strerror or e}"))

    for dirpath, dirnames, filenames in os.walk(path, onerror=unreadable):  # no symlinked dirs
        dirnames[:] = sorted(d for d in dirnames if not _skipped(dirpath, d))
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            full = os.path.join(dirpath, name)
            if os.path.islink(full) and not _inside(os.path.realpath(full), root):
                continue  # a link out of the tree
            yield full


def _skipped(dirpath: str, name: str) -> bool:
    if name.startswith(".") or name in SKIPPED_DIRS:
        return True
    return os.path.exists(os.path.join(dirpath, name, "pyvenv.cfg"))  # a virtualenv


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _scan_files(items: list[tuple[str, str]], max_bytes: int = source.MAX_BYTES) -> _Pass:
    """The findings of the files and their open waits, with the cyclic garbage collector off:
    the ASTs hold no cycles and a collection per few thousand nodes costs ~15% of the parse."""
    enabled = gc.isenabled()
    gc.disable()
    findings: list[Finding] = []
    pending: list[_Pending] = []
    imports: dict[str, frozenset[bytes]] = {}
    try:
        for path, module in items:
            found, opens, words = scan_file(path, module, max_bytes)
            findings += found
            pending += opens
            if words:
                imports[path] = words
    finally:
        if enabled:
            gc.enable()
    return findings, pending, imports


def scan_file(
    path: str, module: str = "", max_bytes: int = source.MAX_BYTES
) -> tuple[list[Finding], list[_Pending], frozenset[bytes]]:
    """The findings of one file, its open waits and its import words; never raises for what
    the file holds."""
    data = source.read_bytes(path, max_bytes)
    if isinstance(data, source.Problem):
        return [_error(path, data.line, data.col, data.message)], [], frozenset()
    # a caller that can pass a helper a RunContext is a tool or has one: it names RunContext
    words = source.imported_words(data) if _CONTEXT_BYTES in data else frozenset()
    if _WAIT_BYTES not in data:
        return [], [], words  # nothing here can be a finding
    parsed = source.parse(path, data)
    if isinstance(parsed, source.Problem):
        return [_error(path, parsed.line, parsed.col, parsed.message)], [], words
    try:
        analysis = analyse(parsed.tree, parsed.lines, module)
    except RecursionError:
        return [_error(path, 1, 1, "cannot analyse: the code is nested too deeply")], [], words
    findings = [_finding(path, parsed, hit) for hit in analysis.hits]
    pending = []
    for open_ in analysis.opens:
        cols = tuple(_column(parsed, hit) for hit in open_.hits)
        noqa = tuple(parsed.noqa.get(hit.line, frozenset()) for hit in open_.hits)
        pending.append(_Pending(path, open_, cols, noqa))
    return [f for f in findings if not parsed.silenced(f.line, f.code)], pending, words


def _column(parsed: source.Source, hit: Hit) -> int:
    line = parsed.lines[hit.line - 1] if hit.line <= len(parsed.lines) else ""
    return len(line.encode("utf-8")[: hit.col_offset].decode("utf-8", "replace")) + 1


def _finding(path: str, parsed: source.Source, hit: Hit) -> Finding:
    return Finding(path, hit.line, _column(parsed, hit), hit.code, SEVERITY[hit.code], hit.message)


def _error(path: str, line: int, col: int, message: str) -> Finding:
    return Finding(path, line, col, UNREADABLE, SEVERITY[UNREADABLE], message)
