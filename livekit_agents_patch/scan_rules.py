"""The scan's rules: where a tool waits for its playout, and what the fix changes there.

A *tool playout wait* is a call ``<name>.wait_for_playout(...)`` where ``<name>`` is a parameter
annotated ``RunContext`` (see ``scan_names.Names.is_run_context``) of the enclosing function, or
of a function enclosing it (a closure). A call passing ``raise_on_interrupt=False`` keeps the old
behaviour and is not a finding. Each tool playout wait gives exactly one of:

- ``LKP001`` (warning): the fix is swallowed. Walking out from the call to its function, the
  first ``try`` (whose body holds the call) with a handler catching ``SpeechInterruptedError``
  has, as its first such handler, one that does not re-raise; or a ``with suppress(...)`` of such
  a type holds the call.
- ``LKP002`` (info): behaviour change; the statements after the wait no longer run.

and, besides, ``LKP003`` (info) for an ``asyncio.wait_for(...)`` or ``async with
asyncio.timeout(...)`` around it: a #5359 workaround the fix makes unnecessary.
"""

from __future__ import annotations

import ast
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from .scan_names import Names

SWALLOWED = "LKP001"
BEHAVIOUR_CHANGE = "LKP002"
WORKAROUND = "LKP003"
UNREADABLE = "LKP900"
SEVERITY = {SWALLOWED: "warning", BEHAVIOUR_CHANGE: "info", WORKAROUND: "info", UNREADABLE: "error"}
WAIT = "wait_for_playout"

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_TRIES: tuple[type[ast.stmt], ...] = tuple(
    t for t in (ast.Try, getattr(ast, "TryStar", None)) if t is not None
)
_SNIPPET = 60


@dataclass(frozen=True)
class Hit:
    """One finding in a parsed file; ``col_offset`` is ast's (UTF-8 bytes, 0-based)."""

    line: int
    col_offset: int
    code: str
    message: str


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


