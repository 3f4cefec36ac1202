"""The scanned tree as one program: a module map built from the files' paths (no import is run,
nothing of ``sys.path`` is read) and the link step that decides the open findings of ``rules``
with what other files of the tree say.

- a decorator on a tool (or on a caller of the waiting helper) that resolves to a function of
  the tree whose wrapper awaits the wrapped function inside a swallowing handler makes the
  wait ``LKP001``, naming that handler's ``path:line``;
- a caller in another file that awaits a waiting module-level helper inside a swallowing
  handler does too;
- a helper's unannotated parameter is a RunContext when a caller in another file passes it one
  (else that wait is no finding).

Files are parsed lazily, once each, only when an open finding asks about them.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from . import source
from .catchers import Catchers
from .messages import BEHAVIOUR_CHANGE, Hit, caller_swallowed, decorated, handler_text
from .rules import Module, Open

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_DEPTH = 3
"""Re-exports followed (``from .utils import tool`` in a package's ``__init__``)."""


def module_name(relative: str) -> str:
    """``pkg/sub/mod.py`` -> ``pkg.sub.mod`` (``pkg/__init__.py`` -> ``pkg.__init__``)."""
    stem = relative[:-3] if relative.endswith(".py") else relative
    return ".".join(part for part in stem.replace("\\", "/").split("/") if part not in ("", "."))


class ModuleMap:
    """Import names to files: a module is found by its dotted name or by a unique suffix of it
    (the tree may be scanned from its root or from a package inside)."""

    def __init__(self, modules: dict[str, str]) -> None:
        self.suffixes: dict[str, list[str]] = {}
        for path, name in modules.items():
            key = name.removesuffix(".__init__") if name != "__init__" else ""
            parts = key.split(".") if key else []
            for i in range(len(parts)):
                self.suffixes.setdefault(".".join(parts[i:]), []).append(path)

    def find(self, module: str) -> str | None:
        parts = module.split(".")
        for i in range(len(parts)):  # ``app.tools.utils`` scanned from ``app/``: ``tools.utils``
            if i and len(parts) - i < 2:
                break
            paths = self.suffixes.get(".".join(parts[i:]), [])
            if len(paths) == 1:
                return paths[0]
        return None

    def resolve(self, qualified: str) -> tuple[str, str] | None:
        """``(path, attribute)`` of a qualified name defined in the tree, if it is one."""
        parts = qualified.split(".")
        for i in range(len(parts) - 1, 0, -1):
            path = self.find(".".join(parts[:i]))
            if path is not None:
                return path, ".".join(parts[i:])
        return None


class Program:
    def __init__(self, modules: dict[str, str], read: Callable[[str], bytes | None]) -> None:
        """``modules``: path -> dotted name; ``read``: a file's bytes (``None``: unreadable)."""
        self.modules = modules
        self.map = ModuleMap(modules)
        self._read = read
        self._parsed: dict[str, Module | None] = {}
        self._mentions: dict[str, list[str]] | None = None

    def module(self, path: str) -> Module | None:
        if path not in self._parsed:
            data = self._read(path)
            parsed = source.parse(path, data) if data is not None else None
            self._parsed[path] = (
                Module(parsed.tree, parsed.lines, self.modules.get(path, ""))
                if isinstance(parsed, source.Source)
                else None
            )
        return self._parsed[path]

    def index_importers(self, imports: dict[str, frozenset[bytes]], wanted: set[str]) -> None:
        """Which files import each wanted word (a helper's name or its module's last part),
        from the import words the first pass collected: no file is read again."""
        self._mentions = {word: [] for word in wanted}
        raw = {word.encode("utf-8", "surrogateescape"): word for word in wanted}
        wanted_bytes = frozenset(raw)
        for path, words in imports.items():
            for word in words & wanted_bytes:
                self._mentions[raw[word]].append(path)

    def helper_words(self, path: str, function: str) -> set[str]:
        module = self.modules.get(path, "").removesuffix(".__init__")
        return {function, module.rpartition(".")[2]} - {""}

    def link(self, path: str, open_: Open) -> list[Hit]:
        """The findings of an open wait, decided with the rest of the tree."""
        first = open_.hits[0]
        replaced: Hit | None = None
        if first.code == BEHAVIOUR_CHANGE:
            replaced = self._by_decorator(first, open_.decorators)
        confirmed = open_.parameter is None
        for caller_path, mod, site, caller in self._callers(path, open_.function):
            if open_.parameter is not None and not confirmed:
                index, name = open_.parameter
                confirmed = mod.passes_context(site, caller, index, name)
            if replaced is None and first.code == BEHAVIOUR_CHANGE:
                replaced = self._in_caller(first, caller_path, mod, site, caller)
        if not confirmed:
            return []
        return [replaced or first, *open_.hits[1:]]

    def _in_caller(
        self, wait: Hit, path: str, mod: Module, site: ast.Call, caller: ast.AST
    ) -> Hit | None:
        if mod.awaited(site) and isinstance(caller, _FUNCTIONS):
            catcher = mod.catcher(site, caller)
            if catcher is not None:
                stmt, what = catcher
                line = getattr(what, "lineno", stmt.lineno)
                clause = _clause(mod, what)
                name = getattr(caller, "name", "lambda")
                return caller_swallowed(wait, name, f"{path}:{line}", clause, mod._code(site.func))
            return self._by_decorator(wait, tuple(mod.custom_decorators(caller)))
        return None

    def _callers(
        self, path: str, function: str | None
    ) -> list[tuple[str, Module, ast.Call, ast.AST]]:
        """Calls of the module-level ``function`` of ``path`` in other files of the tree."""
        if function is None or self._mentions is None:
            return []
        out: list[tuple[str, Module, ast.Call, ast.AST]] = []
        candidates = {
            p for w in self.helper_words(path, function) for p in self._mentions.get(w, [])
        }
        for other in sorted(candidates):
            mod = self.module(other) if other != path else None
            if mod is None:
                continue

            def calls_it(call: ast.Call, mod: Module = mod) -> bool:
                name = mod.names.qualified(call.func)
                return name is not None and self.map.resolve(name) == (path, function)

            for site in mod.descend(function, calls_it):
                chain = mod.chain(site, mod.tree)
                enclosing = next((p for _, p in chain if isinstance(p, _FUNCTIONS)), None)
                if enclosing is not None:
                    out.append((other, mod, site, enclosing))
        return out

    def _by_decorator(self, wait: Hit, decorators: tuple[str, ...]) -> Hit | None:
        for qualified in decorators:
            found = self._swallowing_wrapper(qualified, 0)
            if found is not None:
                where, clause, instead = found
                return decorated(wait, qualified.rpartition(".")[2], where, clause, instead)
        return None

    def _swallowing_wrapper(self, qualified: str, depth: int) -> tuple[str, str, str] | None:
        """``(path:line, clause, what runs instead)`` of the handler in the decorator's wrapper
        that swallows the wrapped function's raise."""
        if depth > _DEPTH:
            return None
        target = self.map.resolve(qualified)
        if target is None or "." in target[1]:
            return None
        path, attr = target
        mod = self.module(path)
        if mod is None:
            return None
        definition = next(
            (
                node
                for node in mod.tree.body
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == attr
            ),
            None,
        )
        if definition is None:  # a re-export: follow the import
            alias = mod.names.aliases.get(attr)
            return self._swallowing_wrapper(alias, depth + 1) if alias else None
        mod.adopt(definition)
        mod.parents[definition] = mod.tree
        for site in _wrapped_calls(mod, definition):
            wrapper = _enclosing(mod, site)
            catcher = mod.catcher(site, wrapper) if wrapper is not None else None
            if catcher is not None:
                stmt, what = catcher
                line = getattr(what, "lineno", stmt.lineno)
                instead = "the rest of the wrapper"
                if isinstance(what, ast.ExceptHandler):
                    instead = mod._snippet(what.body[0])
                return f"{path}:{line}", _clause(mod, what), instead
        return None


def _wrapped_calls(mod: Module, definition: ast.AST) -> list[ast.Call]:
    """``await fn(...)`` in a function nested in ``definition`` where ``fn`` is a parameter of a
    function around it (the decorator's, or a decorator factory's inner one)."""
    out = []
    for node in ast.walk(definition):
        if not (isinstance(node, ast.Await) and isinstance(node.value, ast.Call)):
            continue
        func = node.value.func
        if not isinstance(func, ast.Name):
            continue
        enclosing = []
        parent = mod.parents.get(node)
        while parent is not None and parent is not mod.tree:
            if isinstance(parent, _FUNCTIONS):
                enclosing.append(parent)
            parent = mod.parents.get(parent)
        outer = {a.arg for f in enclosing[1:] for a in (*f.args.posonlyargs, *f.args.args)}
        if func.id in outer:
            out.append(node.value)
    return out


def _enclosing(mod: Module, node: ast.AST) -> ast.AST | None:
    parent = mod.parents.get(node)
    while parent is not None and not isinstance(parent, _FUNCTIONS):
        parent = mod.parents.get(parent)
    return parent


def _clause(mod: Catchers, what: ast.AST) -> str:
    if isinstance(what, ast.ExceptHandler):
        return handler_text(what)
    assert isinstance(what, ast.expr)
    return f"with {mod._code(what)}"
