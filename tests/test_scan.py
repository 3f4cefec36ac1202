"""``scan``: exact findings on fixtures written here, a safe twin for every warning, the CLI.

Every fixture is a small tool module written into ``tmp_path``; expected findings are exact
``(line, col, code)`` triples computed from the fixture's own text (``at``), so a rule that
fires on the wrong call, on the wrong line, or not at all fails. Each warning rule has its
negative control: the same code made safe gives no warning (and, where the wait still raises
after the fix, the behaviour-change info instead).
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from support.cli import cli, json_of

from livekit_agents_patch.scan.files import Finding, iter_files, scan

Triple = tuple[int, int, str]

HEAD = """\
import asyncio
import contextlib
from livekit import agents
import livekit.agents
from livekit.agents import RunContext, StopResponse, function_tool
from livekit.agents.voice.speech_handle import SpeechInterruptedError
"""


def at(source: str, needle: str, code: str, nth: int = 0) -> Triple:
    """``(line, col, code)`` of the ``nth`` occurrence of ``needle`` in ``source`` (1-based)."""
    index = -1
    for _ in range(nth + 1):
        index = source.index(needle, index + 1)
    line = source.count("\n", 0, index) + 1
    col = index - (source.rfind("\n", 0, index) + 1) + 1
    return (line, col, code)


def write(tmp_path: Path, body: str, name: str = "tool.py") -> tuple[Path, str]:
    source = HEAD + textwrap.dedent(body)
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    return path, source


def findings(tmp_path: Path, body: str) -> tuple[list[Finding], str]:
    path, source = write(tmp_path, body)
    return scan([str(path)]).findings, source


def triples(tmp_path: Path, body: str) -> tuple[list[Triple], str]:
    found, source = findings(tmp_path, body)
    return [(f.line, f.col, f.code) for f in found], source


WAIT = "ctx.wait_for_playout()"

# --- LKP001: each handler form that catches SpeechInterruptedError ---------------------------

CATCHING = [
    "except:",
    "except Exception:",
    "except Exception as e:",
    "except BaseException:",
    "except StopResponse:",
    "except SpeechInterruptedError:",
    "except (ValueError, Exception):",
    "except (KeyError, agents.llm.StopResponse) as e:",
    "except livekit.agents.voice.speech_handle.SpeechInterruptedError:",
    "except builtins.Exception:",
]


@pytest.mark.parametrize("clause", CATCHING)
def test_a_handler_that_does_not_reraise_swallows_the_fix(tmp_path: Path, clause: str) -> None:
    found, source = findings(
        tmp_path,
        f"""
        @function_tool
        async def end_call(ctx: RunContext) -> str:
            try:
                await ctx.wait_for_playout()
                await hang_up()
            {clause}
                return "sorry, that failed"
            return "done"
        """,
    )
    assert [(f.line, f.col, f.code) for f in found] == [at(source, WAIT, "LKP001")]
    (finding,) = found
    assert finding.severity == "warning"
    handler_line = at(source, clause, "")[0]
    assert finding.message.startswith(f"the fix is swallowed: `{clause}` (line {handler_line})")
    assert f'(line {handler_line + 1}: `return "sorry, that failed"`)' in finding.message
    assert (
        "Next: add `except StopResponse: raise` (`from livekit.agents.llm import StopResponse`"
        in finding.message
    )


REBOUND = [c.rstrip(":").replace(" as e", "") + " as e:" for c in CATCHING if c != "except:"]


@pytest.mark.parametrize(
    ("clause", "reraise"),
    [(c, "raise") for c in CATCHING]
    + [(c, "raise e") for c in REBOUND]
    + [(c, "if isinstance(e, StopResponse): raise") for c in REBOUND],
)
def test_negative_control_the_same_handler_reraising_is_safe(
    tmp_path: Path, clause: str, reraise: str
) -> None:
    found, source = triples(
        tmp_path,
        f"""
        async def end_call(ctx: RunContext) -> str:
            try:
                await ctx.wait_for_playout()
                await hang_up()
            {clause}
                log("failed")
                {reraise}
            return "done"
        """,
    )
    assert found == [at(source, WAIT, "LKP002")]


def test_a_reraise_nested_deeper_than_the_handler_top_level_does_not_count(
    tmp_path: Path,
) -> None:
    found, source = triples(
        tmp_path,
        """
        async def end_call(ctx: RunContext) -> str:
            try:
                await ctx.wait_for_playout()
            except Exception as e:
                if isinstance(e, ValueError):
                    raise
                for _ in range(1):
                    raise
                return "sorry"
        """,
    )
    assert found == [at(source, WAIT, "LKP001")]


@pytest.mark.parametrize(
    "clause",
    ["except ValueError:", "except asyncio.CancelledError:", "except (KeyError, ToolError):"],
)
def test_a_handler_that_cannot_catch_it_is_not_a_warning(tmp_path: Path, clause: str) -> None:
    found, source = triples(
        tmp_path,
        f"""
        async def end_call(ctx: RunContext) -> None:
            try:
                await ctx.wait_for_playout()
            {clause}
                return None
        """,
    )
    assert found == [at(source, WAIT, "LKP002")]


# --- handler order, nesting ------------------------------------------------------------------


@pytest.mark.parametrize("first", ["SpeechInterruptedError", "StopResponse", "BaseException"])
def test_an_earlier_reraising_handler_makes_it_safe(tmp_path: Path, first: str) -> None:
    found, source = triples(
        tmp_path,
        f"""
        async def end_call(ctx: RunContext) -> str:
            try:
                await ctx.wait_for_playout()
            except {first}:
                raise
            except Exception:
                return "sorry"
            return "done"
        """,
    )
    assert found == [at(source, WAIT, "LKP002")]


def test_handler_order_counts_a_later_reraise_is_too_late(tmp_path: Path) -> None:
    found, source = findings(
        tmp_path,
        """
        async def end_call(ctx: RunContext) -> str:
            try:
                await ctx.wait_for_playout()
            except Exception:
                return "sorry"
            except SpeechInterruptedError:
                raise
        """,
    )
    assert [(f.line, f.col, f.code) for f in found] == [at(source, WAIT, "LKP001")]
    assert f"(line {at(source, 'except Exception:', '')[0]})" in found[0].message


def test_at_any_depth_an_outer_handler_swallows_what_an_inner_one_reraises(
    tmp_path: Path,
) -> None:
    found, source = findings(
        tmp_path,
        """
        async def end_call(ctx: RunContext) -> str:
            try:
                for attempt in range(3):
                    if attempt:
                        async with lock:
                            try:
                                await ctx.wait_for_playout()
                            except StopResponse:
                                raise
            except Exception:
                return "sorry"
            return "done"
        """,
    )
    assert [(f.line, f.col, f.code) for f in found] == [at(source, WAIT, "LKP001")]
    assert f"(line {at(source, 'except Exception:', '')[0]})" in found[0].message


def test_the_innermost_swallowing_handler_is_named(tmp_path: Path) -> None:
    found, source = findings(
        tmp_path,
        """
        async def end_call(ctx: RunContext) -> str:
            try:
                try:
                    await ctx.wait_for_playout()
                except BaseException:
                    return "inner"
            except SpeechInterruptedError:
                raise
        """,
    )
    assert [(f.line, f.col, f.code) for f in found] == [at(source, WAIT, "LKP001")]
    assert f"(line {at(source, 'except BaseException:', '')[0]})" in found[0].message


def test_a_wait_in_a_handler_else_or_finally_is_not_guarded_by_that_try(tmp_path: Path) -> None:
    found, source = triples(
        tmp_path,
        """
        async def a(ctx: RunContext) -> None:
            try:
                pass
            except Exception:
                await ctx.wait_for_playout()

        async def b(ctx: RunContext) -> None:
            try:
                pass
            except Exception:
                return
            else:
                await ctx.wait_for_playout()
            finally:
                await ctx.wait_for_playout()
        """,
    )
    assert found == [at(source, WAIT, "LKP002", n) for n in range(3)]


def test_a_try_outside_the_function_does_not_guard_it(tmp_path: Path) -> None:
    found, source = triples(
        tmp_path,
        """
        try:
            async def end_call(ctx: RunContext) -> None:
                await ctx.wait_for_playout()
        except Exception:
            pass
        """,
    )
    assert found == [at(source, WAIT, "LKP002")]


def test_except_star_is_a_handler_too(tmp_path: Path) -> None:
    found, source = triples(
        tmp_path,
        """
        async def end_call(ctx: RunContext) -> None:
            try:
                await ctx.wait_for_playout()
            except* Exception:
                pass
        """,
    )
    assert found == [at(source, WAIT, "LKP001")]


# --- suppress --------------------------------------------------------------------------------

SUPPRESSING = [
    ("import contextlib", "contextlib.suppress(Exception)"),
    ("from contextlib import suppress", "suppress(ValueError, BaseException)"),
    ("import contextlib as cl", "cl.suppress(StopResponse)"),
    ("from contextlib import suppress as quiet", "quiet(SpeechInterruptedError)"),
]


@pytest.mark.parametrize(("imports", "call"), SUPPRESSING)
def test_suppress_of_a_catching_type_swallows_the_fix(
    tmp_path: Path, imports: str, call: str
) -> None:
    found, source = findings(
        tmp_path,
        f"""
        {imports}

        async def book(ctx: RunContext) -> str:
            with {call}:
                await ctx.wait_for_playout()
            await confirm_booking()
            return "booked"
        """,
    )
    assert [(f.line, f.col, f.code) for f in found] == [at(source, WAIT, "LKP001")]
    confirm = at(source, "await confirm_booking()", "")[0]
    assert found[0].message.startswith(
        f"the fix is swallowed: `{call}` (line {at(source, 'with ', '')[0]}) suppresses"
    )
    assert f"the tool goes on at line {confirm} (`await confirm_booking()`)" in found[0].message


def test_negative_control_suppress_of_narrower_types_is_safe(tmp_path: Path) -> None:
    found, source = triples(
        tmp_path,
        """
        async def book(ctx: RunContext) -> None:
            with contextlib.suppress(ValueError, KeyError), open("x"):
                await ctx.wait_for_playout()
        """,
    )
    assert found == [at(source, WAIT, "LKP002")]


# --- what is a tool's playout wait -----------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [
        "async def tool(self, ctx: RunContext[UserData]) -> None:",
        "async def tool(self, ctx: 'RunContext[UserData]') -> None:",
        "async def tool(self, *, ctx: agents.RunContext) -> None:",
        "async def tool(self, x: int, /, ctx: livekit.agents.RunContext[UserData]) -> None:",
        "async def tool(self, ctx: Ctx) -> None:",
        "async def tool(self, ctx: Rel) -> None:",
        "async def tool(self, ctx: Optional[RunContext]) -> None:",
        "async def tool(self, ctx: RunContext | None = None) -> None:",
        "def tool(self, ctx: 'agents.RunContext'):",
    ],
)
def test_methods_and_every_annotation_form(tmp_path: Path, signature: str) -> None:
    found, source = triples(
        tmp_path,
        f"""
        from livekit.agents import RunContext as Ctx
        from ...voice.events import RunContext as Rel

        class Agent:
            @function_tool()
            {signature}
                handle = ctx.wait_for_playout()
        """,
    )
    assert found == [at(source, WAIT, "LKP002")]


def test_other_receivers_are_not_findings(tmp_path: Path) -> None:
    found, _ = triples(
        tmp_path,
        """
        from livekit.agents import SpeechHandle

        class Agent:
            async def say(self, ctx: RunContext, handle: SpeechHandle, other) -> None:
                speech = ctx.session.say("hello")
                await speech.wait_for_playout()
                await handle.wait_for_playout()
                await other.wait_for_playout()
                await self.wait_for_playout()
                await ctx.session.current_speech.wait_for_playout()
                await ctx.wait_for_playout(raise_on_interrupt=False)

        async def untyped(ctx) -> None:
            await ctx.wait_for_playout()

        async def shadowed(ctx: RunContext) -> None:
            async def inner(ctx: SpeechHandle) -> None:
                await ctx.wait_for_playout()
        """,
    )
    assert found == []


def test_a_closure_over_the_tool_context_is_a_wait_of_its_own_function(tmp_path: Path) -> None:
    found, source = findings(
        tmp_path,
        """
        async def tool(ctx: RunContext) -> None:
            async def inner() -> None:
                await ctx.wait_for_playout()
            try:
                await inner()
            except Exception:
                pass
            async def other() -> None:
                await ctx.wait_for_playout()
            asyncio.create_task(other())
        """,
    )
    assert [(f.line, f.col, f.code) for f in found] == [
        at(source, WAIT, "LKP001", 0),
        at(source, WAIT, "LKP005", 1),  # only ever started as a task
    ]
    call = at(source, "await inner()", "")[0]
    assert f", in `tool`, around its call to `inner` (line {call})) catches" in found[0].message


def test_a_handler_in_a_caller_of_the_waiting_helper_swallows_it(tmp_path: Path) -> None:
    found, source = findings(
        tmp_path,
        """
        class Agent:
            async def _goodbye(self, ctx: RunContext) -> None:
                await ctx.wait_for_playout()
                await hang_up()

            async def _close(self, ctx: RunContext) -> None:
                await self._goodbye(ctx)

            @function_tool()
            async def end_call(self, ctx: RunContext) -> str:
                try:
                    await self._close(ctx)
                except Exception:
                    return "sorry"
                return "bye"

        class Other:
            async def _goodbye(self, ctx: RunContext) -> None:
                await ctx.wait_for_playout()

            async def end_call(self, ctx: RunContext) -> str:
                try:
                    await Agent()._goodbye(ctx)
                except Exception:
                    return "sorry"
                return "bye"
        """,
    )
    handler = at(source, "except Exception:", "")[0]
    call = at(source, "await self._close(ctx)", "")[0]
    assert [(f.line, f.col, f.code) for f in found] == [
        at(source, WAIT, "LKP001", 0),
        at(source, WAIT, "LKP002", 1),
    ]
    assert found[0].message.startswith(
        f"the fix is swallowed: `except Exception:` (line {handler}, in `end_call`, around its "
        f"call to `self._close` (line {call})) catches SpeechInterruptedError"
    )


def test_negative_control_a_caller_that_lets_it_through_or_does_not_await_it(
    tmp_path: Path,
) -> None:
    found, source = triples(
        tmp_path,
        """
        async def goodbye(ctx: RunContext) -> None:
            await ctx.wait_for_playout()

        async def end_call(ctx: RunContext) -> str:
            try:
                await goodbye(ctx)
            except StopResponse:
                raise
            except Exception:
                return "sorry"
            try:
                asyncio.create_task(goodbye(ctx))
            except Exception:
                return "sorry"
            return "bye"
        """,
    )
    assert found == [at(source, WAIT, "LKP002")]


# --- LKP002: the message ---------------------------------------------------------------------


def test_behaviour_change_names_the_lines_after_and_the_first_awaited_call(
    tmp_path: Path,
) -> None:
    found, source = findings(
        tmp_path,
        """
        async def end_call(ctx: RunContext) -> None:
            await ctx.session.say("goodbye")
            if ctx.userdata.hang_up:
                await ctx.wait_for_playout()
                logger.info("hanging up")
                await job_ctx.api.room.delete_room(
                    DeleteRoomRequest(room=job_ctx.room.name)
                )
            else:
                logger.info("not this one")
            await ctx.userdata.log()
        """,
    )
    first = at(source, 'logger.info("hanging up")', "")[0]
    last = at(source, "await ctx.userdata.log()", "")[0]
    assert [(f.line, f.col, f.code, f.severity) for f in found] == [
        (*at(source, WAIT, "LKP002"), "info")
    ]
    assert found[0].message == (
        "behaviour change: with the fix this raises SpeechInterruptedError when the preamble is "
        f"interrupted, and the tool ends quietly there: the statements after it (lines {first}-"
        f"{last}, first the call to `job_ctx.api.room.delete_room`) no longer run"
    )


def test_behaviour_change_when_nothing_follows(tmp_path: Path) -> None:
    found, _ = findings(
        tmp_path,
        """
        async def end_call(ctx: RunContext) -> None:
            return await ctx.wait_for_playout()
        """,
    )
    assert found[0].message.endswith("ends quietly there (nothing follows the wait)")


# --- LKP003: workarounds ---------------------------------------------------------------------


def test_timeouts_around_the_wait_are_workarounds(tmp_path: Path) -> None:
    found, source = triples(
        tmp_path,
        """
        from asyncio import wait_for, timeout

        async def a(ctx: RunContext) -> None:
            await asyncio.wait_for(ctx.wait_for_playout(), timeout=5)
            await wait_for(fut=ctx.wait_for_playout(), timeout=5)

        async def b(ctx: RunContext, handle: SpeechHandle) -> None:
            async with asyncio.timeout(5):
                await ctx.wait_for_playout()
            async with timeout(5):
                await handle.wait_for_playout()
            await asyncio.wait_for(handle.wait_for_playout(), 5)
        """,
    )
    assert found == [
        at(source, "asyncio.wait_for(ctx", "LKP003"),
        at(source, WAIT, "LKP002", 0),
        at(source, "wait_for(fut=", "LKP003"),
        at(source, WAIT, "LKP002", 1),
        at(source, "asyncio.timeout(5)", "LKP003"),
        at(source, WAIT, "LKP002", 2),
    ]


# --- noqa ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("comment", "left"),
    [
        ("# noqa", []),
        ("# noqa: LKP001", []),
        ("#noqa:LKP002,LKP001", []),
        ("# NOQA: lkp001", []),
        ("# noqa: LKP002", ["LKP001"]),
        ("# noqa: E501", ["LKP001"]),
        ("# no qa", ["LKP001"]),
    ],
)
def test_noqa_on_the_calls_line(tmp_path: Path, comment: str, left: list[str]) -> None:
    found, _ = triples(
        tmp_path,
        f"""
        async def end_call(ctx: RunContext) -> None:
            try:
                await ctx.wait_for_playout()  {comment}
            except Exception:
                pass
        """,
    )
    assert [code for _, _, code in found] == left


# --- files that cannot be read ---------------------------------------------------------------


def test_unreadable_files_are_one_error_each_and_the_scan_goes_on(tmp_path: Path) -> None:
    mention = b"# ctx.wait_for_playout()\n"
    (tmp_path / "a_syntax.py").write_bytes(mention + b"async def f(ctx):\n    await (\n")
    (tmp_path / "b_latin1.py").write_bytes(mention + b"s = 'caf\xe9'\n")
    (tmp_path / "c_declared.py").write_bytes(
        b"# -*- coding: latin-1 -*-\nasync def f(ctx: RunContext):\n"
        b"    await ctx.wait_for_playout()  # caf\xe9\n"
    )
    (tmp_path / "d_bom.py").write_bytes(
        b"\xef\xbb\xbfasync def f(ctx: RunContext):\n    await ctx.wait_for_playout()\n"
    )
    (tmp_path / "e_nul.py").write_bytes(mention + b"x = 1\x00\n")
    os.symlink(tmp_path / "missing.py", tmp_path / "f_dangling.py")
    os.mkfifo(tmp_path / "g_fifo.py")
    _, source = write(
        tmp_path,
        """
        async def end_call(ctx: RunContext) -> None:
            await ctx.wait_for_playout()
        """,
        name="h_tool.py",
    )
    result = scan([str(tmp_path)])
    got = [(Path(f.path).name, f.line, f.col, f.code, f.severity) for f in result.findings]
    assert got == [
        ("a_syntax.py", 3, 11, "LKP900", "error"),
        ("b_latin1.py", 2, 9, "LKP900", "error"),
        ("c_declared.py", 3, 11, "LKP002", "info"),
        ("d_bom.py", 2, 11, "LKP002", "info"),
        ("e_nul.py", 1, 1, "LKP900", "error"),
        ("f_dangling.py", 1, 1, "LKP900", "error"),
        ("g_fifo.py", 1, 1, "LKP900", "error"),
        ("h_tool.py", *at(source, WAIT, "LKP002")[:2], "LKP002", "info"),
    ]
    messages = {Path(f.path).name: f.message for f in result.findings}
    assert messages["a_syntax.py"] == "syntax error: '(' was never closed"
    assert messages["b_latin1.py"].startswith("cannot decode: byte 0xe9 is not UTF-8")
    assert "source code string cannot contain null bytes" in messages["e_nul.py"]
    assert messages["f_dangling.py"] == "cannot read: No such file or directory"
    assert messages["g_fifo.py"] == "cannot read: not a regular file"
    assert result.files == 8
    assert int(result.exit) == 1


def test_a_file_that_cannot_hold_a_wait_is_not_parsed(tmp_path: Path) -> None:
    """Python 3.12 syntax scanned by 3.11, a broken or non-UTF-8 file: no wait, no finding."""
    (tmp_path / "generic.py").write_text("def first[T](xs: list[T]) -> T:\n    return xs[0]\n")
    (tmp_path / "fstring.py").write_text("x = f\"{'a\\n'.join(['b'])}\"\n")
    (tmp_path / "broken.py").write_text("def (:\n")
    (tmp_path / "latin1.py").write_bytes(b"s = 'caf\xe9'\n")
    result = scan([str(tmp_path)])
    assert (result.files, result.findings, int(result.exit)) == (4, [], 0)
    # the same Python 3.12 syntax in a file with a tool's wait is reported, not misjudged
    (tmp_path / "generic.py").write_text(
        "async def tool[T](ctx: RunContext[T]) -> None:\n    await ctx.wait_for_playout()\n"
    )
    (finding,) = scan([str(tmp_path)]).findings
    assert (Path(finding.path).name, finding.code, finding.severity) == (
        "generic.py",
        "LKP900",
        "error",
    )


def test_columns_count_characters_not_bytes(tmp_path: Path) -> None:
    found, source = triples(
        tmp_path,
        """
        async def end_call(ctx: RunContext) -> None:
            é = "ü"; await ctx.wait_for_playout()
        """,
    )
    assert found == [at(source, WAIT, "LKP002")]


# --- which files ----------------------------------------------------------------------------


def test_walk_skips_environments_hidden_dirs_and_links_out_of_the_tree(tmp_path: Path) -> None:
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    for relative in [
        "app/agent.py",
        "app/sub/tools.py",
        ".venv/lib/x.py",
        "venv2/lib/x.py",
        "lib/site-packages/pkg/x.py",
        "web/node_modules/x.py",
        ".git/hooks/x.py",
        ".hidden/x.py",
        "app/__pycache__/x.py",
    ]:
        (tree / relative).parent.mkdir(parents=True, exist_ok=True)
        (tree / relative).write_text("x = 1\n")
    (tree / "venv2" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (tree / "app" / "notes.txt").write_text("not python\n")
    outside.mkdir()
    (outside / "far.py").write_text("x = 1\n")
    os.symlink(outside / "far.py", tree / "app" / "far_link.py")
    os.symlink(outside, tree / "app" / "outside_dir")
    os.symlink(tree / "app" / "agent.py", tree / "app" / "near_link.py")
    got = [os.path.relpath(p, tree) for p in iter_files(str(tree))]
    assert got == ["app/agent.py", "app/near_link.py", "app/sub/tools.py"]
    assert list(iter_files(str(tree / "app" / "notes.txt"))) == [str(tree / "app/notes.txt")]


# --- the command line ------------------------------------------------------------------------

SWALLOWING = """
async def end_call(ctx: RunContext) -> str:
    try:
        await ctx.wait_for_playout()
    except Exception:
        return "sorry"
