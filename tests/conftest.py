"""Shared options: the subject under test and the Hypothesis profiles.

Without ``--expect`` the suite runs against the vendored reference. With ``--expect stock`` or
``--expect patched`` it runs against the livekit-agents importable in this interpreter (the
Makefile's per-release venvs), and fails if that install is not in the expected state.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from livekit_agents_patch.contract import subjects

_COMMON = settings(
    deadline=None,
    database=None,
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
settings.register_profile("ci", _COMMON, max_examples=2000, derandomize=True)
settings.register_profile("dev", _COMMON, max_examples=200, derandomize=True)
settings.register_profile("deep", _COMMON, max_examples=100_000, derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--expect",
        choices=("stock", "patched"),
        default=None,
        help="run against the installed livekit-agents, which must be stock or patched",
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The end-to-end tests need a real livekit-agents: only with --expect."""
    if config.getoption("--expect") is None and "e2e" in collection_path.parts:
        return True
    return None


@pytest.fixture(scope="session")
def expect(request: pytest.FixtureRequest) -> str | None:
    value: str | None = request.config.getoption("--expect")
    return value


@pytest.fixture(scope="session")
def subject(expect: str | None) -> subjects.Classes:
    """The vendored reference, or the installed livekit-agents in the expected state."""
    if expect is None:
        return subjects.vendored()
    installed = subjects.installed()
    state = "stock" if installed.interrupted_error is subjects.NeverRaised else "patched"
    assert state == expect, f"expected a {expect} livekit-agents, found {installed.name}"
    return installed


@pytest.fixture(autouse=True)
def _quiet_timeout_log() -> None:
    """The interruption timeout logs at ERROR by design; scenarios fire it thousands of times."""
    logging.getLogger("livekit.agents").setLevel(logging.CRITICAL)
