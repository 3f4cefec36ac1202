"""Where the fix's raise is caught: the handlers and ``suppress`` blocks around a node within
its function, whether a handler re-raises (by a reachable ``raise``), and the #5359
workarounds (``asyncio.wait_for``, ``asyncio.timeout``) around a wait.

``Catchers`` is mixed into the rules' module walker; it reads the parents it recorded.
"""

from __future__ import annotations

import ast

from . import flow
from .messages import Hit, Messages

_TRIES: tuple[type[ast.stmt], ...] = tuple(
    t for t in (ast.Try, getattr(ast, "TryStar", None)) if t is not None
)


class Catchers(Messages):
    def chain(self, node: ast.AST, func: ast.AST) -> list[tuple[ast.AST, ast.AST]]:
        """``(child, parent)`` pairs from ``node`` out to ``func``."""
        out = []
        while node is not func and node in self.parents:
            out.append((node, self.parents[node]))
            node = self.parents[node]
        return out

    def catcher(self, node: ast.AST, func: ast.AST) -> tuple[ast.stmt, ast.AST] | None:
        """The innermost ``(try, handler)`` or ``(with, suppress call)`` around ``node``, within
        ``func``, that swallows ``SpeechInterruptedError``."""
        for child, parent in self.chain(node, func):
            if isinstance(parent, _TRIES) and _in(child, parent, "body"):
                handler = self._first_catching(parent)
                if handler is not None and not self._reraises(handler):
                    return parent, handler
            elif isinstance(parent, ast.With | ast.AsyncWith) and _in(child, parent, "body"):
                for item in parent.items:
                    if self._suppresses(item.context_expr):
                        return parent, item.context_expr
        return None

    def _workarounds(self, call: ast.Call, func: ast.AST) -> list[Hit]:
        out: list[Hit] = []
        for child, parent in self.chain(call, func):
            if isinstance(parent, ast.With | ast.AsyncWith) and _in(child, parent, "body"):
                for item in parent.items:
                    expr = item.context_expr
                    if self.names.is_timeout(expr):
                        out.append(self._workaround(expr, f"`async with {self._code(expr)}`"))
            elif isinstance(parent, ast.Call) and self._waits_for(parent, child):
                out.append(self._workaround(parent, f"`{self._code(parent)}`"))
        return out

    def _first_catching(self, node: ast.stmt) -> ast.ExceptHandler | None:
        for handler in getattr(node, "handlers", []):
            if self.names.catches_interrupt(handler.type):
                assert isinstance(handler, ast.ExceptHandler)
                return handler
        return None

    def _reraises(self, handler: ast.ExceptHandler) -> bool:
        """A reachable top-level ``raise`` / ``raise <caught name>`` in the handler, or one
        reachable under a top-level ``if isinstance(<caught name>, <a type catching the fix's
        raise>):`` (a ``raise`` after a ``return`` never runs)."""
        for stmt in flow.reachable(handler.body):
            if _is_reraise(stmt, handler.name):
                return True
            test = stmt.test if isinstance(stmt, ast.If) else None
            if (
                isinstance(test, ast.Call)
                and isinstance(test.func, ast.Name)
                and test.func.id == "isinstance"
                and len(test.args) == 2
                and isinstance(test.args[0], ast.Name)
                and test.args[0].id == handler.name
                and self.names.catches_interrupt(test.args[1])
                and isinstance(stmt, ast.If)
                and any(_is_reraise(s, handler.name) for s in flow.reachable(stmt.body))
            ):
                return True
        return False

    def _waits_for(self, call: ast.Call, awaitable: ast.AST) -> bool:
        """``asyncio.wait_for(awaitable, ...)``, or ``fut=awaitable`` (``awaitable`` is then the
        ``keyword`` node, the parent of the wait)."""
        return self.names.is_wait_for(call) and (
            (bool(call.args) and call.args[0] is awaitable)
            or any(k.arg == "fut" and k is awaitable for k in call.keywords)
        )

    def _suppresses(self, expr: ast.expr) -> bool:
        return (
            isinstance(expr, ast.Call)
            and self.names.is_suppress(expr)
            and any(self.names.catches_interrupt(arg) for arg in expr.args)
        )


def _in(child: ast.AST, parent: ast.AST, field: str) -> bool:
    return any(node is child for node in getattr(parent, field, []))


def _is_reraise(stmt: ast.stmt, caught: str | None) -> bool:
    if not isinstance(stmt, ast.Raise):
        return False
    return stmt.exc is None or (isinstance(stmt.exc, ast.Name) and stmt.exc.id == caught)
