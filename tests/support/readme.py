"""The README's fenced code blocks, by section, for the tests that run or check them."""

from __future__ import annotations

import re

from .fake_install import REPO


def section(title: str) -> str:
    """The text of the README section ``## title`` (up to the next ``## ``)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no section '## {title}' in README.md"
    return match.group(1)


def blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of each fenced block in ``text``, in order."""
    return [
        (m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)
    ]
