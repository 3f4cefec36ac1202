"""Find the livekit-agents installed in an environment, from outside it if need be.

A short probe runs in the target interpreter (``--python``, or this one): it reads the
distribution's metadata and RECORD, and asks the import system where ``livekit.agents`` would
be imported from, without importing it. When the two differ (a copy earlier on ``PYTHONPATH``,
an editable checkout), the files that would be imported are the target.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .index import TARGETS, split_local
from .target import Exit, PatchingError, Target

# runs in the target interpreter: keep it to the standard library of any Python 3
_PROBE = r"""
import sys
if sys.path and sys.path[0] == "":  # -c puts the working directory first: not the environment
    del sys.path[0]
import base64, importlib.util, json, os, re
from importlib import metadata
out = {"python": sys.executable, "version": None, "dist_root": None, "record": {},
       "package_dir": None, "files_version": None}
try:
    dist = metadata.distribution("livekit-agents")
except metadata.PackageNotFoundError:
    dist = None
if dist is not None:
    out["version"] = dist.version
    out["dist_root"] = str(dist.locate_file(""))
    for f in dist.files or []:
        if f.hash is not None and f.hash.mode == "sha256" and str(f) in sys.argv[1:]:
            out["record"][str(f)] = base64.urlsafe_b64decode(f.hash.value + "==").hex()
try:
    spec = importlib.util.find_spec("livekit.agents")
except Exception:
    spec = None
for location in (spec.submodule_search_locations or []) if spec else []:
    if os.path.isdir(os.path.join(location, "voice")):
        out["package_dir"] = os.path.abspath(location)
        break
if out["package_dir"]:
    try:
        with open(os.path.join(out["package_dir"], "version.py"), encoding="utf-8") as f:
            found = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", f.read(), re.M)
        out["files_version"] = found.group(1) if found else None
    except OSError:
        pass
print(json.dumps(out))
"""


def find(python: str | None = None) -> Target:
    """The livekit-agents of ``python`` (default: this interpreter)."""
    interpreter = python or sys.executable
    try:
        done = subprocess.run(
            [interpreter, "-c", _PROBE, *TARGETS], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PatchingError(
            Exit.USAGE,
            f"expected a Python interpreter at {interpreter}, found: {e}. Next: point --python at "
            "the environment's interpreter, e.g. /app/.venv/bin/python.",
        ) from e
    try:
        found = json.loads(done.stdout)
    except ValueError:
        found = None
    if done.returncode != 0 or not isinstance(found, dict):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PatchingError(
            Exit.USAGE,
            f"expected {interpreter} to be a Python 3.8+ interpreter, but the probe failed "
            f"(exit {done.returncode}: {tail}). Next: point --python at the environment's "
            "interpreter.",
        )
    dist_root = Path(found["dist_root"]) if found["dist_root"] else None
    package_dir = Path(found["package_dir"]) if found["package_dir"] else None
    version: str | None = found["version"]
    files_version: str | None = found["files_version"]
    if version is None and files_version is None:
        raise PatchingError(
            Exit.NOT_INSTALLED,
            f"expected livekit-agents in the environment of {interpreter}, found none. Next: "
            f"{interpreter} -m pip install livekit-agents, or point --python at the "
            "environment's interpreter.",
        )
    notes: list[str] = []
    record: dict[str, str] = found["record"]
    if package_dir is None:
        assert dist_root is not None
        root = dist_root  # its files are gone: the targets will be reported missing
        notes.append(f"livekit.agents cannot be found on the import path of {interpreter}")
    else:
        root = package_dir.parent.parent
        if dist_root is None or root.resolve() != dist_root.resolve():
            record = {}  # the RECORD describes other files
            if dist_root is not None:
                notes.append(
                    f"livekit.agents is imported from {package_dir}, which shadows the "
                    f"installed distribution at {dist_root}"
                )
            if files_version is not None:
                version = files_version
    assert version is not None
    wheel_version = None
    upstream, revision = split_local(version)
    if revision is not None:  # a patched wheel's install (see ``wheel``): judged as upstream's
        version, wheel_version = upstream, version
    return Target(
        version=version,
        root=root,
        record=record,
        dist_root=dist_root if dist_root != root else None,
        files_version=files_version,
        python=found["python"],
        notes=tuple(notes),
        wheel_version=wheel_version,
    )