"""
SAFE = """
async def end_call(ctx: RunContext) -> None:
    await ctx.wait_for_playout()
"""


def test_cli_text_output_is_sorted_with_a_summary_and_exit_1_on_a_warning(
    tmp_path: Path,
) -> None:
    _, warn = write(tmp_path, SWALLOWING, name="b.py")
    _, safe = write(tmp_path, SAFE, name="a.py")
    done = cli("scan", str(tmp_path))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    a_line, a_col, _ = at(safe, WAIT, "")
    b_line, b_col, _ = at(warn, WAIT, "")
    assert lines[0].startswith(f"{tmp_path}/a.py:{a_line}:{a_col}: LKP002 behaviour change")
    assert lines[1].startswith(f"{tmp_path}/b.py:{b_line}:{b_col}: LKP001 the fix is swallowed")
    assert lines[2:] == ["scanned 2 files: 1 warning, 1 info, 0 errors"]
    assert done.stderr == ""


def test_cli_exit_0_with_only_info_and_1_with_only_an_error(tmp_path: Path) -> None:
    write(tmp_path, SAFE, name="a.py")
    done = cli("scan", str(tmp_path))
    assert done.returncode == 0, done.stdout
    (tmp_path / "broken.py").write_text("await ctx.wait_for_playout(\n")
    done = cli("scan", str(tmp_path))
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == "scanned 2 files: 0 warnings, 1 info, 1 error"


def test_cli_json(tmp_path: Path) -> None:
    path, source = write(tmp_path, SWALLOWING)
    data = json_of(cli("scan", "--json", str(tmp_path)))
    assert set(data) == {"exit", "files", "findings"}
    assert data["exit"] == 1 and data["files"] == 1
    findings = data["findings"]
    assert isinstance(findings, list) and len(findings) == 1
    line, col, _ = at(source, WAIT, "")
    assert {k: v for k, v in findings[0].items() if k != "message"} == {
        "path": str(path),
        "line": line,
        "col": col,
        "code": "LKP001",
        "severity": "warning",
    }


def test_cli_github_format(tmp_path: Path) -> None:
    _, source = write(tmp_path, SWALLOWING, name="a,b.py")
    _, safe = write(tmp_path, SAFE, name="c.py")
    done = cli("scan", "--format", "github", str(tmp_path))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    line, col, _ = at(source, WAIT, "")
    assert lines[0].startswith(
        f"::warning file={tmp_path}/a%2Cb.py,line={line},col={col},title=LKP001::LKP001 the fix"
    )
    line, col, _ = at(safe, WAIT, "")
    assert lines[1].startswith(f"::notice file={tmp_path}/c.py,line={line},col={col},title=")
    assert lines[2] == "scanned 2 files: 1 warning, 1 info, 0 errors"


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    done = cli("scan", str(tmp_path / "nope"))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"error: no such file or directory: {tmp_path}/nope. Next:")
    assert json_of(cli("scan", "--json", str(tmp_path / "nope")))["exit"] == 2
    done = cli("scan", "--json", "--format", "github", str(tmp_path))
    assert done.returncode == 2
    assert "not allowed with argument" in json.loads(done.stdout)["error"]
    assert cli("scan").returncode == 2
    assert json_of(cli("scan", "--json"))["exit"] == 2
    helped = json_of(cli("scan", "--json", "--help"))
    assert helped["exit"] == 0 and "--format {text,github,sarif}" in str(helped["help"])


def test_the_scan_never_imports_or_runs_the_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "async def t(ctx: RunContext):\n    await ctx.wait_for_playout()\n"
    )
    assert cli("scan", str(tmp_path)).returncode == 0
    assert not marker.exists()


def test_imports_at_any_depth_are_resolved(tmp_path: Path) -> None:
    found, source = triples(
        tmp_path,
        """
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            from livekit.agents import RunContext as RC

        class Agent:
            async def tool(self, ctx: "RC[UserData]") -> None:
                try:
                    from contextlib import suppress as hush
                except ImportError:
                    raise
                with hush(BaseException):
                    await ctx.wait_for_playout()
        """,
    )
    assert found == [at(source, WAIT, "LKP001")]


def test_many_files_in_worker_processes_give_the_same_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import livekit_agents_patch.scan.files as scanning

    for i in range(12):
        write(tmp_path, SWALLOWING if i % 3 else SAFE, name=f"d{i % 4}/m{i}.py")
    (tmp_path / "d0" / "broken.py").write_text("ctx.wait_for_playout(\n")
    one_process = scan([str(tmp_path)])
    monkeypatch.setattr(scanning, "_PER_WORKER", 1)
    monkeypatch.setattr(scanning, "_CHUNK", 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert scan([str(tmp_path)]) == one_process

    def no_processes(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied: /dev/shm")

    monkeypatch.setattr(scanning, "ProcessPoolExecutor", no_processes)
    assert scan([str(tmp_path)]) == one_process  # falls back to one process
    assert (one_process.files, len(one_process.findings)) == (13, 13)


@pytest.mark.parametrize(
    ("after", "example"),
    [
        (
            "if not check(x):\n        raise ToolError(str(x))\n    self.complete(x)",
            "self.complete",
        ),
        ("n = count(x)\n    log.info(n)\n    await hang_up()", "hang_up"),
        ("n = count(x)\n    raise ToolError(n)", "count"),
    ],
)
def test_the_example_is_the_call_most_likely_to_be_the_lost_side_effect(
    tmp_path: Path, after: str, example: str
) -> None:
    found, _ = findings(
        tmp_path, f"async def tool(self, ctx: RunContext) -> None:\n    await {WAIT}\n    {after}\n"
    )
    assert f"first the call to `{example}`) no longer run" in found[0].message


def test_a_handler_that_falls_through_names_where_the_tool_goes_on(tmp_path: Path) -> None:
    found, source = findings(
        tmp_path,
        """
        async def cut_call(ctx: RunContext) -> str:
            try:
                await ctx.wait_for_playout()
            except Exception:
                pass
            ctx.session.shutdown()
            return "Call ended."
        """,
    )
    line = at(source, "ctx.session.shutdown()", "")[0]
    assert [(f.line, f.col, f.code) for f in found] == [at(source, WAIT, "LKP001")]
    assert f"(line {line - 1}: `pass`), then the tool goes on at line {line} (`ctx.session" in (
        found[0].message
    )


def test_a_file_reached_twice_is_scanned_once(tmp_path: Path) -> None:
    path, source = write(tmp_path, SAFE, name="app/a.py")
    os.symlink(path, tmp_path / "app" / "b_link.py")
    result = scan([str(tmp_path), str(path), f"{tmp_path}/./app/a.py"])
    assert (result.files, [(f.path, f.line) for f in result.findings]) == (
        1,
        [(str(path), at(source, WAIT, "")[0])],
    )
