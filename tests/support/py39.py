"""Lint: the code that runs inside the target interpreter must run on Python 3.9.

The files are those pyproject.toml gives ruff as ``per-file-target-version = "py39"`` (ruff then
checks their syntax for 3.9). This adds what a syntax check cannot see and mypy (3.10+ only)
cannot either: standard-library names, modules and keyword arguments newer than 3.9 (``vermin``),
and ``X | Y`` unions of types evaluated at run time (annotations may use them under
``from __future__ import annotations``, which leaves them unevaluated).

    python tests/support/py39.py [FILE...]     # exit 1 with one line per finding
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[2]
_TYPES = {"int", "str", "float", "bytes", "bool", "list", "dict", "set", "tuple", "type", "object"}


def target_side() -> list[Path]:
    """The files pyproject.toml marks ``py39`` for ruff."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["ruff"]["per-file-target-version"]
    files = {p for pattern, v in patterns.items() if v == "py39" for p in REPO.glob(pattern)}
    return sorted(files)


def _type_like(node: ast.expr) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _type_like(node.left) and _type_like(node.right)
    if isinstance(node, ast.Constant):
        return node.value is None
    if isinstance(node, ast.Subscript):
        return _type_like(node.value)
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return bool(name) and (name[0].isupper() or name in _TYPES)


def _annotations(tree: ast.AST) -> set[int]:
    """ids of every node inside an annotation (never evaluated under the __future__ import)."""
    roots: list[ast.expr | None] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign | ast.arg):
            roots.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            roots.append(node.returns)
    return {id(n) for root in roots if root is not None for n in ast.walk(root)}


def runtime_unions(source: str, name: str) -> Iterator[str]:
    tree = ast.parse(source, name)
    future = any(
        isinstance(n, ast.ImportFrom)
        and n.module == "__future__"
        and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )
    skip = _annotations(tree) if future else set()  # else: evaluated, so checked
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.BinOp):
            continue
        if isinstance(node.op, ast.BitOr) and _type_like(node):
            skip.update(id(n) for n in ast.walk(node))  # report the whole union once
            yield (
                f"{name}:{node.lineno}: `{ast.unparse(node)}` is evaluated at run time and needs "
                "Python 3.10; use typing.Union/Optional here"
            )


def vermin(files: list[Path]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())"]
        + ["-t=3.9-", "--no-tips", "--violations"]
        + ["--format", "parsable", "--no-parse-comments", *map(str, files)],
        capture_output=True,
        text=True,
    )
    # parsable: "file:line:col:py2:py3:feature"; the last line sums up, without a file
    return [
        f"{line.split(':')[0]}:{line.split(':')[1]}: {line.split(':', 5)[5]} needs Python "
        f"{line.split(':')[4]}"
        for line in done.stdout.splitlines()
        if line and not line.startswith(":") and line.split(":", 5)[5]
    ]


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or target_side()
    if not files:
        print("py39: no files marked py39 in pyproject.toml", file=sys.stderr)
        return 1
    findings = vermin(files)
    for path in files:
        findings += runtime_unions(path.read_text(encoding="utf-8"), str(path))
    for finding in findings:
        print(finding)
    print(f"py39: {len(files)} files, {len(findings)} findings", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
