"""Control flow the rules need, statically: what is reachable, what would run after a wait,
which of it has an effect, and whether an earlier wait has already decided the step.

All functions take the ``parents`` map the rules' walker built (child node -> parent node).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from itertools import islice

from .names import Names

_TERMINAL = (ast.Return, ast.Raise, ast.Continue, ast.Break)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_QUIET = frozenset({"sleep", "wait_for_playout", "wait", "gather"})
"""Calls whose loss is no lost effect: sleeping, waiting (another playout wait)."""
_LOGGING = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical", "log"})
_PURE = frozenset({"len", "str", "int", "float", "bool", "dict", "list", "tuple", "set", "repr"})
_RESET_WINDOW = 3
"""Statements before the wait whose assignments may be left stale (the issue's "few")."""
_NEAR = 50
"""Statements read on each side of a wait (the first lost effect, an earlier wait, a guard):
a generated function of 20,000 waits must not cost 20,000 x 20,000 statements."""
_NODES = 2000
"""Nodes walked in those statements."""


def reachable(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements of ``body`` that can run: up to the first ``return``/``raise``/
    ``continue``/``break`` (inclusive)."""
    out: list[ast.stmt] = []
    for stmt in body:
        out.append(stmt)
        if isinstance(stmt, _TERMINAL):
            break
    return out


def statement_of(parents: dict[ast.AST, ast.AST], node: ast.AST) -> ast.stmt | None:
    while not isinstance(node, ast.stmt):
        parent = parents.get(node)
        if parent is None or isinstance(parent, ast.Lambda):
            return None
        node = parent
    return node


def blocks_out(
    parents: dict[ast.AST, ast.AST], stmt: ast.stmt
) -> Iterator[tuple[list[ast.stmt], int]]:
    """Each statement list holding ``stmt`` or a statement around it, with the index there,
    innermost first, up to the enclosing function."""
    node: ast.AST = stmt
    while not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module):
        parent = parents.get(node)
        if parent is None:
            return
        for _, value in ast.iter_fields(parent):
            if isinstance(value, list):
                try:
                    index = value.index(node)  # identity: AST nodes compare by it (in C)
                except ValueError:
                    continue
                yield value, index
                break
        while not isinstance(parent, ast.stmt | ast.Module):  # a handler, a match case
            parent = parents[parent]
        node = parent


def after(
    parents: dict[ast.AST, ast.AST], node: ast.AST, ends: dict[int, list[int]] | None = None
) -> list[ast.stmt]:
    """The statements that would run after ``node``'s statement, up to its function's end, in
    source order. ``ends`` caches, per statement list (by id, for as long as its tree lives),
    where each index's reachable run ends: the work per wait stays a slice."""
    stmt = statement_of(parents, node)
    if stmt is None:
        return []
    ends = {} if ends is None else ends
    out: list[ast.stmt] = []
    for block, i in blocks_out(parents, stmt):
        if id(block) not in ends:
            stops, stop = [0] * (len(block) + 1), len(block)
            for k in range(len(block) - 1, -1, -1):
                stop = k + 1 if isinstance(block[k], _TERMINAL) else stop
                stops[k] = stop
            stops[len(block)] = len(block)
            ends[id(block)] = stops
        out.extend(block[i + 1 : ends[id(block)][i + 1]])
    return out


def before(parents: dict[ast.AST, ast.AST], node: ast.AST) -> Iterator[ast.stmt]:
    """Statements that ran on every path to ``node``'s statement (preceding siblings of it and
    of each statement around it), nearest first; lazily (callers read the nearest few)."""
    stmt = statement_of(parents, node)
    if stmt is None:
        return
    for block, i in blocks_out(parents, stmt):
        yield from reversed(block[:i])


def _walk_own(stmts: list[ast.stmt]) -> Iterator[ast.AST]:
    """Every node of ``stmts`` in source order, not entering nested functions or classes."""
    stack: list[ast.AST] = list(reversed(stmts))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, _SCOPES):
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


def lost_effect(stmts: list[ast.stmt], names: Names) -> ast.Call | None:
    """The first call in ``stmts`` that does something: awaited or a statement of its own, not
    another wait, a sleep, a getter or logging, not in a nested function, not an exception
    being built for a ``raise``; failing that, any other such call."""
    nodes = list(islice(_walk_own(stmts[:_NEAR]), _NODES))
    awaited = {id(n.value) for n in nodes if isinstance(n, ast.Await)}
    effect = {id(n.value) for n in nodes if isinstance(n, ast.Expr)}
    raised = {id(c) for n in nodes if isinstance(n, ast.Raise) for c in ast.walk(n)}
    calls = [
        n
        for n in nodes
        if isinstance(n, ast.Call) and id(n) not in raised and _does_something(n, names)
    ]
    first = next((c for c in calls if id(c) in awaited or id(c) in effect), None)
    return first or (calls[0] if calls else None)


def _does_something(call: ast.Call, names: Names) -> bool:
    name = names.qualified(call.func)
    if name is None:
        return False
    parts = name.split(".")
    last = parts[-1]
    if last in _QUIET or last in _PURE or last.startswith(("get_", "is_", "has_")):
        return False
    return not (last in _LOGGING and any("log" in p.lower() for p in parts[:-1]))


def already_waited(
    parents: dict[ast.AST, ast.AST], call: ast.Call, receiver: str
) -> ast.Call | None:
    """An earlier ``await <receiver>.wait_for_playout()`` that ran (and returned) on every path
    to ``call``: the step's outcome is decided, so this wait can no longer raise."""
    for stmt in islice(before(parents, call), _NEAR):
        value = getattr(stmt, "value", None)
        if isinstance(stmt, ast.Expr | ast.Assign | ast.AnnAssign) and isinstance(value, ast.Await):
            inner = value.value
            if (
                isinstance(inner, ast.Call)
                and isinstance(inner.func, ast.Attribute)
                and inner.func.attr == "wait_for_playout"
                and isinstance(inner.func.value, ast.Name)
                and inner.func.value.id == receiver
                and not any(k.arg == "raise_on_interrupt" for k in inner.keywords)
            ):
                return inner
    return None


def interruptions_disallowed(
    parents: dict[ast.AST, ast.AST], call: ast.Call, receiver: str
) -> ast.Call | None:
    """A ``<receiver>.disallow_interruptions()`` that ran on every path to ``call``: it raises
    if the speech is already interrupted, and after it no interruption is accepted, so the
    preamble cannot be interrupted and this wait cannot raise."""
    for stmt in islice(before(parents, call), _NEAR):
        inner = stmt.value if isinstance(stmt, ast.Expr) else None
        if (
            isinstance(inner, ast.Call)
            and isinstance(inner.func, ast.Attribute)
            and inner.func.attr == "disallow_interruptions"
            and isinstance(inner.func.value, ast.Name)
            and inner.func.value.id == receiver
        ):
            return inner
    return None


def stale_state(
    parents: dict[ast.AST, ast.AST], call: ast.Call, lost: list[ast.stmt]
) -> list[tuple[str, int, int]]:
    """Attributes set in the few statements before the wait that the lost statements would
    have set again: ``(target, line set, line of the lost reset)``."""
    set_before = _set_just_before(parents, call)
    out: list[tuple[str, int, int]] = []
    for node in islice(_walk_own(lost[:_NEAR]), _NODES):
        if isinstance(node, ast.stmt):
            for text in _attributes_assigned(node):
                if text in set_before and all(t != text for t, _, _ in out):
                    out.append((text, set_before[text], node.lineno))
    return out


def stale_guards(parents: dict[ast.AST, ast.AST], call: ast.Call) -> list[tuple[str, int, int]]:
    """Attributes set in the few statements before the wait that an earlier ``if <attr>: ...
    return`` of the same function checks: left set when the wait raises, that check returns
    early on every later call (``(target, line set, line of the check)``)."""
    func: ast.AST | None = statement_of(parents, call)
    while func is not None and not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
        func = parents.get(func)
    if func is None:
        return []
    set_before = _set_just_before(parents, call)
    if not set_before:
        return []
    out: list[tuple[str, int, int]] = []
    earlier = list(islice(before(parents, call), _NEAR))
    around = _ancestors(parents, call, func)  # an ``if`` holding the wait is checked first too
    guards = [
        node
        for node in [*around, *islice(_walk_own(earlier), _NODES)]
        if isinstance(node, ast.If) and any(isinstance(s, ast.Return) for s in node.body)
    ]
    for node in sorted(guards, key=lambda n: n.lineno):
        tested = {ast.unparse(n) for n in ast.walk(node.test) if isinstance(n, ast.Attribute)}
        for text, line in set_before.items():
            if text in tested and node.lineno < line and all(t != text for t, _, _ in out):
                out.append((text, line, node.lineno))
    return out


def _set_just_before(parents: dict[ast.AST, ast.AST], call: ast.Call) -> dict[str, int]:
    """Attributes assigned in the few statements that ran just before the wait (in its block
    and, when it is nested in an ``if`` or a loop, before that statement): target -> line."""
    window = list(islice(before(parents, call), _RESET_WINDOW))
    return {text: s.lineno for s in reversed(window) for text in _attributes_assigned(s)}


def _ancestors(parents: dict[ast.AST, ast.AST], node: ast.AST, func: ast.AST) -> list[ast.AST]:
    out = []
    node = parents.get(node, func)
    while node is not func:
        out.append(node)
        node = parents.get(node, func)
    return out


def _attributes_assigned(stmt: ast.AST) -> list[str]:
    targets: list[ast.expr] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
        targets = [stmt.target]
    return [ast.unparse(t) for t in targets if isinstance(t, ast.Attribute)]
