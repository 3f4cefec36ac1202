"""``scan`` with the tree as one program: decorators and callers in other files, unannotated
helpers, background tasks, the first parameter of a method, a step already decided, and the
LKP002 message (the first lost effect, state left set). Each class has exact findings and its
negative control: the same code made safe gives no warning."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from test_scan import WAIT, at, triples

from livekit_agents_patch.scan.files import Finding, scan


def tree(tmp_path: Path, files: dict[str, str]) -> dict[str, str]:
    out = {}
    for name, body in files.items():
        text = textwrap.dedent(body)
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        out[name] = text
    return out


def scanned(tmp_path: Path) -> list[tuple[str, int, int, str]]:
    return [(_rel(tmp_path, f), f.line, f.col, f.code) for f in scan([str(tmp_path)]).findings]


def _rel(root: Path, f: Finding) -> str:
    return Path(f.path).relative_to(root).as_posix()


DECORATOR = """\
import functools

TOOL_ERROR = "sorry, something went wrong"

def clinic_tool(fn):
    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        {handler}
            return TOOL_ERROR
    return wrapper
"""

TOOLS = """\
from livekit.agents import Agent, RunContext, function_tool
from app.tools.utils import clinic_tool

class Clinic(Agent):
    @function_tool()
    @clinic_tool
    async def book(self, ctx: RunContext, slot: str) -> str:
        await ctx.session.say("booking")
        await ctx.wait_for_playout()
        await ctx.userdata.calendar.book(slot)
        return "booked"
"""


@pytest.mark.parametrize("relative", [False, True])
def test_a_decorator_in_another_module_swallows_every_tool_it_wraps(
    tmp_path: Path, relative: bool
) -> None:
    tools = TOOLS.replace("from app.tools.utils", "from .utils") if relative else TOOLS
    src = tree(
        tmp_path,
        {
            "app/tools/utils.py": DECORATOR.format(handler="except Exception:"),
            "app/tools/clinic.py": tools,
        },
    )
    found = scan([str(tmp_path)]).findings
    wait = at(src["app/tools/clinic.py"], WAIT, "LKP001")
    assert [(_rel(tmp_path, f), f.line, f.col, f.code) for f in found] == [
        ("app/tools/clinic.py", *wait)
    ]
    handler = at(src["app/tools/utils.py"], "except Exception:", "")[0]
    assert f"`@clinic_tool`: its wrapper's `except Exception:` ({tmp_path}/app/tools/utils.py:"
    assert f"app/tools/utils.py:{handler})" in found[0].message
    assert "runs `return TOOL_ERROR`" in found[0].message
    assert "`except StopResponse: raise` (`from livekit.agents.llm import StopResponse`" in (
        found[0].message
    )


def test_negative_control_a_decorator_that_lets_it_through_is_safe(tmp_path: Path) -> None:
    safe = DECORATOR.format(
        handler="except StopResponse:\n            raise\n        except Exception:"
    )
    src = tree(tmp_path, {"app/tools/utils.py": safe, "app/tools/clinic.py": TOOLS})
    assert scanned(tmp_path) == [
        ("app/tools/clinic.py", *at(src["app/tools/clinic.py"], WAIT, "LKP002"))
    ]


HELPER = """\
import contextlib
from livekit.agents import RunContext

async def speak_first(ctx, text):
    await ctx.session.say(text)
    await ctx.wait_for_playout()
    await ctx.session.generate_reply()
"""

CALLER = """\
from livekit.agents import RunContext, function_tool
from agent.speech import speak_first

@function_tool
async def greet(context: RunContext) -> str:
    {guard}
    return "ok"