class _Module:
    def __init__(self, tree: ast.Module, lines: Sequence[str]) -> None:
        self.lines = lines
        self.parents: dict[ast.AST, ast.AST] = {}
        """Only for the nodes on a path from the module to a line that mentions the wait."""
        self.waits: list[ast.Call] = []
        self._wait_lines = [i for i, line in enumerate(lines, 1) if WAIT in line]
        self._descend(tree)
        self.names = Names(tree)

    def _descend(self, root: ast.AST) -> None:
        """Find the wait calls, visiting only subtrees whose lines hold one (a whole-tree walk
        costs ten times the parse)."""
        stack = [root]
        while stack:
            node = stack.pop()
            for child in ast.iter_child_nodes(node):
                first = getattr(child, "lineno", None)
                if first is not None:
                    index = bisect_left(self._wait_lines, first)
                    last = getattr(child, "end_lineno", None) or first
                    if index == len(self._wait_lines) or self._wait_lines[index] > last:
                        continue
                self.parents[child] = node
                if isinstance(child, ast.Call) and _is_wait(child):
                    self.waits.append(child)
                stack.append(child)
        self.waits.sort(key=lambda call: (call.lineno, call.col_offset))

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
        swallowed: Hit | None = None
        out: list[Hit] = []
        child: ast.AST = call
        parent = self.parents[call]
        while child is not func:
            if swallowed is None and isinstance(parent, _TRIES) and _in(child, parent, "body"):
                handler = self._first_catching(parent)
                if handler is not None and not self._reraises(handler):
                    swallowed = self._swallowed_by_handler(call, parent, handler)
            elif isinstance(parent, ast.With | ast.AsyncWith) and _in(child, parent, "body"):
                for item in parent.items:
                    expr = item.context_expr
                    if swallowed is None and self._suppresses(expr):
                        swallowed = self._swallowed_by_suppress(call, parent, expr)
                    elif self.names.is_timeout(expr):
                        out.append(self._workaround(expr, f"`async with {self._code(expr)}`"))
            elif isinstance(parent, ast.Call) and self._waits_for(parent, child):
                out.append(self._workaround(parent, f"`{self._code(parent)}`"))
            child, parent = parent, self.parents.get(parent, func)
        out.insert(0, swallowed or self._behaviour_change(call, func))
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

    # --- messages ----------------------------------------------------------------------------

    def _swallowed_by_handler(
        self, call: ast.Call, try_: ast.stmt, handler: ast.ExceptHandler
    ) -> Hit:
        clause = "except" + (f" {self._code(handler.type)}" if handler.type else "")
        clause += f" as {handler.name}:" if handler.name else ":"
        first, last = handler.body[0], handler.body[-1]
        then = ""
        if not isinstance(last, ast.Return | ast.Raise | ast.Continue | ast.Break):
            then = self._goes_on(try_)
            then = f", then the tool {then}" if then else ""
        return self._hit(
            call,
            SWALLOWED,
            f"the fix is swallowed: `{clause}` (line {handler.lineno}) catches "
            "SpeechInterruptedError and does not re-raise it, so when the preamble is "
            "interrupted the handler runs instead of the tool ending quietly "
            f"({_lines(first.lineno, _end(last))}: `{self._snippet(first)}`){then}. Next: add "
            "`except SpeechInterruptedError: raise` before it, or move the wait out of the try",
        )

    def _goes_on(self, stmt: ast.stmt) -> str:
        """Where the tool goes on once ``stmt`` has swallowed the raise."""
        after = self._after(stmt)
        if not after:
            return ""
        return f"goes on at line {after[0].lineno} (`{self._snippet(after[0])}`)"

    def _swallowed_by_suppress(self, call: ast.Call, with_: ast.stmt, expr: ast.expr) -> Hit:
        goes_on = self._goes_on(with_) or "returns normally"
        return self._hit(
            call,
            SWALLOWED,
            f"the fix is swallowed: `{self._code(expr)}` (line {with_.lineno}) suppresses "
            f"SpeechInterruptedError, so when the preamble is interrupted the tool {goes_on}. "
            "Next: move the wait out of the with block, or suppress narrower types",
        )

    def _behaviour_change(self, call: ast.Call, func: ast.AST) -> Hit:
        after = self._after(call, func)
        head = (
            "behaviour change: with the fix this raises SpeechInterruptedError when the "
            "preamble is interrupted, and the tool ends quietly there"
        )
        if not after:
            return self._hit(call, BEHAVIOUR_CHANGE, f"{head} (nothing follows the wait)")
        span = _lines(after[0].lineno, max(_end(s) for s in after))
        example = self._example_call(after)
        example = f", e.g. the call to `{example}`" if example else ""
        return self._hit(
            call,
            BEHAVIOUR_CHANGE,
            f"{head}: the statements after it ({span}{example}) no longer run",
        )

    def _workaround(self, node: ast.expr, what: str) -> Hit:
        return self._hit(
            node,
            WORKAROUND,
            f"workaround now unnecessary: {what} around the tool's playout wait guards "
            "against #5359 (a wait stuck when its preamble is interrupted); with the fix the "
            "wait raises SpeechInterruptedError at once",
        )

    # --- helpers -----------------------------------------------------------------------------

    def _after(self, node: ast.AST, func: ast.AST | None = None) -> list[ast.stmt]:
        """The statements that would run after ``node``'s statement, up to its function's end."""
        out: list[ast.stmt] = []
        stmt: ast.AST = node
        while not isinstance(stmt, ast.stmt):
            stmt = self.parents[stmt]
            if stmt is func:  # a lambda: no statements of its own
                return []
        while not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            parent = self.parents.get(stmt)
            if parent is None:
                break
            for _, value in ast.iter_fields(parent):
                if isinstance(value, list):
                    index = next((i for i, v in enumerate(value) if v is stmt), None)
                    if index is not None:
                        out.extend(value[index + 1 :])
                        break
            while not isinstance(parent, ast.stmt):  # an except handler, a match case
                parent = self.parents[parent]
            stmt = parent
        return out

    def _example_call(self, stmts: list[ast.stmt]) -> str | None:
        """The first call with a dotted name in ``stmts``, by what it most likely does: an
        awaited call, else a call made for its effect (a statement of its own), else any call
        outside a ``raise`` (building an exception is not the side effect that is lost)."""
        nodes = [n for s in stmts for n in ast.walk(s)]
        awaited = {id(n.value) for n in nodes if isinstance(n, ast.Await)}
        effect = {id(n.value) for n in nodes if isinstance(n, ast.Expr)}
        raised = {id(c) for n in nodes if isinstance(n, ast.Raise) for c in ast.walk(n)}
        calls = [
            n
            for n in nodes
            if isinstance(n, ast.Call) and id(n) not in raised and self.names.qualified(n.func)
        ]
        if not calls:
            return None
        rank = {id(c): 0 if id(c) in awaited else 1 if id(c) in effect else 2 for c in calls}
        chosen = min(calls, key=lambda c: (rank[id(c)], c.lineno, c.col_offset))
        return ast.unparse(chosen.func)

    def _snippet(self, stmt: ast.stmt) -> str:
        text = self.lines[stmt.lineno - 1].strip() if stmt.lineno <= len(self.lines) else ""
        return text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "..."

    def _code(self, expr: ast.expr) -> str:
        text = ast.unparse(expr)
        return text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "..."

    @staticmethod
    def _hit(node: ast.expr, code: str, message: str) -> Hit:
        return Hit(node.lineno, node.col_offset, code, message)


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


def _end(stmt: ast.stmt) -> int:
    return stmt.end_lineno or stmt.lineno


def _lines(first: int, last: int) -> str:
    return f"line {first}" if first == last else f"lines {first}-{last}"
