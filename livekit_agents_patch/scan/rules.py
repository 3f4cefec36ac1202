"""The scan's rules for one module: where a tool waits for its playout, and what the fix
changes there, as far as this file can tell.

A *tool playout wait* is a call ``<name>.wait_for_playout(...)`` where ``<name>`` is a parameter
of the enclosing function (or, for a closure, of a function around it) that is annotated
``RunContext`` (see ``names.Names.is_run_context``), or unannotated but narrowed with
``isinstance(<name>, RunContext)`` there or passed a RunContext parameter by a caller (in this
file here; in another file of the tree, ``link`` decides). ``raise_on_interrupt=False`` keeps the
old behaviour and is not a finding. Each such wait gives at most one of:

- ``LKP004`` (warning): the RunContext parameter is the first of a method that is not static,
  so it receives the instance: the wait is broken already;
- ``LKP001`` (warning): the fix is swallowed. Walking out from the call to its function, the
  first ``try`` (whose body holds the call) with a handler catching ``SpeechInterruptedError``
  has, as its first such handler, one that does not re-raise (a reachable ``raise``); or a
  ``with suppress(...)`` of such a type holds the call. Failing that, the same around each
  ``await f(...)`` (or ``await self.f(...)`` in ``f``'s class) of the wait's function ``f``
  elsewhere in the module, and around the awaits of those callers in turn;
- ``LKP005`` (info): the wait's function is only ever started as a task (``create_task``,
  ``ensure_future``, ``TaskGroup.create_task``): its raise ends the task, not the tool;
- nothing, when an earlier wait on the same receiver returned on every path to this one (the
  step's outcome is decided: this one cannot raise), or ``<receiver>.disallow_interruptions()``
  ran on every path to it (the preamble can no longer be interrupted);
- ``LKP002`` (info): behaviour change; the statements after the wait no longer run. Such a
  verdict is *open*: a decorator or a caller in another file may swallow the raise (``link``).

and, besides, ``LKP003`` (info) for an ``asyncio.wait_for(...)`` or ``async with
asyncio.timeout(...)`` around it: a #5359 workaround the fix makes unnecessary.
"""

from __future__ import annotations

import ast
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import flow
from .catchers import Catchers
from .messages import WAIT, Hit
from .names import Names

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_TASK_STARTERS = frozenset({"create_task", "ensure_future"})
DETAILED = 500
"""LKP002 messages per file that name the first lost effect and the state left set."""
_NOT_WRAPPERS = frozenset({"staticmethod", "classmethod", "property", "function_tool"})
_PASS_ON = frozenset(
    f"asyncio.{module}{name}"
    for module in ("", "tasks.")
    for name in ("wait_for", "shield", "gather")
)
"""Awaited with a coroutine, these hand its exception on to the awaiting function."""


@dataclass(frozen=True)
class Open:
    """A wait whose verdict another file of the tree may change; ``link`` decides it."""

    hits: tuple[Hit, ...]
    """The verdict from this file alone (the first is the wait's own finding)."""
    decorators: tuple[str, ...] = ()
    """Qualified names of the decorators on the tool and on the callers found here."""
    function: str | None = None
    """The module-level function holding the wait: callers in other files may swallow it."""
    parameter: tuple[int, str] | None = None
    """An unannotated receiver (position, name): a tool wait only if a caller in another file
    passes it a RunContext."""


@dataclass
class Analysis:
    hits: list[Hit] = field(default_factory=list)
    opens: list[Open] = field(default_factory=list)


def analyse(tree: ast.Module, lines: Sequence[str], module: str = "") -> Analysis:
    """Every finding in ``tree`` this file decides, and the open ones; ``lines`` are its source
    lines as the tokenizer splits them (for quoting code), ``module`` its dotted name."""
    scope = Module(tree, lines, module)
    return scope.analyse() if scope.waits else Analysis()


def is_wait(node: ast.Call) -> bool:
    return (
        isinstance(node.func, ast.Attribute)
        and node.func.attr == WAIT
        and isinstance(node.func.value, ast.Name)
    )