"""


@pytest.mark.parametrize(
    ("guard", "code"),
    [
        (
            "try:\n        await speak_first(context, 'hi')\n    except Exception:\n        pass",
            "LKP001",
        ),
        ("await speak_first(context, 'hi')", "LKP002"),  # the negative control: no warning
    ],
)
def test_an_unannotated_helper_passed_a_run_context_by_a_caller_in_another_file(
    tmp_path: Path, guard: str, code: str
) -> None:
    src = tree(
        tmp_path,
        {"agent/speech.py": HELPER, "agent/tools.py": CALLER.format(guard=guard)},
    )
    found = scan([str(tmp_path)]).findings
    assert [(_rel(tmp_path, f), f.line, f.col, f.code) for f in found] == [
        ("agent/speech.py", *at(src["agent/speech.py"], WAIT, code))
    ]
    if code == "LKP001":
        assert "in `greet`, around its call to `speak_first`" in found[0].message
        assert f"{tmp_path}/agent/tools.py:" in found[0].message


def test_an_unannotated_helper_that_suppresses_its_own_wait_is_swallowed_once_confirmed(
    tmp_path: Path,
) -> None:
    helper = HELPER.replace(
        "    await ctx.wait_for_playout()\n",
        "    with contextlib.suppress(Exception):\n        await ctx.wait_for_playout()\n",
    )
    caller = CALLER.format(guard="await speak_first(context, 'hi')")
    src = tree(tmp_path, {"agent/speech.py": helper, "agent/tools.py": caller})
    assert scanned(tmp_path) == [("agent/speech.py", *at(src["agent/speech.py"], WAIT, "LKP001"))]
    # negative control: the same helper, never given a RunContext, is no tool wait at all
    tree(tmp_path, {"agent/tools.py": caller.replace("speak_first(context", "speak_first(None")})
    assert scanned(tmp_path) == []


def test_negative_control_an_unannotated_helper_no_one_passes_a_context_is_no_finding(
    tmp_path: Path,
) -> None:
    caller = CALLER.format(guard="await speak_first(handle, 'hi')").replace(
        "context: RunContext", "context: RunContext, handle: object"
    )
    tree(tmp_path, {"agent/speech.py": HELPER, "agent/tools.py": caller})
    assert scanned(tmp_path) == []


def test_an_unannotated_parameter_narrowed_by_isinstance_is_a_tool_wait(tmp_path: Path) -> None:
    body = """
    async def _disconnect(context, reason):
        if isinstance(context, RunContext):
            try:
                await context.wait_for_playout()
            except Exception:
                pass
        await hang_up(reason)
    """
    found, source = triples(tmp_path, body)
    assert found == [at(source, "context.wait_for_playout()", "LKP001")]
    found, source = triples(tmp_path, body.replace("RunContext):", "SpeechHandle):"))
    assert found == []  # negative control: narrowed to something else


def test_a_wait_in_a_coroutine_only_started_as_a_task(tmp_path: Path) -> None:
    body = """
    async def end_call(ctx: RunContext) -> str:
        async def _hang_up() -> None:
            await ctx.wait_for_playout()
            await delete_room()
        asyncio.create_task(_hang_up())
        return "bye"

    async def transfer(ctx: RunContext, tg: asyncio.TaskGroup) -> None:
        async def _refer() -> None:
            await ctx.wait_for_playout()
            await refer()
        tg.create_task(_refer())
        asyncio.ensure_future(_refer())
    """
    found, source = triples(tmp_path, body)
    assert found == [at(source, WAIT, "LKP005", 0), at(source, WAIT, "LKP005", 1)]
    message = scan([str(tmp_path / "tool.py")]).findings[0].message
    assert "the tool is not stopped" in message and "Task exception was never retrieved" in message
    assert "`except StopResponse: return`" in message
    # negative control: awaited as well, so the raise reaches the tool: the ordinary verdict
    found, source = triples(
        tmp_path, body.replace('        return "bye"', "        await _hang_up()")
    )
    assert found[0] == at(source, WAIT, "LKP002", 0)


def test_the_first_parameter_of_a_method_receives_the_instance(tmp_path: Path) -> None:
    body = """
    class Agent:
        async def end_call(context: RunContext) -> None:
            try:
                await context.wait_for_playout()
            except Exception:
                pass

        @staticmethod
        async def hang_up(context: RunContext) -> None:
            await context.wait_for_playout()
            await bye()
    """
    found, source = triples(tmp_path, body)
    assert found == [
        at(source, "context.wait_for_playout()", "LKP004", 0),
        at(source, "context.wait_for_playout()", "LKP002", 1),  # static: a real RunContext
    ]
    found, _ = triples(tmp_path, body.replace("end_call(context", "end_call(self, context"))
    assert [c for *_, c in found] == ["LKP001", "LKP002"]  # negative control: with `self`


def test_a_second_wait_on_a_decided_step_is_no_finding(tmp_path: Path) -> None:
    body = """
    async def send_dtmf(ctx: RunContext, digits: str) -> None:
        await ctx.wait_for_playout()
        for digit in digits:
            await publish(digit)
            await ctx.wait_for_playout()
            await asyncio.sleep(0.3)
    """
    found, source = triples(tmp_path, body)
    assert found == [at(source, WAIT, "LKP002", 0)]
    # negative control: the first wait only on one path, so the second can still raise
    guarded = body.replace(
        "        await ctx.wait_for_playout()\n        for",
        "        if digits:\n            await ctx.wait_for_playout()\n        for",
    )
    found, source = triples(tmp_path, guarded)
    assert found == [at(source, WAIT, "LKP002", 0), at(source, WAIT, "LKP002", 1)]


def test_a_wait_after_interruptions_are_disallowed_is_no_finding(tmp_path: Path) -> None:
    """``ctx.disallow_interruptions()`` (which raises if the speech is already interrupted) on
    every path before the wait: the preamble can no longer be interrupted, so the wait cannot
    raise. Two real hang-up tools do this (a Toolset's goodbye helper, a receptionist's
    ``hangup_call``); both were reported LKP002 (found by the adversarial review)."""
    body = """
    async def hangup(ctx: RunContext) -> None:
        ctx.disallow_interruptions()
        await ctx.session.generate_reply(instructions="say goodbye")
        try:
            await ctx.wait_for_playout()
        except Exception:
            pass
        await delete_room()
    """
    assert triples(tmp_path, body)[0] == []
    # negative controls: disallowed on one path only, or on another receiver, it can still raise
    for changed in (
        body.replace("        ctx.disallow", "        if x:\n            ctx.disallow"),
        body.replace("    ctx.disallow_interruptions()", "    other.disallow_interruptions()"),
    ):
        found, source = triples(tmp_path, changed)
        assert found == [at(source, WAIT, "LKP001")]


def test_lkp002_names_the_first_lost_effect_and_state_left_set(tmp_path: Path) -> None:
    body = """
    class Agent:
        async def hang_up(self, ctx: RunContext, reason: str) -> None:
            self._hangup_reason = reason
            await ctx.session.say("goodbye")
            await ctx.wait_for_playout()
            await asyncio.sleep(0.5)
            await ctx.wait_for_playout()
            info = get_job_context()
            async def later() -> None:
                await notify()
            logger.info("hanging up")
            await info.api.room.delete_room(info.room)
            self._hangup_reason = None
    """
    (finding,), source = triples(tmp_path, body)
    message = scan([str(tmp_path / "tool.py")]).findings[0].message
    assert "first the call to `info.api.room.delete_room`" in message
    set_at = at(source, "self._hangup_reason = reason", "")[0]
    reset_at = at(source, "self._hangup_reason = None", "")[0]
    assert (
        f"`self._hangup_reason` (set at line {set_at}) stays set: the reset at line {reset_at} "
        "no longer runs" in message
    )
    found, _ = triples(tmp_path, body.replace("            self._hangup_reason = None\n", ""))
    message = scan([str(tmp_path / "tool.py")]).findings[0].message
    assert "stays set" not in message  # negative control: nothing resets it


FACTORY = """\
def safe_tool(message="sorry"):
    def decorate(fn):
        async def wrapper(*args, **kwargs):
            try:
                return await fn(*args, **kwargs)
            except BaseException:
                return message
        return wrapper
    return decorate
