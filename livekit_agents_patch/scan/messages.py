"""The text of the scan's findings: what runs instead, what no longer runs, where, what to do.

``Messages`` is mixed into the rules' module walker (``rules``): it reads the source lines,
the parents the walker recorded and the file's names, and turns a decision into a ``Hit``. The
advice works on every supported release, patched or not: ``StopResponse`` (the base class of
the fix's ``SpeechInterruptedError``) is importable from ``livekit.agents.llm`` in 1.2.18,
1.3.12 and 1.8.9; ``SpeechInterruptedError`` exists only on patched installs.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass

from . import flow
from .names import Names

SWALLOWED = "LKP001"
BEHAVIOUR_CHANGE = "LKP002"
WORKAROUND = "LKP003"
NOT_A_CONTEXT = "LKP004"
IN_A_TASK = "LKP005"
UNREADABLE = "LKP900"
SEVERITY = {
    SWALLOWED: "warning",
    BEHAVIOUR_CHANGE: "info",
    WORKAROUND: "info",
    NOT_A_CONTEXT: "warning",
    IN_A_TASK: "info",
    UNREADABLE: "error",
}
WAIT = "wait_for_playout"
IMPORT = "from livekit.agents.llm import StopResponse"
RERAISE = f"`except StopResponse: raise` (`{IMPORT}`, on every release, patched or not)"
_SNIPPET = 60


@dataclass(frozen=True)
class Hit:
    """One finding in a parsed file; ``col_offset`` is ast's (UTF-8 bytes, 0-based)."""

    line: int
    col_offset: int
    code: str
    message: str


def handler_text(handler: ast.ExceptHandler) -> str:
    clause = "except" + (f" {_short(ast.unparse(handler.type))}" if handler.type else "")
    return clause + (f" as {handler.name}:" if handler.name else ":")


def decorated(wait: Hit, decorator: str, where: str, clause: str, instead: str) -> Hit:
    """LKP001 at ``wait``: a decorator (defined at ``where``, a ``path:line``) swallows it."""
    return Hit(
        wait.line,
        wait.col_offset,
        SWALLOWED,
        f"the fix is swallowed by the decorator `@{decorator}`: its wrapper's `{clause}` "
        f"({where}) catches SpeechInterruptedError around the tool and does not re-raise it, "
        f"so when the preamble is interrupted the wrapper runs `{instead}` instead of the tool "
        f"ending quietly (every tool it decorates). Next: add {RERAISE} before that handler",
    )


def caller_swallowed(wait: Hit, caller: str, where: str, clause: str, call: str) -> Hit:
    """LKP001 at ``wait``: a caller in another file awaits the helper inside a swallowing
    handler (``where`` is that handler's ``path:line``)."""
    return Hit(
        wait.line,
        wait.col_offset,
        SWALLOWED,
        f"the fix is swallowed: `{clause}` ({where}, in `{caller}`, around its call to "
        f"`{call}`) catches SpeechInterruptedError and does not re-raise it, so when the "
        f"preamble is interrupted that handler runs instead of the tool ending quietly. Next: "
        f"add {RERAISE} before it",
    )


