"""Synthetic releases the patch index does not list, made from a real installed one.

``relabelled`` copies the ``livekit/agents`` package of a real environment into a directory and
adds a dist-info that claims another version, with a ``RECORD`` that is true for the copied
files (after an optional edit). Put that directory first on ``PYTHONPATH`` of the environment's
interpreter: ``livekit.agents`` is imported from the copy (``livekit`` is a namespace package)
with the environment's dependencies, and the copy is what the CLI sees and writes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

from .fake_install import SPEECH, record_hash

Edit = Callable[[str, bytes], bytes]
"""``(relative path, bytes) -> new bytes`` for each copied file."""


def relabelled(dest: Path, python: Path, version: str, edit: Edit | None = None) -> Path:
    """A ``version`` install in ``dest`` made from the livekit-agents of ``python``; return it."""
    source = subprocess.run(
        [str(python), "-c", "import livekit.agents as a, os; print(os.path.dirname(a.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    package = dest / "livekit" / "agents"
    shutil.copytree(source, package, ignore=shutil.ignore_patterns("__pycache__"))
    dist_info = dest / f"livekit_agents-{version}.dist-info"
    dist_info.mkdir()
    metadata = f"Metadata-Version: 2.4\nName: livekit-agents\nVersion: {version}\n"
    (dist_info / "METADATA").write_text(metadata, encoding="utf-8")
    rows = []
    for path in sorted(p for p in package.rglob("*") if p.is_file()):
        relative = path.relative_to(dest).as_posix()
        data = path.read_bytes()
        if relative == "livekit/agents/version.py":  # a real release says its own version
            data = re.sub(rb'__version__ = "[^"]*"', f'__version__ = "{version}"'.encode(), data)
            path.write_bytes(data)
        if edit is not None:
            data = edit(relative, data)
            path.write_bytes(data)
        rows.append(f"{relative},{record_hash(data)},{len(data)}")
    meta = (dist_info / "METADATA").read_bytes()
    rows.append(f"{dist_info.name}/METADATA,{record_hash(meta)},{len(meta)}")
    rows.append(f"{dist_info.name}/RECORD,,")
    (dist_info / "RECORD").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return dest


def relabelled_wheel(upstream: Path, dest: Path, version: str, edit: Edit | None = None) -> Path:
    """Upstream's wheel of a release, claiming ``version`` (dist-info, METADATA, version.py),
    with an optional edit and a true ``RECORD``: a release the index does not list."""
    with zipfile.ZipFile(upstream) as archive:
        old_info = next(n.split("/")[0] for n in archive.namelist() if n.endswith("/RECORD"))
        old_version = old_info[len("livekit_agents-") : -len(".dist-info")]
        new_info = f"livekit_agents-{version}.dist-info"
        files: dict[str, bytes] = {}
        for name in archive.namelist():
            data = archive.read(name)
            if name == "livekit/agents/version.py":
                data = re.sub(
                    rb'__version__ = "[^"]*"', f'__version__ = "{version}"'.encode(), data
                )
            if name == f"{old_info}/METADATA":
                data = data.replace(
                    f"Version: {old_version}\n".encode(), f"Version: {version}\n".encode()
                )
            if edit is not None:
                data = edit(name, data)
            files[new_info + name[len(old_info) :] if name.startswith(old_info) else name] = data
    rows = [
        f"{name},{record_hash(data)},{len(data)}" if not name.endswith("/RECORD") else f"{name},,"
        for name, data in files.items()
    ]
    files[f"{new_info}/RECORD"] = ("\n".join(rows) + "\n").encode()
    path = dest / f"livekit_agents-{version}-py3-none-any.whl"
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as out:
        for name, data in files.items():
            out.writestr(name, data)
    return path


def replacing(relative: str, old: bytes, new: bytes) -> Edit:
    """An edit that replaces ``old`` (which must occur once) in one file."""

    def edit(path: str, data: bytes) -> bytes:
        if path != relative:
            return data
        assert data.count(old) == 1, f"{old!r} occurs {data.count(old)} times in {path}"
        return data.replace(old, new)

    return edit


CONTEXT_CHANGED = replacing(
    SPEECH,
    b"        self._generations: list[asyncio.Future[None]] = []\n",
    b"        self._generations: list[asyncio.Future[None]] = []  # steps\n",
)
"""A release where a line of a hunk's context changed: the patch no longer applies exactly."""

INTERRUPT_NEVER_SEEN = replacing(
    SPEECH,
    b"            self._interrupt_fut.set_result(None)\n",
    b"            pass  # this release no longer marks the interrupt here\n",
)
"""A release where every hunk applies but the fix's contract fails: ``_cancel`` (outside the
hunks) no longer completes ``_interrupt_fut``, so no playout wait can see the interrupt."""