"""


def test_a_decorator_factory_re_exported_by_a_package_swallows_too(tmp_path: Path) -> None:
    tools = TOOLS.replace(
        "from app.tools.utils import clinic_tool", "from app.tools import safe_tool"
    )
    tools = tools.replace("@clinic_tool", "@safe_tool()")
    src = tree(
        tmp_path,
        {
            "app/tools/__init__.py": "from .wrappers import safe_tool\n",
            "app/tools/wrappers.py": FACTORY,
            "app/tools/clinic.py": tools,
        },
    )
    found = scan([str(tmp_path)]).findings
    assert [(_rel(tmp_path, f), f.line, f.col, f.code) for f in found] == [
        ("app/tools/clinic.py", *at(src["app/tools/clinic.py"], WAIT, "LKP001"))
    ]
    assert "app/tools/wrappers.py:6)" in found[0].message
    # negative control: a wrapper that does not await the wrapped function inside the handler
    tree(tmp_path, {"app/tools/wrappers.py": FACTORY.replace("return await fn", "coro = fn")})
    assert [f.code for f in scan([str(tmp_path)]).findings] == ["LKP002"]


def test_lkp002_names_a_flag_set_before_the_wait_that_an_earlier_check_returns_on(
    tmp_path: Path,
) -> None:
    body = """
    class Agent:
        async def end_call(self, context: RunContext) -> str:
            if self._call_ended:
                return "Call already ended."
            self._call_ended = True
            await context.wait_for_playout()
            await delete_room()
            return "bye"
    """
    (finding,), source = triples(tmp_path, body)
    message = scan([str(tmp_path / "tool.py")]).findings[0].message
    set_at = at(source, "self._call_ended = True", "")[0]
    check_at = at(source, "if self._call_ended:", "")[0]
    assert (
        f"`self._call_ended` (set at line {set_at}) stays set, so the check at line {check_at} "
        "returns early on every later call" in message
    )
    # negative control: set after the wait, the flag is only set once the hang-up goes on
    moved = body.replace(
        "            self._call_ended = True\n            await context.wait_for_playout()\n",
        "            await context.wait_for_playout()\n            self._call_ended = True\n",
    )
    triples(tmp_path, moved)
    assert "stays set" not in scan([str(tmp_path / "tool.py")]).findings[0].message


def test_a_flag_set_before_an_if_holding_the_wait_is_named_too(tmp_path: Path) -> None:
    """A real outbound caller's ``hangup``: the reason is set, then the wait runs under ``if
    run_ctx is not None:``. The flag stays set just the same, but the message said nothing: only
    the wait's own block was read (found by the adversarial review)."""
    body = """
    class Agent:
        async def hangup(self, reason: str, *, run_ctx: RunContext | None = None) -> None:
            if self._hangup_reason is not None:
                return
            self._hangup_reason = reason
            logger.info("ending call: %s", reason)
            if run_ctx is not None:
                await run_ctx.wait_for_playout()
            await remove_participant()
            self._job_ctx = None
    """
    (finding,), source = triples(tmp_path, body)
    assert finding == at(source, "run_ctx.wait_for_playout()", "LKP002")
    message = scan([str(tmp_path / "tool.py")]).findings[0].message
    set_at = at(source, "self._hangup_reason = reason", "")[0]
    check_at = at(source, "if self._hangup_reason is not None:", "")[0]
    assert (
        f"`self._hangup_reason` (set at line {set_at}) stays set, so the check at line "
        f"{check_at} returns early on every later call" in message
    )
    # negative control: set further back than the three statements before the wait, not named
    far = body.replace(
        '            logger.info("ending call: %s", reason)\n',
        '            logger.info("ending call: %s", reason)\n' + "            a = 1\n" * 2,
    )
    triples(tmp_path, far)
    assert "stays set" not in scan([str(tmp_path / "tool.py")]).findings[0].message


