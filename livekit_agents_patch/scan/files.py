"""``scan``: before deploying the fix, find the tools whose behaviour changes and where it is
swallowed, statically (standard library ``ast``; the scanned code is never imported or run).

``scan(paths)`` walks files and directories (``*.py``, skipping virtualenvs, ``site-packages``,
``node_modules``, ``__pycache__`` and hidden directories, never following a symlink out of the
tree), applies ``rules`` to each file and returns the findings as data, sorted by path,
line and column. ``# noqa`` and ``# noqa: CODE[, CODE]`` on a finding's line silence it, as in
ruff.

Only a file that mentions ``wait_for_playout`` can hold a finding, so only such a file is decoded
and parsed; any other is read, searched and done. A file that cannot be read, or that mentions
the wait but is not UTF-8 (without a coding declaration) or does not parse, is one ``LKP900``
error finding, and the scan goes on. So a syntax error in a file without a wait (say, Python
3.12 syntax scanned by 3.11) neither fails the gate nor slows the scan: that is a linter's job.
"""

from __future__ import annotations

import ast
import gc
import io
import os
import re
import stat
import sys
import tokenize
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from typing import Any

from ..exits import Exit
from .messages import SEVERITY, UNREADABLE, WAIT
from .rules import analyse

_WAIT_BYTES = WAIT.encode("ascii")
_PER_WORKER = 1000
"""Files per worker process worth its start: a tree of 2,000 files or more uses two cores."""
_CHUNK = 250
SKIPPED_DIRS = frozenset({"node_modules", "site-packages", "__pycache__", "__pypackages__"})
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.I)


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


def scan(paths: list[str]) -> ScanResult:
    """Scan ``paths`` (files or directories). Raises ``ScanError`` if one does not exist."""
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:
        raise ScanError(
            f"no such file or directory: {', '.join(missing)}. Next: pass the directory of your "
            "agent's code (or its .py files)"
        )
    real: dict[str, str] = {}  # one file reached twice (``a/x.py``, ``./a/x.py``, a link) once
    for path in (f for p in paths for f in iter_files(p)):
        real.setdefault(os.path.realpath(path), path)
    files = list(real.values())
    findings = _in_workers(files) if len(files) >= 2 * _PER_WORKER else None
    if findings is None:
        findings = _scan_files(files)
    findings.sort(key=lambda f: (f.path, f.line, f.col, f.code))
    return ScanResult(files=len(files), findings=findings)


def _in_workers(files: list[str]) -> list[Finding] | None:
    """The findings from one worker process per core, or ``None`` where processes cannot be
    started (one core, a sandbox without process semaphores): then the caller scans in-process."""
    workers = min(os.cpu_count() or 1, len(files) // _PER_WORKER)
    if workers < 2:
        return None
    chunks = [files[i : i + _CHUNK] for i in range(0, len(files), _CHUNK)]
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return [f for part in pool.map(_scan_files, chunks) for f in part]
    except (OSError, BrokenProcessPool):
        return None


def iter_files(path: str) -> Iterator[str]:
    """``path`` itself if it is not a directory, else the ``*.py`` files under it."""
    if not os.path.isdir(path):
        yield path
        return
    root = os.path.realpath(path)
    for dirpath, dirnames, filenames in os.walk(path):  # never descends into a symlinked dir
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


def _scan_files(files: list[str]) -> list[Finding]:
    """The findings of ``files``, with the cyclic garbage collector off: the ASTs hold no cycles
    and a collection per few thousand nodes costs ~15% of the parse."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return [finding for path in files for finding in scan_file(path)]
    finally:
        if enabled:
            gc.enable()


def scan_file(path: str) -> list[Finding]:
    """The findings of one file; never raises for what the file holds."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return [_error(path, 1, 1, "cannot read: not a regular file")]
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return [_error(path, 1, 1, f"cannot read: {e.strerror or e}")]
    if _WAIT_BYTES not in data:
        return []  # nothing here can be a finding
    try:
        text = _decode(data)
    except _Undecodable as e:
        return [_error(path, e.line, e.col, str(e))]
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as e:
        python = f"Python {sys.version_info[0]}.{sys.version_info[1]}"
        message = (
            f"syntax error: {e.msg} (as {python} parses it; code written for a newer Python "
            "must be scanned with that Python)"
        )
        return [_error(path, e.lineno or 1, e.offset or 1, message)]
    except (ValueError, RecursionError, MemoryError) as e:
        return [_error(path, 1, 1, f"cannot parse: {e or type(e).__name__}")]
    lines = text.splitlines()
    try:
        hits = analyse(tree, lines)
    except RecursionError:
        return [_error(path, 1, 1, "cannot analyse: the code is nested too deeply")]
    findings = []
    for hit in hits:
        source = lines[hit.line - 1] if hit.line <= len(lines) else ""
        if _silenced(source, hit.code):
            continue
        col = len(source.encode("utf-8")[: hit.col_offset].decode("utf-8", "replace")) + 1
        findings.append(Finding(path, hit.line, col, hit.code, SEVERITY[hit.code], hit.message))
    return findings


class _Undecodable(Exception):
    def __init__(self, message: str, line: int = 1, col: int = 1) -> None:
        super().__init__(message)
        self.line, self.col = line, col


def _decode(data: bytes) -> str:
    """The source text, by its PEP 263 declaration or BOM, else UTF-8 (as Python reads it)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except SyntaxError as e:  # a bad declaration, or the first two lines are not UTF-8
        cookie_error = str(e)
        encoding = "utf-8"
    except LookupError as e:
        raise _Undecodable(f"cannot decode: {e}") from None
    try:
        data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise _Undecodable(
            f"not {e.encoding.upper().replace('-SIG', '')}: byte 0x{data[e.start]:02x} cannot "
            f"be decoded ({e.reason}); save the file as UTF-8 or declare its encoding (PEP 263)",
            line,
            col,
        ) from None
    raise _Undecodable(f"cannot decode: {cookie_error}")


def _silenced(line: str, code: str) -> bool:
    for match in _NOQA.finditer(line):
        codes = match.group("codes")
        if codes is None or code in re.split(r"[\s,]+", codes.upper()):
            return True
    return False


def _error(path: str, line: int, col: int, message: str) -> Finding:
    return Finding(path, line, col, UNREADABLE, SEVERITY[UNREADABLE], message)
