"""The one index of the patches: which patch serves which release, and the files' hashes.

``patches/index.json`` is written by ``make index`` (``python -m livekit_agents_patch.install.matrix
--write-index``) from the real wheels; every tool and test reads it through this module.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..exits import Exit
from .target import PatchingError

TARGETS = ("livekit/agents/voice/speech_handle.py", "livekit/agents/voice/events.py")
"""The files the patch changes, relative to site-packages."""

STRIP = 1
"""Path components to strip from the patch's paths (after ``a/``) for site-packages."""


def patches_dir() -> Path:
    """``patches/`` shipped in the wheel, or the repository's when run from a checkout."""
    here = Path(__file__).resolve().parents[1]  # the package, beside the checkout's patches/
    for candidate in (here / "patches", here.parent / "patches"):
        if (candidate / "index.json").is_file():
            return candidate
    raise FileNotFoundError(f"no patches/index.json next to {here}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


REVISIONS_DIR = "revisions"
"""Under ``patches/``: ``revisions/<n>/<patch file>`` is revision ``n`` of that patch file, kept
so that an install patched by an older revision is recognised, upgraded and reverted."""


@dataclass(frozen=True)
class Release:
    version: str
    patch: str | None
    """The patch file's name; ``None`` when unsupported."""
    unsupported: str | None
    pristine: dict[str, str]
    patched: dict[str, str]
    """The patched hashes of the current revision (``revisions[revision]``)."""
    revision: int = 1
    """The current revision of the patch."""
    revisions: dict[int, dict[str, str]] = field(default_factory=dict)
    """The patched hashes of every revision shipped for this release, the current one included."""
    wheel_sha256: str | None = None
    """The sha256 of upstream's wheel as the package index publishes it (``make index`` records
    it from the file pip downloaded and checked against the index's hash); ``wheel`` refuses
    any other file as this release's upstream wheel."""

    def revisions_of(self, relative: str, digest: str) -> frozenset[int]:
        """The revisions whose patched ``relative`` has this sha256 (several, if they agree)."""
        return frozenset(n for n, files in self.revisions.items() if files.get(relative) == digest)

    def patch_file(self, revision: int) -> str:
        """The patch file of ``revision``, relative to ``patches/``."""
        if self.patch is None or revision not in self.revisions:
            raise KeyError(f"livekit-agents {self.version} has no patch revision {revision}")
        if revision == self.revision:
            return self.patch
        return f"{REVISIONS_DIR}/{revision}/{self.patch}"


@dataclass(frozen=True)
class Index:
    data: dict[str, Any]

    @property
    def revision(self) -> int:
        """The current revision of the patches."""
        return int(self.data.get("revision", 1))

    @property
    def releases(self) -> dict[str, Release]:
        out = {}
        for version, entry in self.data["releases"].items():
            files = entry.get("files", {})
            patched = {path: h["patched"] for path, h in files.items()}
            older = {int(n): dict(h) for n, h in entry.get("revisions", {}).items()}
            out[version] = Release(
                version=version,
                patch=entry.get("patch"),
                unsupported=entry.get("unsupported"),
                pristine={path: h["pristine"] for path, h in files.items()},
                patched=patched,
                revision=self.revision,
                revisions={**older, self.revision: patched} if files else {},
                wheel_sha256=entry.get("wheel_sha256"),
            )
        return out

    def supported(self) -> list[str]:
        return [v for v, r in self.releases.items() if r.patch is not None]

    def predates(self, version: str) -> bool:
        """Whether ``version`` is older than every release the index lists (``1.1.7``); ``False``
        for what cannot be compared that way (``1.9.0rc1``)."""
        try:
            return version_key(version) < min(map(version_key, self.releases))
        except ValueError:
            return False

    def patch_text(self, name: str) -> str:
        return (patches_dir() / name).read_text(encoding="utf-8")


LABEL = "fix5359"
"""The PEP 440 local label of a patched wheel's version: ``X+fix5359.rN``, N the revision."""


def local_version(release: Release) -> str:
    """The version of the patched wheel of ``release``: ``1.8.9+fix5359.r2``."""
    return f"{release.version}+{LABEL}.r{release.revision}"


def split_local(version: str) -> tuple[str, int | None]:
    """``(upstream release, revision)`` of a patched wheel's version, else ``(version, None)``."""
    match = re.fullmatch(rf"(.+)\+{LABEL}\.r([0-9]+)", version)
    if match is None:
        return version, None
    return match.group(1), int(match.group(2))


@cache
def load() -> Index:
    """The index shipped with the tool. A damaged one (a broken install of this tool) is exit 2
    naming it, as an unreadable patch is: never an internal error, never half-read."""
    path = patches_dir() / "index.json"
    try:
        index = Index(json.loads(path.read_text(encoding="utf-8")))
        if not index.supported():
            raise ValueError("it lists no supported release")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise PatchingError(
            Exit.USAGE,
            f"cannot read the patch index {path}: {type(e).__name__}: {e}. Next: reinstall "
            "livekit-agents-patch.",
        ) from e
    return index
