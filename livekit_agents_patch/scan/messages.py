"""The text of the scan's findings: what runs instead, what no longer runs, where.

``Messages`` is mixed into the rules' module walker (``scan_rules``): it reads the source lines,
the parents the walker recorded and the file's names, and turns a decision into a ``Hit``.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass

from .names import Names

SWALLOWED = "LKP001"
BEHAVIOUR_CHANGE = "LKP002"
WORKAROUND = "LKP003"
UNREADABLE = "LKP900"
SEVERITY = {SWALLOWED: "warning", BEHAVIOUR_CHANGE: "info", WORKAROUND: "info", UNREADABLE: "error"}
WAIT = "wait_for_playout"
_SNIPPET = 60


@dataclass(frozen=True)
class Hit:
    """One finding in a parsed file; ``col_offset`` is ast's (UTF-8 bytes, 0-based)."""

    line: int
    col_offset: int
    code: str
    message: str


class Messages:
    lines: Sequence[str]
    parents: dict[ast.AST, ast.AST]
    names: Names

    def _swallowed(
        self,
        call: ast.Call,
        catcher: tuple[ast.stmt, ast.AST],
        via: tuple[ast.Call, ast.AST] | None = None,
    ) -> Hit:
        stmt, what = catcher
        where = f"line {what.lineno if isinstance(what, ast.ExceptHandler) else stmt.lineno}"
        if via is not None:
            site, caller = via
            name = getattr(caller, "name", "lambda")
            where += f", in `{name}`, around its call to `{self._code(site.func)}` (line "
            where += f"{site.lineno})"
        if isinstance(what, ast.ExceptHandler):
            clause = "except" + (f" {self._code(what.type)}" if what.type else "")
            clause += f" as {what.name}:" if what.name else ":"
            first, last = what.body[0], what.body[-1]
            then = ""
            if not isinstance(last, ast.Return | ast.Raise | ast.Continue | ast.Break):
                then = self._goes_on(stmt)
                then = f", then the tool {then}" if then else ""
            message = (
                f"the fix is swallowed: `{clause}` ({where}) catches SpeechInterruptedError "
                "and does not re-raise it, so when the preamble is interrupted the handler runs "
                f"instead of the tool ending quietly ({_lines(first.lineno, _end(last))}: "
                f"`{self._snippet(first)}`){then}. Next: add `except SpeechInterruptedError: "
                "raise` before it, or move the wait out of the try"
            )
        else:
            assert isinstance(what, ast.expr)
            goes_on = self._goes_on(stmt) or "returns normally"
            message = (
                f"the fix is swallowed: `{self._code(what)}` ({where}) suppresses "
                f"SpeechInterruptedError, so when the preamble is interrupted the tool {goes_on}. "
                "Next: move the wait out of the with block, or suppress narrower types"
            )
        return self._hit(call, SWALLOWED, message)

    def _goes_on(self, stmt: ast.stmt) -> str:
        """Where the tool goes on once ``stmt`` has swallowed the raise."""
        after = self._after(stmt)
        if not after:
            return ""
        return f"goes on at line {after[0].lineno} (`{self._snippet(after[0])}`)"

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


def _end(stmt: ast.stmt) -> int:
    return stmt.end_lineno or stmt.lineno


def _lines(first: int, last: int) -> str:
    return f"line {first}" if first == last else f"lines {first}-{last}"
