"""Find the livekit-agents installed in an environment, from outside it if need be."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .index import TARGETS
from .patching import Exit, PatchingError, Target

_PROBE = """
import base64, json, sys
from importlib import metadata
try:
    dist = metadata.distribution("livekit-agents")
except metadata.PackageNotFoundError:
    print("null")
    sys.exit(0)
record = {}
for f in dist.files or []:
    if f.hash is not None and f.hash.mode == "sha256" and str(f) in sys.argv[1:]:
        record[str(f)] = base64.urlsafe_b64decode(f.hash.value + "==").hex()
print(json.dumps({"version": dist.version, "root": str(dist.locate_file("")), "record": record}))
"""


def find(python: str | None = None) -> Target:
    """The livekit-agents of ``python`` (default: this interpreter)."""
    interpreter = python or sys.executable
    try:
        out = subprocess.run(
            [interpreter, "-c", _PROBE, *TARGETS], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise PatchingError(Exit.USAGE, f"cannot run the interpreter {interpreter}: {e}") from e
    found = json.loads(out)
    if found is None:
        raise PatchingError(
            Exit.NOT_INSTALLED,
            f"livekit-agents is not installed for {interpreter}. Next: pip install livekit-agents, "
            "or point --python at the environment's interpreter.",
        )
    return Target(version=found["version"], root=Path(found["root"]), record=found["record"])
