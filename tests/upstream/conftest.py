"""Run the test module of the upstream PR here as upstream's ``tests/conftest.py`` would.

Upstream's conftest registers the ``unit`` marker and fails any test that leaves a task
running (``fail_on_leaked_tasks``); both are reproduced below. The module needs a real
livekit-agents, so it is not collected in an interpreter without one (our dev venv):
``mk/upstream.mk`` runs it in the newest release's venv, patched and stock.

With ``UPSTREAM_TESTS_AGAINST=stock`` (set by ``tests/upstream/check_outcomes.py`` only), a
placeholder ``SpeechInterruptedError`` that nothing raises is added to the stock
``speech_handle`` module so that the module is collected and each test fails or passes on its
own, instead of the whole module failing to import.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import AsyncIterator

import pytest


def _livekit_agents_installed() -> bool:
    try:
        return importlib.util.find_spec("livekit.agents") is not None
    except ModuleNotFoundError:
        return False


collect_ignore_glob = [] if _livekit_agents_installed() else ["test_*.py"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unit: fast tests with no external providers")
    if os.environ.get("UPSTREAM_TESTS_AGAINST") == "stock":
        _add_placeholder_error()


def _add_placeholder_error() -> None:
    from livekit.agents import llm
    from livekit.agents.voice import speech_handle

    if hasattr(speech_handle, "SpeechInterruptedError"):
        raise pytest.UsageError("UPSTREAM_TESTS_AGAINST=stock, but livekit-agents is patched")

    class SpeechInterruptedError(llm.StopResponse):  # never raised by stock
        def __init__(self, speech_id: str) -> None:
            super().__init__()
            self.speech_id = speech_id

    speech_handle.SpeechInterruptedError = SpeechInterruptedError  # type: ignore[attr-defined]


def _is_pytest_task(task: asyncio.Task[object]) -> bool:
    # pytest-asyncio's own tasks (e.g. async fixture finalizers), as upstream ignores them
    return any("pytest" in frame.f_code.co_filename for frame in task.get_stack())


@pytest.fixture(autouse=True)
async def fail_on_leaked_tasks() -> AsyncIterator[None]:
    tasks_before = set(asyncio.all_tasks())
    yield
    leaked = [
        task
        for task in asyncio.all_tasks() - tasks_before
        if not task.done() and not _is_pytest_task(task)
    ]
    if leaked:
        pytest.fail("Test leaked tasks:\n\n" + "\n".join(repr(task) for task in leaked))
