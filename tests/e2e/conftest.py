"""The #5359 scenario in a real ``AgentSession``: collected only with ``--expect``.

Each output's scenario runs once per pytest session (``outcomes``); tests read the record. A test
marked ``expect("patched")`` or ``expect("stock")`` runs only with that ``--expect``; the others
are deselected (pytest counts them).
"""

from collections.abc import Callable

import pytest
from issue5359 import Outcome, OutputKind, PathKind, run_scenario

from livekit_agents_patch.contract import subjects


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "expect(state): run only with --expect state")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expect = config.getoption("--expect")
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("expect")
        (drop if marker is not None and marker.args[0] != expect else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def outcomes(subject: subjects.Classes) -> Callable[..., Outcome]:
    """The scenario's record for an output and SDK path, run on first use (``subject`` checks
    --expect); the path is the pipeline unless told."""
    cache: dict[tuple[OutputKind, PathKind], Outcome] = {}

    def get(output: OutputKind, path: PathKind = "pipeline") -> Outcome:
        if (output, path) not in cache:
            cache[output, path] = run_scenario(output, path)
        return cache[output, path]

    return get