class Messages:
    lines: Sequence[str]
    parents: dict[ast.AST, ast.AST]
    names: Names
    ends: dict[int, list[int]]
    """``flow.after``'s cache of where each statement list's reachable runs end."""
    details: int
    """How many more LKP002 messages of this file name the first lost effect and the state left
    set (each reads the statements around its wait): a bound, so a generated file of 20,000
    waits is read in seconds, not hours."""

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
            clause = handler_text(what)
            first, last = what.body[0], what.body[-1]
            then = ""
            if not isinstance(last, ast.Return | ast.Raise | ast.Continue | ast.Break):
                then = self._goes_on(stmt)
                then = f", then the tool {then}" if then else ""
            message = (
                f"the fix is swallowed: `{clause}` ({where}) catches SpeechInterruptedError "
                "and does not re-raise it, so when the preamble is interrupted the handler runs "
                f"instead of the tool ending quietly ({_lines(first.lineno, _end(last))}: "
                f"`{self._snippet(first)}`){then}. Next: add {RERAISE} before it, or move the "
                "wait out of the try"
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
        after = flow.after(self.parents, stmt, self.ends)
        if not after:
            return ""
        return f"goes on at line {after[0].lineno} (`{self._snippet(after[0])}`)"

    def _behaviour_change(self, call: ast.Call) -> Hit:
        after = flow.after(self.parents, call, self.ends)
        head = (
            "behaviour change: with the fix this raises SpeechInterruptedError when the "
            "preamble is interrupted, and the tool ends quietly there"
        )
        if not after:
            return self._hit(call, BEHAVIOUR_CHANGE, f"{head} (nothing follows the wait)")
        span = _lines(after[0].lineno, _end(after[-1]))  # in source order: the last ends last
        if self.details <= 0:
            return self._hit(
                call, BEHAVIOUR_CHANGE, f"{head}: the statements after it ({span}) no longer run"
            )
        self.details -= 1
        lost = flow.lost_effect(after, self.names)
        example = f", first the call to `{self._code(lost.func)}`" if lost else ""
        message = f"{head}: the statements after it ({span}{example}) no longer run"
        for target, set_at, reset_at in flow.stale_state(self.parents, call, after):
            message += (
                f"; `{target}` (set at line {set_at}) stays set: the reset at line {reset_at} "
                "no longer runs"
            )
        for target, set_at, check_at in flow.stale_guards(self.parents, call):
            if f"`{target}` (set at line" not in message:
                message += (
                    f"; `{target}` (set at line {set_at}) stays set, so the check at line "
                    f"{check_at} returns early on every later call"
                )
        return self._hit(call, BEHAVIOUR_CHANGE, message)

    def _in_a_task(self, call: ast.Call, func: ast.AST, started: ast.Call) -> Hit:
        after = flow.after(self.parents, call, self.ends)
        name = getattr(func, "name", "lambda")
        lost = ""
        if after:
            lost = f"; its statements after the wait ({_lines(after[0].lineno, _end(after[-1]))})"
            lost += " no longer run"
        return self._hit(
            call,
            IN_A_TASK,
            f"in a background task: `{name}` is only started as a task (`{self._code(started)}`"
            f", line {started.lineno}), so with the fix this raises SpeechInterruptedError in "
            f"the task, not in the tool: the tool is not stopped{lost}, and the task ends with "
            "'Task exception was never retrieved'. Next: handle it in the task, e.g. "
            f"`except StopResponse: return` (`{IMPORT}`, on every release, patched or not)",
        )

    def _not_a_context(self, call: ast.Call, func: ast.AST, param: str) -> Hit:
        name = getattr(func, "name", "?")
        return self._hit(
            call,
            NOT_A_CONTEXT,
            f"`{param}` is the first parameter of the method `{name}`, so it receives the "
            "instance, not a RunContext: this wait fails already (AttributeError), with or "
            f"without the fix. Next: add `self` before it (`def {name}(self, {param}: "
            "RunContext, ...)`)",
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

    def _snippet(self, stmt: ast.stmt) -> str:
        text = self.lines[stmt.lineno - 1].strip() if stmt.lineno <= len(self.lines) else ""
        return _short(text)

    def _code(self, expr: ast.expr) -> str:
        return _short(ast.unparse(expr))

    @staticmethod
    def _hit(node: ast.expr, code: str, message: str) -> Hit:
        return Hit(node.lineno, node.col_offset, code, message)


def _short(text: str) -> str:
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "..."


def _end(stmt: ast.stmt) -> int:
    return stmt.end_lineno or stmt.lineno


def _lines(first: int, last: int) -> str:
    return f"line {first}" if first == last else f"lines {first}-{last}"
