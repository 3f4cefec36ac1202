"""What the user asked to see of a scan, and its output formats (text lines, GitHub workflow
commands, JSON data, SARIF 2.1.0 for GitHub code scanning): the CLI picks one and prints it.

Selection follows ruff: ``--select``/``--ignore`` take codes or prefixes (``LKP``, ``LKP00``,
``LKP001``); a finding is kept when the longest matching prefix comes from ``select``
(``ALL`` or no ``select`` keeps everything; at equal length ``ignore`` wins).
``min_severity`` drops what ranks lower.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import quote

from .files import Finding
from .messages import SEVERITY

RANKS = {"info": 0, "warning": 1, "error": 2}
_CODE = re.compile(r"^(ALL|[A-Z]+[0-9]*)$")
_SARIF_LEVEL = {"info": "note", "warning": "warning", "error": "error"}
_RULES = {
    "LKP001": "the fix is swallowed by a handler, a suppress block or a decorator",
    "LKP002": "behaviour change: the statements after the wait no longer run",
    "LKP003": "a #5359 workaround (timeout around the wait) the fix makes unnecessary",
    "LKP004": "the RunContext parameter is a method's first one: it receives the instance",
    "LKP005": "a wait in a background task: the raise ends the task, not the tool",
    "LKP900": "a file or directory that cannot be read, decoded or parsed",
}
SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def valid_selector(text: str) -> bool:
    return bool(_CODE.match(text.upper()))


def select(
    findings: list[Finding],
    chosen: list[str] | None = None,
    ignored: list[str] | None = None,
    min_severity: str = "info",
) -> list[Finding]:
    """The findings ``--select``/``--ignore``/``--min-severity`` keep."""
    chosen = [c.upper() for c in (chosen or ["ALL"])]
    ignored = [c.upper() for c in (ignored or [])]

    def longest(code: str, prefixes: list[str]) -> int:
        return max((0 if p == "ALL" else len(p) for p in prefixes if _matches(code, p)), default=-1)

    def keep(f: Finding) -> bool:
        chosen_by, ignored_by = longest(f.code, chosen), longest(f.code, ignored)
        return RANKS[f.severity] >= RANKS[min_severity] and chosen_by > ignored_by

    return [f for f in findings if keep(f)]


def _matches(code: str, prefix: str) -> bool:
    return prefix == "ALL" or code.startswith(prefix)


def display_path(path: str) -> str:
    """``path`` printable in any encoding's UTF-8 text: undecodable bytes of a file name
    (surrogate-escaped by ``os``) as ``\\xNN``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def as_json(findings: list[Finding]) -> list[dict[str, Any]]:
    """The findings for ``--json``, their paths and messages printable (``display_path``)."""
    return [
        {**f.as_dict(), "path": display_path(f.path), "message": display_path(f.message)}
        for f in findings
    ]


def lines(findings: list[Finding], github: bool = False) -> list[str]:
    """``path:line:col: CODE message`` per finding, or GitHub Actions workflow commands."""
    out = []
    for f in findings:
        path, message = display_path(f.path), display_path(f.message)
        if github:
            kind = {"info": "notice"}.get(f.severity, f.severity)
            where = ",".join(
                f"{k}={_gh(str(v), True)}"
                for k, v in (("file", path), ("line", f.line), ("col", f.col), ("title", f.code))
            )
            out.append(f"::{kind} {where}::{_gh(f'{f.code} {message}', False)}")
        else:
            out.append(f"{path}:{f.line}:{f.col}: {f.code} {message}")
    return out


def summary(files: int, findings: list[Finding]) -> str:
    count = {s: sum(1 for f in findings if f.severity == s) for s in ("warning", "info", "error")}
    counts = ", ".join(f"{n} {s}{'s' if n != 1 and s != 'info' else ''}" for s, n in count.items())
    return f"scanned {files} file{'s' if files != 1 else ''}: {counts}"


def _gh(text: str, property_: bool) -> str:
    """GitHub Actions workflow-command escaping (a property also escapes ``:`` and ``,``)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property_ else text


def sarif(findings: list[Finding], version: str) -> dict[str, Any]:
    """SARIF 2.1.0: one run, one rule per code, a result per finding; URIs percent-encode the
    file name's bytes (relative ones against the working directory)."""
    codes = sorted(SEVERITY)
    results = []
    for f in findings:
        raw = os.fsencode(f.path)
        uri = quote(raw.replace(os.sep.encode(), b"/"), safe="/")
        location: dict[str, Any] = {"uri": uri}
        if not os.path.isabs(f.path):
            location["uriBaseId"] = "SRCROOT"
        results.append(
            {
                "ruleId": f.code,
                "ruleIndex": codes.index(f.code),
                "level": _SARIF_LEVEL[f.severity],
                "message": {"text": display_path(f.message)},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": location,
                            "region": {"startLine": f.line, "startColumn": f.col},
                        }
                    }
                ],
            }
        )
    rules = [
        {
            "id": code,
            "name": code,
            "shortDescription": {"text": _RULES[code]},
            "defaultConfiguration": {"level": _SARIF_LEVEL[SEVERITY[code]]},
            "helpUri": "https://github.com/livekit/agents/issues/5359",
        }
        for code in codes
    ]
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "livekit-agents-patch scan",
                        "version": version,
                        "informationUri": "https://github.com/livekit/agents/issues/5359",
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
