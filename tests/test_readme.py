"""The README's snippets are real: every CLI call in a code block parses, every make target exists.

A renamed flag or target breaks this test, not a user's first copy-paste.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from livekit_agents_patch.arguments import PROG, build_parser

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)


def _blocks() -> list[str]:
    return FENCE.findall(README.read_text(encoding="utf-8"))


def _logical_lines(block: str) -> list[str]:
    """Shell lines with continuations joined and Dockerfile ``RUN`` prefixes dropped."""
    joined = re.sub(r"\\\n", " ", block)
    return [re.sub(r"^\s*(RUN|-)\s+", "", line) for line in joined.splitlines()]


def _calls(prefix: str) -> list[list[str]]:
    """Each ``prefix ...`` command in the README's code blocks, as argv after ``prefix``."""
    calls = []
    for block in _blocks():
        for line in _logical_lines(block):
            for part in re.split(r"&&|\|\||;|\|", line):
                part = re.sub(r"<[^<>\n]*>", "x", part)  # placeholders such as <path to it>
                try:
                    words = shlex.split(part, comments=True)
                except ValueError:
                    continue
                if words[:1] == [prefix]:
                    redirect = [i for i, w in enumerate(words) if w[:1] in "<>" or w[:2] == "2>"]
                    calls.append(words[1 : redirect[0] if redirect else None])
    return calls


CLI_CALLS = _calls(PROG)
MAKE_CALLS = _calls("make")


def test_the_readme_has_calls_to_check() -> None:
    assert len(CLI_CALLS) >= 10 and len(MAKE_CALLS) >= 5


@pytest.mark.parametrize("argv", CLI_CALLS, ids=[" ".join(a) for a in CLI_CALLS])
def test_every_cli_call_in_the_readme_parses(argv: list[str]) -> None:
    try:
        build_parser().parse_args(argv)
    except SystemExit as e:  # --help/--version exit 0; a bad call exits 2
        assert e.code == 0, f"`{PROG} {' '.join(argv)}` does not parse"


def test_every_make_target_in_the_readme_exists() -> None:
    targets = {word for argv in MAKE_CALLS for word in argv if "=" not in word}
    assert targets, "no make call found"
    for target in sorted(targets):
        done = subprocess.run(
            ["make", "-n", target], cwd=README.parent, capture_output=True, text=True
        )
        assert "No rule to make target" not in done.stderr, target
