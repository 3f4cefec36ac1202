"""The scan's rules: where a tool waits for its playout, and what the fix changes there.

A *tool playout wait* is a call ``<name>.wait_for_playout(...)`` where ``<name>`` is a parameter
annotated ``RunContext`` (see ``scan_names.Names.is_run_context``) of the enclosing function, or
of a function enclosing it (a closure). A call passing ``raise_on_interrupt=False`` keeps the old
behaviour and is not a finding. Each tool playout wait gives exactly one of:

- ``LKP001`` (warning): the fix is swallowed. Walking out from the call to its function, the
  first ``try`` (whose body holds the call) with a handler catching ``SpeechInterruptedError``
  has, as its first such handler, one that does not re-raise; or a ``with suppress(...)`` of such
  a type holds the call. Failing that, the same is looked for around each ``await f(...)`` (or
  ``await self.f(...)`` in ``f``'s class) of the wait's function ``f`` elsewhere in the module,
  and around the awaits of those callers in turn.
- ``LKP002`` (info): behaviour change; the statements after the wait no longer run.

and, besides, ``LKP003`` (info) for an ``asyncio.wait_for(...)`` or ``async with
asyncio.timeout(...)`` around it: a #5359 workaround the fix makes unnecessary.
"""

from __future__ import annotations

import ast
from bisect import bisect_left
from collections.abc import Callable, Sequence

from .messages import WAIT, Hit, Messages
from .names import Names

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_TRIES: tuple[type[ast.stmt], ...] = tuple(
    t for t in (ast.Try, getattr(ast, "TryStar", None)) if t is not None
)


def analyse(tree: ast.Module, lines: Sequence[str]) -> list[Hit]:
    """Every finding in ``tree``; ``lines`` are its source lines (for quoting code)."""
    module = _Module(tree, lines)
    return module.hits(module.waits) if module.waits else []


def _is_wait(node: ast.Call) -> bool:
    return (
        isinstance(node.func, ast.Attribute)
        and node.func.attr == WAIT
        and isinstance(node.func.value, ast.Name)
    )