@pytest.mark.parametrize(
    "call",
    [
        "asyncio.wait_for(say_bye(ctx), timeout=10)",
        "asyncio.wait_for(fut=say_bye(ctx), timeout=10)",
        "asyncio.shield(say_bye(ctx))",
        "asyncio.gather(say_bye(ctx), other())",
    ],
)
def test_a_helper_awaited_through_wait_for_shield_or_gather_is_still_swallowed(
    tmp_path: Path, call: str
) -> None:
    """Each passes the helper's raise on to the awaiting tool, whose ``except Exception`` then
    swallows it; only a bare ``await say_bye(ctx)`` was followed, so these were LKP002
    (found by the adversarial review)."""
    body = f"""
    async def say_bye(ctx: RunContext) -> None:
        await ctx.session.say("bye")
        await ctx.wait_for_playout()
        await hang_up()

    async def end_call(ctx: RunContext) -> str:
        try:
            await {call}
        except Exception:
            return "could not end the call"
        return "ended"
    """
    found, source = triples(tmp_path, body)
    assert found == [at(source, WAIT, "LKP001")]
    # negative control: re-raised first, the helper's wait is the behaviour change only
    safe = body.replace(
        "        except Exception:",
        "        except StopResponse:\n            raise\n        except Exception:",
    )
    found, source = triples(tmp_path, safe)
    assert found == [at(source, WAIT, "LKP002")]
    # the same caller in another file
    files = tree(
        tmp_path / "two",
        {
            "app/bye.py": "from livekit.agents import RunContext\n"
            + textwrap.dedent(body).split("async def end_call")[0],
            "app/tool.py": "import asyncio\nfrom livekit.agents import RunContext\n"
            "from .bye import say_bye\n\n"
            + "async def end_call"
            + textwrap.dedent(body).split("async def end_call")[1],
        },
    )
    wait = at(files["app/bye.py"], WAIT, "LKP001")
    assert [(p, line, col, code) for p, line, col, code in scanned(tmp_path / "two")] == [
        ("app/bye.py", *wait)
    ]


@pytest.mark.xfail(
    strict=True,
    reason="not built: a `return`, `break` or `continue` in a `finally` swallows the raise "
    "(Python drops the exception), but only except handlers and suppress() are read as "
    "catchers; needs a third catcher form in catchers.py, messages.py and modules._clause",
)
def test_a_return_in_finally_swallows_the_fix(tmp_path: Path) -> None:
    """Found by the adversarial review (``while True: try: <wait> finally: break``)."""
    body = """
    async def end_call(ctx: RunContext) -> str:
        try:
            await ctx.wait_for_playout()
            await hang_up()
        finally:
            return "ended"
    """
    found, source = triples(tmp_path, body)
    assert found == [at(source, WAIT, "LKP001")]
