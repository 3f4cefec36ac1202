"""What a name in a scanned file refers to, statically: imports, annotations, exception types.

``Names`` resolves a ``Name``/``Attribute`` expression to a dotted name through the file's own
imports (``import contextlib as cl``, ``from livekit.agents import RunContext as Ctx``,
``from livekit import agents``), wherever in the file they are. It never imports anything.
"""

from __future__ import annotations

import ast

RUN_CONTEXT = "RunContext"
INTERRUPT_CATCHERS = frozenset({"StopResponse", "SpeechInterruptedError"})
"""Names (last component) of the livekit classes an ``except`` catching the fix's raise names."""
BUILTIN_CATCHERS = frozenset({"Exception", "BaseException"})
_WRAPPERS = frozenset({"Optional", "Union", "Annotated", "Final"})
_WAIT_FOR = frozenset({"asyncio.wait_for", "asyncio.tasks.wait_for"})
_TIMEOUTS = frozenset(
    {
        "asyncio.timeout",
        "asyncio.timeout_at",
        "asyncio.timeouts.timeout",
        "asyncio.timeouts.timeout_at",
        "async_timeout.timeout",
        "async_timeout.timeout_at",
    }
)
_SUPPRESS = frozenset({"contextlib.suppress", "suppress"})


class Names:
    """The import aliases of one module, and the questions the rules ask about expressions."""

    def __init__(self, tree: ast.Module, module: str = "") -> None:
        """``module``: the file's dotted name in the scanned tree (``pkg.sub.mod``, or
        ``pkg.sub`` for ``pkg/sub/__init__.py``, given as ``pkg.sub.__init__``), for relative
        imports."""
        self.aliases: dict[str, str] = {}
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:  # ``import a.b`` binds ``a``
                        top = alias.name.partition(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(module, node.level, node.module or "")
                for alias in node.names:
                    if alias.name != "*":
                        self.aliases[alias.asname or alias.name] = f"{base}.{alias.name}".lstrip(
                            "."
                        )

    def qualified(self, expr: ast.expr) -> str | None:
        """``a.b.c`` with ``a`` resolved through the imports; ``None`` if not a dotted name."""
        parts: list[str] = []
        while isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return None
        parts.append(self.aliases.get(expr.id, expr.id))
        return ".".join(reversed(parts))

    def is_run_context(self, annotation: ast.expr | None) -> bool:
        """``RunContext``, ``RunContext[T]``, qualified, quoted, or in ``Optional``/``| None``."""
        if annotation is None:
            return False
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                parsed = ast.parse(annotation.value.strip(), mode="eval").body
            except (SyntaxError, ValueError):
                return False
            return self.is_run_context(parsed)
        if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
            return self.is_run_context(annotation.left) or self.is_run_context(annotation.right)
        if isinstance(annotation, ast.Subscript):
            name = self.qualified(annotation.value)
            if name is not None and name.rpartition(".")[2] in _WRAPPERS:
                inner = annotation.slice
                items = inner.elts if isinstance(inner, ast.Tuple) else [inner]
                if name.rpartition(".")[2] == "Annotated":
                    items = items[:1]
                return any(self.is_run_context(item) for item in items)
            return self.is_run_context(annotation.value)
        name = self.qualified(annotation)
        return name is not None and name.rpartition(".")[2] == RUN_CONTEXT

    def catches_interrupt(self, expr: ast.expr | None) -> str | None:
        """The name in an ``except`` type (or ``suppress`` argument) that catches the fix's
        ``SpeechInterruptedError``, or ``None``. ``expr`` ``None`` is a bare ``except:``."""
        if expr is None:
            return "bare except"
        if isinstance(expr, ast.Tuple):
            for item in expr.elts:
                found = self.catches_interrupt(item)
                if found:
                    return found
            return None
        name = self.qualified(expr)
        if name is None:
            return None
        last = name.rpartition(".")[2]
        if name in BUILTIN_CATCHERS or name in {f"builtins.{b}" for b in BUILTIN_CATCHERS}:
            return last
        if last in INTERRUPT_CATCHERS:
            return last
        return None

    def is_suppress(self, call: ast.expr) -> bool:
        return isinstance(call, ast.Call) and self.qualified(call.func) in _SUPPRESS

    def is_wait_for(self, call: ast.Call) -> bool:
        return self.qualified(call.func) in _WAIT_FOR

    def is_timeout(self, expr: ast.expr) -> bool:
        return isinstance(expr, ast.Call) and self.qualified(expr.func) in _TIMEOUTS


_SIMPLE = (ast.Expr, ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Return, ast.Raise, ast.Pass)


def _imports(tree: ast.Module) -> list[ast.stmt]:
    """Every import statement, at any depth (visiting statements only, not expressions)."""
    out: list[ast.stmt] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            for child in getattr(node, field, ()):
                if isinstance(child, ast.Import | ast.ImportFrom):
                    out.append(child)
                elif not isinstance(child, _SIMPLE):
                    stack.append(child)
    return out


def _absolute(module: str, level: int, name: str) -> str:
    """The module a ``from`` import names, relative ones resolved against ``module``."""
    if not level:
        return name
    package = module.split(".")[:-1]  # a module's package; ``pkg.__init__`` -> ``pkg``
    if level > 1:
        package = package[: -(level - 1)] if len(package) >= level - 1 else []
    return ".".join([*package, name] if name else package)