class Module(Catchers):
    def __init__(self, tree: ast.Module, lines: Sequence[str], module: str = "") -> None:
        self.tree = tree
        self.lines = lines
        self.parents: dict[ast.AST, ast.AST] = {}
        """Only for the nodes on a path from the module to a line visited by ``descend``."""
        self.module = module
        self._calls: dict[str, list[ast.Call]] = {}
        self._given: dict[tuple[int, int, str], bool] = {}
        self.ends: dict[int, list[int]] = {}
        self.details = DETAILED
        self.names = Names(tree, module)
        self.waits = self.descend(WAIT, is_wait)

    def descend(self, text: str, want: Callable[[ast.Call], bool]) -> list[ast.Call]:
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

    def calls_named(self, name: str) -> list[ast.Call]:
        """Calls of ``name(...)`` or ``<x>.name(...)``, once per name (each rule asks again)."""
        if name not in self._calls:

            def named(call: ast.Call) -> bool:
                f = call.func
                return (isinstance(f, ast.Name) and f.id == name) or (
                    isinstance(f, ast.Attribute) and f.attr == name
                )

            self._calls[name] = self.descend(name, named)
        return self._calls[name]

    def adopt(self, root: ast.AST) -> None:
        """Record the parents of every node under ``root`` (a decorator's whole body)."""
        for node in ast.walk(root):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node

    def analyse(self) -> Analysis:
        out = Analysis()
        for call in self.waits:
            if _opted_out(call):
                continue
            bound = self._binding(call)
            if bound is None:
                continue
            owner, index, param = bound
            if self._self_position(owner, index):
                if self.names.is_run_context(param.annotation):
                    out.hits.append(self._not_a_context(call, owner, param.arg))
                continue
            hits, open_ = self._judge(call)
            if not hits:
                continue  # an earlier wait decided the step
            if param.annotation is None and not self._given_context(owner, index, param.arg):
                if not isinstance(owner, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                if self.parents.get(owner) is not self.tree:
                    continue  # only a module-level helper can be called from another file
                decorators = open_.decorators if open_ is not None else ()
                open_ = Open(tuple(hits), decorators, owner.name, (index, param.arg))
            if open_ is not None:
                out.opens.append(open_)
            else:
                out.hits.extend(hits)
        return out

    # --- what is a tool's wait ---------------------------------------------------------------

    def _binding(self, call: ast.Call) -> tuple[ast.AST, int, ast.arg] | None:
        """The function binding the call's receiver as a parameter (the nearest enclosing one),
        the parameter's position and the parameter, if it may be a RunContext."""
        assert isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name)
        receiver = call.func.value.id
        node: ast.AST | None = self.parents.get(call)
        while node is not None:
            if isinstance(node, _FUNCTIONS):
                for index, arg in enumerate(_parameters(node.args)):
                    if arg.arg == receiver:
                        if arg.annotation is None or self.names.is_run_context(arg.annotation):
                            return node, index, arg
                        return None
            node = self.parents.get(node)
        return None

    def _self_position(self, func: ast.AST, index: int) -> bool:
        """The first parameter of a method that is not static: it receives the instance."""
        if index != 0 or not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            return False
        if not isinstance(self.parents.get(func), ast.ClassDef):
            return False
        if not (func.args.posonlyargs or func.args.args):
            return False
        return not any(self.names.qualified(d) in ("staticmethod",) for d in func.decorator_list)

    def _given_context(self, func: ast.AST, index: int, name: str) -> bool:
        """``isinstance(name, RunContext)`` in ``func``, or a caller here passing a RunContext
        parameter at that position (or by that keyword); once per function and parameter."""
        key = (id(func), index, name)
        if key not in self._given:
            self._given[key] = self._gives_context(func, index, name)
        return self._given[key]

    def _gives_context(self, func: ast.AST, index: int, name: str) -> bool:
        for node in ast.walk(func):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "isinstance"
                and len(node.args) == 2
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id == name
            ):
                kinds = node.args[1]
                items = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds]
                if any(self.names.is_run_context(item) for item in items):
                    return True
        for site, caller in self.call_sites(func, awaited=False):
            if self.passes_context(site, caller, index, name):
                return True
        return False

    def passes_context(self, site: ast.Call, caller: ast.AST, index: int, name: str) -> bool:
        """``site`` passes, at ``index`` (or as ``name=``), a parameter of ``caller`` (or of a
        function around it) annotated RunContext."""
        arg: ast.expr | None = site.args[index] if index < len(site.args) else None
        arg = next((k.value for k in site.keywords if k.arg == name), arg)
        if not isinstance(arg, ast.Name):
            return False
        node: ast.AST | None = caller
        while node is not None:
            if isinstance(node, _FUNCTIONS):
                for param in _parameters(node.args):
                    if param.arg == arg.id:
                        return self.names.is_run_context(param.annotation)
            node = self.parents.get(node)
        return False

    # --- what the fix changes there ----------------------------------------------------------

    def _judge(self, call: ast.Call) -> tuple[list[Hit], Open | None]:
        func = self._function_of(call)
        workarounds = self._workarounds(call, func)
        assert isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name)
        if flow.interruptions_disallowed(self.parents, call, call.func.value.id) is not None:
            return workarounds, None
        catcher = self.catcher(call, func)
        if catcher is not None:
            return [self._swallowed(call, catcher), *workarounds], None
        started = self._only_started_as_task(func)
        if started is not None:
            return [self._in_a_task(call, func, started), *workarounds], None
        in_caller, reached = self._caller_catcher(func)
        if in_caller:
            return [self._swallowed(call, in_caller[0], via=in_caller[1:]), *workarounds], None
        assert isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name)
        if flow.already_waited(self.parents, call, call.func.value.id) is not None:
            return workarounds, None
        hits = [self._behaviour_change(call), *workarounds]
        # the decorators of the functions the raise passes through: the wait's own and those of
        # the callers that await it (a tool's decorator does not see a callback's raise)
        decorators = tuple(name for f in reached for name in self.custom_decorators(f))
        function = None
        if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            function = func.name if self.parents.get(func) is self.tree else None
        if not decorators and function is None:
            return hits, None
        return hits, Open(tuple(hits), tuple(sorted(set(decorators))), function)

    def _function_of(self, node: ast.AST) -> ast.AST:
        parent = self.parents[node]
        while not isinstance(parent, _FUNCTIONS):
            parent = self.parents[parent]
        return parent

    def custom_decorators(self, func: ast.AST) -> list[str]:
        """The qualified names of ``func``'s decorators that may wrap it in a handler: not
        livekit's, the standard library's or the built-in descriptors."""
        out = []
        for expr in getattr(func, "decorator_list", []):
            name = self.names.qualified(expr.func if isinstance(expr, ast.Call) else expr)
            if name is None or name.rpartition(".")[2] in _NOT_WRAPPERS:
                continue
            if name.startswith(("livekit.", "functools.", "typing.", "contextlib.", "abc.")):
                continue
            if "." not in name and self.module:  # defined here: the map finds this file
                name = f"{self.module}.{name}"
            out.append(name)
        return out

    def _only_started_as_task(self, func: ast.AST) -> ast.Call | None:
        """The ``create_task(f(...))`` starting ``func`` when every call of it in the module is
        the argument of one (``asyncio.create_task``, ``loop.create_task``,
        ``TaskGroup.create_task``, ``ensure_future``); else ``None``."""
        if not isinstance(func, ast.AsyncFunctionDef):
            return None
        starts: list[ast.Call] = []
        for site, _ in self.call_sites(func, awaited=False, any_function=True):
            starter = self.parents.get(site)
            name = self.names.qualified(starter.func) if isinstance(starter, ast.Call) else None
            if name is None or name.rpartition(".")[2] not in _TASK_STARTERS:
                return None
            assert isinstance(starter, ast.Call)
            if not starter.args or starter.args[0] is not site:
                return None
            starts.append(starter)
        return starts[0] if starts else None

    def _caller_catcher(
        self, func: ast.AST
    ) -> tuple[tuple[tuple[ast.stmt, ast.AST], ast.Call, ast.AST] | None, list[ast.AST]]:
        """When the wait's function is awaited by another function of the module (directly, or
        through further awaited functions) inside a swallowing handler: that catcher, the
        awaited call and the function holding it; and the callers reached."""
        seen, queue = [func], [func]
        while queue:
            callee = queue.pop(0)
            for site, caller in self.call_sites(callee):
                catcher = self.catcher(site, caller)
                if catcher is not None:
                    return (catcher, site, caller), seen
                if caller not in seen:
                    seen.append(caller)
                    queue.append(caller)
        return None, seen

    def call_sites(
        self, func: ast.AST, awaited: bool = True, any_function: bool = False
    ) -> list[tuple[ast.Call, ast.AST]]:
        """``await f(...)`` (or ``await self.f(...)`` in ``f``'s class) and the function that
        holds it, for a named function ``f`` of this module; with ``awaited=False`` every call
        (a task started, a coroutine passed on); with ``any_function`` also calls at module
        level or in ``f`` itself (the module is then the holder)."""
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
        for site in (c for c in self.calls_named(func.name) if calls_it(c)):
            if awaited and not self.awaited(site):
                continue  # a task or a coroutine passed on: its raise goes elsewhere
            chain = self.chain(site, self.tree)
            enclosing = [p for _, p in chain if isinstance(p, _FUNCTIONS)]
            classes = [p for _, p in chain if isinstance(p, ast.ClassDef)]
            if method and classes[:1] != [owner]:
                continue
            if enclosing and enclosing[0] is not func:
                out.append((site, enclosing[0]))
            elif any_function:
                out.append((site, self.tree))
        return out

    def awaited(self, site: ast.Call) -> bool:
        """``await f(...)``, or ``f(...)`` given to an awaited ``asyncio.wait_for``, ``shield``
        or ``gather`` (not ``return_exceptions=True``): the raise reaches the awaiting function."""
        parent = self.parents.get(site)
        if isinstance(parent, ast.keyword):  # ``wait_for(fut=f(...))``
            parent = self.parents.get(parent)
        if (
            isinstance(parent, ast.Call)
            and parent.func is not site
            and self.names.qualified(parent.func) in _PASS_ON
            and not any(k.arg == "return_exceptions" for k in parent.keywords)
        ):
            parent = self.parents.get(parent)
        return isinstance(parent, ast.Await)


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
