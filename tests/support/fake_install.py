"""Fake livekit-agents installs for the CLI tests: the real files of a release, nothing else.

A fake is a directory to put on ``PYTHONPATH``: ``livekit_agents-X.dist-info/{METADATA,RECORD}``
from the release's wheel (so ``importlib.metadata`` finds version and hashes), and the wheel's
``livekit/agents/{__init__,version}.py`` and ``livekit/agents/voice/{speech_handle,events}.py``.
Nothing in it is imported; the CLI only reads and writes those files.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zipfile
from pathlib import Path

from livekit_agents_patch.install import matrix

REPO = Path(__file__).resolve().parents[2]
WHEELS = REPO / ".cache" / "wheels"
SPEECH = "livekit/agents/voice/speech_handle.py"
EVENTS = "livekit/agents/voice/events.py"
PACKAGE_FILES = ("livekit/agents/__init__.py", "livekit/agents/version.py", SPEECH, EVENTS)


def record_hash(data: bytes) -> str:
    """A wheel ``RECORD``'s hash column for ``data``: ``sha256=`` and the urlsafe base64 digest."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel_file(version: str, relative: str) -> bytes:
    """One file of a release's wheel (downloaded once into ``.cache/wheels``)."""
    with zipfile.ZipFile(matrix.wheel(version, WHEELS)) as archive:
        return archive.read(relative)


def make(
    dest: Path, version: str, *, files_from: str | None = None, claim: str | None = None
) -> Path:
    """A fake install of ``version`` in ``dest``; return ``dest``.

    ``files_from``: take the package files from this release instead (a mixed install);
    ``claim``: write this version into METADATA instead (a release the index does not know).
    """
    metadata_version = claim or version
    with zipfile.ZipFile(matrix.wheel(version, WHEELS)) as archive:
        info = f"livekit_agents-{version}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode("utf-8")
        record = archive.read(f"{info}/RECORD")
    metadata = re.sub(r"(?m)^Version: .*$", f"Version: {metadata_version}", metadata)
    dist_info = dest / f"livekit_agents-{metadata_version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(metadata, encoding="utf-8")
    (dist_info / "RECORD").write_bytes(record)
    with zipfile.ZipFile(matrix.wheel(files_from or version, WHEELS)) as archive:
        for relative in PACKAGE_FILES:
            path = dest / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(archive.read(relative))
    return dest


def snapshot(root: Path) -> dict[str, object]:
    """Every file, link and directory under ``root``: bytes, link targets, modes."""
    out: dict[str, object] = {}
    for directory, dirs, files in os.walk(root):
        base = Path(directory)
        for name in sorted(dirs + files):
            path = base / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                out[key] = ("link", os.readlink(path))
            elif path.is_dir():
                out[key] = ("dir", path.stat().st_mode)
            else:
                out[key] = ("file", path.stat().st_mode, path.read_bytes())
    return out


def from_wheel(dest: Path, wheel_path: Path) -> Path:
    """A fake install of any wheel (a patched one): its dist-info's METADATA and RECORD, and the
    package files, as ``make`` takes them from upstream's wheel; return ``dest``."""
    with zipfile.ZipFile(wheel_path) as archive:
        names = [
            name
            for name in archive.namelist()
            if name in PACKAGE_FILES or re.search(r"\.dist-info/(METADATA|RECORD)$", name)
        ]
        for name in names:
            path = dest / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(archive.read(name))
    return dest
