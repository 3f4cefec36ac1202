"""The patch puts upstream exactly the fix the vendored reference holds, statement for statement.

For every class or function the patch adds or changes in upstream's files: the statements it
adds are, in order, the statements of the reference's same function that upstream lacks; no
statement it removes survives in the reference; the signatures are equal. A new class is equal
as a whole. Docstrings are left out (upstream keeps its own wording); import paths are the same
relative imports in both. A change to the patch without the reference, or the reverse, fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from livekit_agents_patch.install import matrix
from livekit_agents_patch.install.index import load, version_key

REFERENCE = Path(__file__).resolve().parent.parent / "livekit_agents_patch" / "reference"
MODULES = {
    "livekit/agents/voice/speech_handle.py": REFERENCE / "voice" / "speech_handle.py",
    "livekit/agents/voice/events.py": REFERENCE / "voice" / "events.py",
}

Defs = dict[str, ast.AST]


def _strip_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    if docstring and isinstance(first.value.value, str):  # type: ignore[union-attr]
        return body[1:]
    return body


def _definitions(source: str) -> Defs:
    """Top-level classes, and every function or method by qualified name."""
    found: Defs = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            found[node.name] = node
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    setter = any(
                        isinstance(d, ast.Attribute) and d.attr == "setter"
                        for d in item.decorator_list
                    )
                    found[f"{node.name}.{item.name}{'.setter' if setter else ''}"] = item
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found[node.name] = node
    return found


def _statements(node: ast.AST) -> list[str]:
    body = _strip_docstring(node.body)  # type: ignore[attr-defined]
    return [ast.dump(_without_docstrings(stmt)) for stmt in body]


def _without_docstrings(node: ast.AST) -> ast.AST:
    for child in ast.walk(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            child.body = _strip_docstring(child.body) or [ast.Pass()]
    return node


def _signature(node: ast.AST) -> str:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        kind = type(node).__name__
        return f"{kind} {ast.dump(node.args)} -> {ast.dump(node.returns) if node.returns else ''}"
    return ""


def _models_upstream(node: ast.AST) -> bool:
    """Reference methods documented "As upstream" model upstream; they are not the fix."""
    body = getattr(node, "body", [])
    first = body[0] if body else None
    return (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and str(first.value.value).startswith("As upstream")
    )


def guard(pristine: str, patched: str, reference: str, newest: str) -> list[str]:
    """Every difference between what the patch does upstream and what the reference holds.

    ``newest`` is the newest release's pristine file, which the reference models: a reference
    statement it lacks is part of the fix.
    """
    upstream, fixed, ref = _definitions(pristine), _definitions(patched), _definitions(reference)
    modelled = _definitions(newest)
    touched = {n for n, node in fixed.items() if n not in upstream or _differ(upstream[n], node)}
    fix_names = {n for n, node in ref.items() if not _models_upstream(node)}
    problems = []
    for name in sorted(touched | (fix_names & set(fixed))):
        node, before = fixed[name], upstream.get(name)
        if isinstance(node, ast.ClassDef):
            if before is None and (name not in ref or _differ(node, ref[name])):
                problems.append(f"{name}: the class the patch adds differs from the reference")
            continue  # a changed class is judged by its changed methods
        if name not in ref:
            problems.append(f"{name}: changed by the patch, absent from the reference")
            continue
        signature_changed = before is None or _signature(node) != _signature(before)
        if signature_changed and _signature(node) != _signature(ref[name]):
            problems.append(f"{name}: signature differs from the reference")
        kept = _statements(before) if before is not None else []
        baseline = _statements(modelled[name]) if name in modelled else []
        added = [s for s in _statements(node) if s not in kept]
        fix = [s for s in _statements(ref[name]) if s not in baseline]
        if added != fix:
            problems.append(f"{name}: the patch adds {added}\n  the reference's fix is {fix}")
        removed = [s for s in kept if s not in _statements(node)]
        if any(s in _statements(ref[name]) for s in removed):
            problems.append(f"{name}: the patch removes a statement the reference keeps")
    return problems


def _differ(a: ast.AST, b: ast.AST) -> bool:
    return ast.dump(_without_docstrings(a)) != ast.dump(_without_docstrings(b))


def _files(version: str) -> dict[str, bytes]:
    return matrix.read_targets(matrix.wheel(version))


def _newest(module: str) -> str:
    return _files(load().supported()[-1])[module].decode()


def _releases() -> list[str]:
    """The oldest and newest supported releases, 1.3.12, and the first of each patch file."""
    index = load()
    supported = index.supported()
    firsts = [entry["first"] for entry in index.data["patches"].values() if entry]
    return sorted({supported[0], supported[-1], "1.3.12", *firsts}, key=version_key)


@pytest.fixture(scope="module", params=_releases())
def release(request: pytest.FixtureRequest) -> tuple[dict[str, bytes], dict[str, bytes]]:
    version: str = request.param
    files = _files(version)
    patch = load().releases[version].patch
    assert patch is not None
    return files, matrix.patch_files(files, load().patch_text(patch))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_patch_equals_reference(
    release: tuple[dict[str, bytes], dict[str, bytes]], module: str
) -> None:
    pristine, patched = release
    reference = MODULES[module].read_text(encoding="utf-8")
    found = guard(pristine[module].decode(), patched[module].decode(), reference, _newest(module))
    assert found == []


def test_guard_catches_a_reference_changed_alone() -> None:
    """Negative control: edit one statement of the reference's fix and the guard must object."""
    files = matrix.read_targets(matrix.wheel(load().supported()[-1]))
    patch = load().patch_text(load().releases[load().supported()[-1]].patch or "")
    patched = matrix.patch_files(files, patch)
    module = "livekit/agents/voice/speech_handle.py"
    reference = MODULES[module].read_text(encoding="utf-8")
    drifted = reference.replace(
        "if not generation.done() or generation in self._interrupted_generations:",
        "if not generation.done():",
    )
    assert drifted != reference
    problems = guard(files[module].decode(), patched[module].decode(), drifted, _newest(module))
    assert any(p.startswith("SpeechHandle._wait_for_step_playout") for p in problems), problems


def test_guard_catches_a_patch_changed_alone() -> None:
    """Negative control: the patch's statement in ``__init__`` dropped, the reference kept."""
    files = matrix.read_targets(matrix.wheel(load().supported()[-1]))
    patch = load().patch_text(load().releases[load().supported()[-1]].patch or "")
    module = "livekit/agents/voice/speech_handle.py"
    patched = matrix.patch_files(files, patch)[module].decode()
    drifted = patched.replace(
        "        self._interrupted_generations: set[asyncio.Future[None]] = set()\n", ""
    )
    assert drifted != patched
    reference = MODULES[module].read_text(encoding="utf-8")
    problems = guard(files[module].decode(), drifted, reference, _newest(module))
    assert any(p.startswith("SpeechHandle.__init__") for p in problems), problems