class _Module(Messages):
    def __init__(self, tree: ast.Module, lines: Sequence[str]) -> None:
        self.tree = tree
        self.lines = lines
        self.parents: dict[ast.AST, ast.AST] = {}
        """Only for the nodes on a path from the module to a line visited by ``_descend``."""
        self.waits = self._descend(WAIT, _is_wait)
        self.names = Names(tree)

    def _descend(self, text: str, want: Callable[[ast.Call], bool]) -> list[ast.Call]:
        """The calls ``want`` picks on the lines that mention ``text``, visiting only the
        subtrees holding such a line (a whole-tree walk costs ten times the parse)."""
        lines = [i for i, line in enumerate(self.lines, 1) if text in line]
        found: list[ast.Call] = []
        stack: list[ast.AST] = [self.tree] if lines else []
        while stack:
            node = stack.pop()
            for child in ast.iter_child_nodes(node):
                first = getattr(child, "lineno", None)
                if first is not None:
                    index = bisect_left(lines, first)
                    last = getattr(child, "end_lineno", None) or first
                    if index == len(lines) or lines[index] > last:
                        continue
                self.parents[child] = node
                if isinstance(child, ast.Call) and want(child):
                    found.append(child)
                stack.append(child)
        return sorted(found, key=lambda call: (call.lineno, call.col_offset))

    def hits(self, waits: list[ast.Call]) -> list[Hit]:
        out: list[Hit] = []
        for call in waits:
            if _opted_out(call):
                continue
            func = self._tool_function(call)
            if func is not None:
                out.extend(self._judge(call, func))
        return out

    # --- what is a tool's wait ---------------------------------------------------------------

    def _tool_function(self, call: ast.Call) -> ast.AST | None:
        """The function whose code the call is in, if its receiver is a RunContext parameter
        (of that function or, for a closure, of the nearest enclosing one that binds it)."""
        assert isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name)
        receiver = call.func.value.id
        innermost: ast.AST | None = None
        node: ast.AST | None = self.parents.get(call)
        while node is not None:
            if isinstance(node, _FUNCTIONS):
                innermost = innermost or node
                for arg in _parameters(node.args):
                    if arg.arg == receiver:
                        return innermost if self.names.is_run_context(arg.annotation) else None
            node = self.parents.get(node)
        return None

    # --- what the fix changes there ----------------------------------------------------------

    def _judge(self, call: ast.Call, func: ast.AST) -> list[Hit]:
        catcher = self._catcher(call, func)
        if catcher is not None:
            first = self._swallowed(call, catcher)
        else:
            in_caller = self._caller_catcher(func)
            first = (
                self._swallowed(call, in_caller[0], via=in_caller[1:])
                if in_caller
                else self._behaviour_change(call, func)
            )
        return [first, *self._workarounds(call, func)]

    def _chain(self, node: ast.AST, func: ast.AST) -> list[tuple[ast.AST, ast.AST]]:
        """``(child, parent)`` pairs from ``node`` out to ``func``."""
        out = []
        while node is not func and node in self.parents:
            out.append((node, self.parents[node]))
            node = self.parents[node]
        return out

    def _catcher(self, node: ast.AST, func: ast.AST) -> tuple[ast.stmt, ast.AST] | None:
        """The innermost ``(try, handler)`` or ``(with, suppress call)`` around ``node``, within
        ``func``, that swallows ``SpeechInterruptedError``."""
        for child, parent in self._chain(node, func):
            if isinstance(parent, _TRIES) and _in(child, parent, "body"):
                handler = self._first_catching(parent)
                if handler is not None and not self._reraises(handler):
                    return parent, handler
            elif isinstance(parent, ast.With | ast.AsyncWith) and _in(child, parent, "body"):
                for item in parent.items:
                    if self._suppresses(item.context_expr):
                        return parent, item.context_expr
        return None

    def _caller_catcher(
        self, func: ast.AST
    ) -> tuple[tuple[ast.stmt, ast.AST], ast.Call, ast.AST] | None:
        """When the wait's function is awaited by another function of the module (directly, or
        through further awaited functions) inside a swallowing handler: that catcher, the
        awaited call and the function holding it."""
        seen, queue = {func}, [func]
        while queue:
            callee = queue.pop(0)
            for site, caller in self._call_sites(callee):
                catcher = self._catcher(site, caller)
                if catcher is not None:
                    return catcher, site, caller
                if caller not in seen:
                    seen.add(caller)
                    queue.append(caller)
        return None

    def _call_sites(self, func: ast.AST) -> list[tuple[ast.Call, ast.AST]]:
        """``await f(...)`` (or ``await self.f(...)`` in ``f``'s class) and the function that
        holds it, for a named function ``f`` of this module."""
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            return []
        owner = self.parents.get(func)
        method = isinstance(owner, ast.ClassDef)

        def calls_it(call: ast.Call) -> bool:
            f = call.func
            if method:
                return (
                    isinstance(f, ast.Attribute)
                    and f.attr == func.name
                    and isinstance(f.value, ast.Name)
                    and f.value.id in ("self", "cls")
                )
            return isinstance(f, ast.Name) and f.id == func.name

        out: list[tuple[ast.Call, ast.AST]] = []
        for site in self._descend(func.name, calls_it):
            if not isinstance(self.parents.get(site), ast.Await):
                continue  # a task or a coroutine passed on: its raise goes elsewhere
            enclosing = [p for _, p in self._chain(site, self.tree) if isinstance(p, _FUNCTIONS)]
            classes = [p for _, p in self._chain(site, self.tree) if isinstance(p, ast.ClassDef)]
            if enclosing and enclosing[0] is not func and (not method or classes[:1] == [owner]):
                out.append((site, enclosing[0]))
        return out

    def _workarounds(self, call: ast.Call, func: ast.AST) -> list[Hit]:
        out: list[Hit] = []
        for child, parent in self._chain(call, func):
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
        """A top-level ``raise`` / ``raise <caught name>`` in the handler, or one under a
        top-level ``if isinstance(<caught name>, <a type catching the fix's raise>):``."""
        for stmt in handler.body:
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
                and any(_is_reraise(s, handler.name) for s in stmt.body)
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


def _parameters(args: ast.arguments) -> list[ast.arg]:
    return [*args.posonlyargs, *args.args, *args.kwonlyargs]


def _opted_out(call: ast.Call) -> bool:
    """``raise_on_interrupt=False``: the old behaviour, kept on purpose."""
    return any(
        k.arg == "raise_on_interrupt"
        and isinstance(k.value, ast.Constant)
        and k.value.value is False
        for k in call.keywords
    )


def _in(child: ast.AST, parent: ast.AST, field: str) -> bool:
    return any(node is child for node in getattr(parent, field, []))


def _is_reraise(stmt: ast.stmt, caught: str | None) -> bool:
    if not isinstance(stmt, ast.Raise):
        return False
    return stmt.exc is None or (isinstance(stmt.exc, ast.Name) and stmt.exc.id == caught)
