"""One scanned file as the rules see it: its bytes read within a bound, decoded as Python
decodes it, split into lines as the tokenizer splits them, parsed, and its ``noqa`` comments.

Every failure here is a reason, never an exception: ``read`` returns a ``Source`` or a
``Problem`` (line, column, message), which the scan reports as ``LKP900`` and goes on.
"""

from __future__ import annotations

import ast
import io
import os
import re
import stat
import sys
import tokenize
from dataclasses import dataclass

MAX_BYTES = 10 * 1024 * 1024
"""Files larger than this (10 MiB) are not read: no hand-written tool module is that big."""
_LINE_ENDS = re.compile(r"\r\n|\r|\n")
"""The only line ends of the tokenizer and ``ast`` (``str.splitlines`` also splits at form
feed, ``\\x0b``, ``\\x1c``-``\\x1e``, ``\\x85``, ``\\u2028`` and ``\\u2029``)."""
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>\w+(?:\s*,\s*\w+)*))?", re.I)
"""Codes are whole words: ``# noqa: LKP001X`` names ``LKP001X``, which silences nothing."""
_NOT_GRAMMAR = (
    "null bytes",
    "too many nested parentheses",
    "too many statically nested blocks",
    "too many nested",
    "invalid character",
    "invalid non-printable character",
    "unterminated triple-quoted string",
    "unindent does not match",
    "unexpected eof",
    "(unicode error)",
    "missing parentheses in call to",
    "was never closed",
)
"""Syntax errors that no newer grammar accepts (limits of the parser, bad bytes, Python 2):
these get no "scan it with a newer Python" hint (decided by the error's kind, not by running
another interpreter; the tests check each kind against the 3.12 and 3.13 parsers)."""


@dataclass(frozen=True)
class Problem:
    line: int
    col: int
    message: str


@dataclass
class Source:
    text: str
    lines: list[str]
    tree: ast.Module
    noqa: dict[int, frozenset[str] | None]
    """Line -> the codes its ``# noqa: ...`` comment names, ``None`` for a bare ``# noqa``."""

    def silenced(self, line: int, code: str) -> bool:
        if line not in self.noqa:
            return False
        codes = self.noqa[line]
        return codes is None or code in codes


def read_bytes(path: str, max_bytes: int = MAX_BYTES) -> bytes | Problem:
    """The file's bytes, or why they cannot be had (not a regular file, unreadable, too big)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return Problem(1, 1, "cannot read: not a regular file")
        if st.st_size > max_bytes:
            return _too_big(st.st_size, max_bytes)
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        return Problem(1, 1, f"cannot read: {e.strerror or e}")
    if len(data) > max_bytes:  # grew since the stat
        return _too_big(len(data), max_bytes)
    return data


def _too_big(size: int, max_bytes: int) -> Problem:
    return Problem(
        1,
        1,
        f"not read: {size:,} bytes, over the {max_bytes:,}-byte bound (a generated file? "
        "exclude it, or raise the bound with --max-file-size)",
    )


def parse(path: str, data: bytes) -> Source | Problem:
    """Decode, split and parse ``data``; never raises for what the file holds."""
    try:
        text = _decode(data)
    except _Undecodable as e:
        return Problem(e.line, e.col, str(e))
    lines = _LINE_ENDS.split(text)
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as e:
        return _syntax_problem(e)
    except (ValueError, RecursionError, MemoryError) as e:
        reason = str(e) or type(e).__name__
        if isinstance(e, RecursionError | MemoryError):
            reason = f"the code is nested too deeply for the parser ({type(e).__name__})"
        return Problem(1, 1, f"cannot parse: {reason}")
    return Source(text, lines, tree, _noqa(text))


def _syntax_problem(e: SyntaxError) -> Problem:
    msg = e.msg or "invalid syntax"
    message = f"syntax error: {msg}"
    python = f"Python {sys.version_info[0]}.{sys.version_info[1]}"
    lowered = msg.lower()
    grammar = type(e) is SyntaxError and not lowered.startswith("unmatched")
    grammar = grammar and not any(k in lowered for k in _NOT_GRAMMAR)
    if grammar:
        message += (
            f" (as {python} parses it; if the code is written for a newer Python, scan it "
            "with that Python)"
        )
    return Problem(e.lineno or 1, e.offset or 1, message)


def _noqa(text: str) -> dict[int, frozenset[str] | None]:
    """``# noqa`` comments, read as comments (a ``"# noqa"`` string is none), by line."""
    out: dict[int, frozenset[str] | None] = {}
    if "noqa" not in text.lower():
        return out
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type != tokenize.COMMENT:
                continue
            match = _NOQA.search(token.string)
            if match is None:
                continue
            codes = match.group("codes")
            line = token.start[0]
            if codes is None:
                out[line] = None
            elif out.get(line, frozenset()) is not None:
                named = frozenset(c.strip().upper() for c in codes.split(","))
                out[line] = out.get(line, frozenset()) | named  # type: ignore[operator]
    except (tokenize.TokenError, SyntaxError):
        pass  # ast parsed it; the tokenizer module may still choke on an odd tail
    return out


class _Undecodable(Exception):
    def __init__(self, message: str, line: int = 1, col: int = 1) -> None:
        super().__init__(message)
        self.line, self.col = line, col


def _decode(data: bytes) -> str:
    """The source text, by its PEP 263 declaration or BOM, else UTF-8 (as Python reads it)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as e:  # a bad declaration, or the first two lines are not UTF-8
        cookie_error: str | None = str(e)
        encoding = "utf-8"
    except LookupError as e:
        raise _Undecodable(f"cannot decode: {e}") from None
    else:
        cookie_error = None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        declared = "" if encoding.startswith("utf-8") else f" (as declared, {encoding})"
        raise _Undecodable(
            f"cannot decode{declared}: byte 0x{data[e.start]:02x} is not "
            f"{e.encoding.upper().replace('-SIG', '')} ({e.reason}); save the file as UTF-8 or "
            "declare its encoding (PEP 263)",
            line,
            col,
        ) from None
    except LookupError as e:
        raise _Undecodable(f"cannot decode: {e}") from None
    if cookie_error is not None:
        raise _Undecodable(f"cannot decode: {cookie_error}")
    return text[1:] if text.startswith("\ufeff") else text


_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")


def imported_words(data: bytes) -> frozenset[bytes]:
    """The words of the file's import statements (``from a.b import c as d`` -> a, b, c, d):
    a file can call a helper of another file only if it imports the helper or its module, so
    these pick the files the link pass parses. Cheap: ``bytes.find``, no decoding, no parse."""
    spans: list[bytes] = []
    pos = data.find(b"import")
    while pos != -1:
        start = data.rfind(b"\n", 0, pos) + 1
        end = data.find(b"\n", pos)
        end = len(data) if end == -1 else end
        if b"(" in data[pos:end] and b")" not in data[pos:end]:
            close = data.find(b")", pos)
            end = len(data) if close == -1 else close
        spans.append(data[start:end])
        pos = data.find(b"import", end)
    return frozenset(_WORD.findall(b" ".join(spans)))
