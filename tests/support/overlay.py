"""Build ``DEST/livekit/agents``: a copy of this interpreter's livekit-agents, patched by ``apply``.

Put ``DEST`` first on ``PYTHONPATH`` and ``livekit.agents`` is the patched copy (``livekit`` is a
namespace package), while site-packages keeps the stock release for the negative controls.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from importlib import metadata
from pathlib import Path

from livekit_agents_patch.install import patching
from livekit_agents_patch.install.target import Target


def main(dest: Path) -> None:
    spec = importlib.util.find_spec("livekit.agents")
    assert spec is not None and spec.submodule_search_locations, "livekit-agents not installed"
    source = Path(next(iter(spec.submodule_search_locations)))
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source, dest / "livekit" / "agents", ignore=shutil.ignore_patterns("*.pyc"))
    target = Target(version=metadata.version("livekit-agents"), root=dest, record={})
    print(f"{patching.apply(target)}: {dest}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
