"""Patched wheels: upstream's wheel of a release with the fix in it, for lockfiles and images.

``build`` takes upstream's wheel of a release (downloaded once with ``pip download --no-deps``
into the user cache, or a file given for air-gapped builds) and writes
``livekit_agents-X+fix5359.rN-py3-none-any.whl``: both target files as ``apply`` would write
them (``patching.plan`` decides and produces the bytes, refusals included), the dist-info
renamed for the new version, ``METADATA``'s ``Version`` line changed and nothing else in it,
``RECORD`` rewritten (hash and size of the changed files, the renamed paths). Every other entry,
``WHEEL`` included, is upstream's, byte for byte.

Reproducible: entries in upstream's order with upstream's timestamps and modes, stored
uncompressed (compressed bytes would depend on the machine's zlib), so the same upstream wheel
gives the same bytes on every build and every machine, and a lockfile's hash never churns.
"""

from __future__ import annotations

import base64
import csv
import io
import os
import re
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..exits import Exit
from . import matrix, patching
from .index import TARGETS, Release, load, local_version, sha256
from .target import PatchingError, Target

PACKAGE = "livekit_agents"
"""The distribution's name as wheel and dist-info names spell it."""


def cache_dir() -> Path:
    """Where upstream's wheels are kept: ``$XDG_CACHE_HOME`` or ``~/.cache``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "livekit-agents-patch" / "wheels"


def wheel_name(version: str) -> str:
    return f"{PACKAGE}-{version}-py3-none-any.whl"


@dataclass(frozen=True)
class Built:
    """A patched wheel, written."""

    path: Path
    """As the caller named the output directory (relative stays relative)."""
    sha256: str
    release: str
    """Upstream's release, ``1.8.9``."""
    version: str
    """The wheel's version, ``1.8.9+fix5359.r1``."""
    revision: int
    patch: str
    source: Path
    """Upstream's wheel it was made from."""

    @property
    def snippets(self) -> dict[str, str]:
        """The lines to paste, per tool: pip (hash-checked), uv and poetry (path sources)."""
        return {
            "pip": (
                f"livekit-agents @ file://{quote(str(self.path.resolve()), safe='/+')} "
                f"--hash=sha256:{self.sha256}"
            ),
            "uv": f'[tool.uv.sources]\nlivekit-agents = {{ path = "{self.path}" }}',
            "poetry": f'[tool.poetry.dependencies]\nlivekit-agents = {{ path = "{self.path}" }}',
        }


def fetch(release: str, cache: Path | None = None) -> Path:
    """Upstream's wheel of ``release``, downloaded once into the cache (``matrix.wheel``)."""
    cache = cache or cache_dir()
    try:
        return matrix.wheel(release, cache)
    except subprocess.CalledProcessError as e:
        stderr = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else ""
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        raise PatchingError(
            Exit.USAGE,
            f"cannot download upstream's wheel of livekit-agents {release} with pip download "
            f"into {cache}: {tail}. Next: check access to the package index, or download "
            f"{wheel_name(release)} elsewhere and pass it with --from FILE.",
        ) from e
    except OSError as e:
        raise PatchingError(
            Exit.USAGE,
            f"cannot run pip download into {cache}: {e}. Next: pass upstream's wheel with "
            "--from FILE.",
        ) from e


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(bytes.fromhex(sha256(data))).rstrip(b"=").decode()
    return f"sha256={digest}"


def _read_record(data: bytes) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(data.decode("utf-8"))) if row]


def _write_record(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _untrue_record(archive: zipfile.ZipFile, rows: list[list[str]]) -> list[str]:
    """The entries whose bytes differ from what ``RECORD`` says (or that it does not list)."""
    listed = {row[0]: row for row in rows}
    problems = []
    for info in archive.infolist():
        if info.is_dir() or info.filename.endswith(".dist-info/RECORD"):
            continue
        row = listed.get(info.filename)
        data = archive.read(info)
        if row is None:
            problems.append(f"{info.filename} is not in RECORD")
        elif row[1] != _record_hash(data) or row[2] != str(len(data)):
            problems.append(
                f"{info.filename}: RECORD says {row[1]}, the entry has {_record_hash(data)}"
            )
    return problems


def _relabel(metadata: bytes, old: str, new: str, source: Path) -> bytes:
    pattern = rf"^Version: {re.escape(old)}\r?$".encode()
    found = re.findall(pattern, metadata, flags=re.M)
    if len(found) != 1:
        raise PatchingError(
            Exit.FOREIGN_EDIT,
            f"{source}: expected one 'Version: {old}' line in METADATA, found {len(found)}. "
            "Next: build from upstream's own wheel (drop --from).",
        )
    return re.sub(pattern, f"Version: {new}".encode(), metadata, count=1, flags=re.M)


def _release(version: str) -> Release:
    """The index entry, refused exactly as ``apply`` refuses an installed release."""
    return patching.release_for(Target(version=version, root=Path("."), record={}))


def build(
    release: str,
    output: Path,
    source: Path | None = None,
    *,
    allow_unlisted: bool = False,
    python: str | None = None,
) -> Built:
    """Write the patched wheel of ``release`` into ``output``; return what was written.

    Refuses (``PatchingError``) before any download when the index does not support the
    release, and before writing anything when upstream's wheel is not what the index expects.
    With ``allow_unlisted``, a release the index does not list is built when the patch applies
    exactly to the wheel's files and the contract holds on them, run by ``python`` (an
    interpreter whose environment has that release's dependencies; default: this one).
    """
    if not allow_unlisted or release in load().releases:
        _release(release)
    source = source if source is not None else fetch(release)
    old_info = f"{PACKAGE}-{release}.dist-info"
    try:
        archive = zipfile.ZipFile(source)
    except (OSError, zipfile.BadZipFile) as e:
        raise PatchingError(
            Exit.USAGE, f"cannot read {source} as a wheel: {e}. Next: pass upstream's .whl file."
        ) from e
    with archive:
        names = archive.namelist()
        if f"{old_info}/RECORD" not in names:
            infos = sorted({n.split("/")[0] for n in names if ".dist-info/" in n})
            raise PatchingError(
                Exit.USAGE,
                f"expected {source} to be upstream's wheel of livekit-agents {release} (with "
                f"{old_info}/), found {', '.join(infos) or 'no dist-info'}. Next: pass the wheel "
                f"of {release}, or --release for the wheel you have.",
            )
        rows = _read_record(archive.read(f"{old_info}/RECORD"))
        untrue = _untrue_record(archive, rows)
        if untrue:
            raise PatchingError(
                Exit.FOREIGN_EDIT,
                f"{source}: its RECORD is not true ({'; '.join(untrue[:3])}). Expected "
                "upstream's wheel as published. Next: download it again (delete it from "
                f"{cache_dir()}) or pass upstream's own file with --from.",
            )
        recorded = {row[0]: row[1] for row in rows}
        contents = {rel: archive.read(rel) if rel in names else None for rel in TARGETS}
        target = Target(
            version=release,
            root=source,
            record={
                rel: base64.urlsafe_b64decode(recorded[rel].split("=", 1)[1] + "==").hex()
                for rel in TARGETS
                if recorded.get(rel, "").startswith("sha256=")
            },
            python=python,
        )
        result, patched = patching.plan(
            target, contents, reverse=False, allow_unlisted=allow_unlisted
        )
        entry = patching.release_for(target, contents=contents, allow_unlisted=allow_unlisted)
        version = local_version(entry)
        new_info = f"{PACKAGE}-{version}.dist-info"
        if patched is None:
            raise PatchingError(
                Exit.FOREIGN_EDIT,
                f"{source}: its files are already patched ({result}); expected upstream's "
                "wheel. Next: build from upstream's own wheel (drop --from).",
            )
        members: list[tuple[zipfile.ZipInfo, bytes]] = []
        for info in archive.infolist():
            if info.is_dir():
                continue
            data = patched.get(info.filename) or archive.read(info)
            name = info.filename
            if name == f"{old_info}/METADATA":
                data = _relabel(data, release, version, source)
            if name.startswith(f"{old_info}/"):
                name = new_info + name[len(old_info) :]
            members.append((_entry(name, info), data))
    written = {info.filename: data for info, data in members}
    new_rows = []
    for row in rows:  # upstream's order; RECORD lists itself without a hash
        name = new_info + row[0][len(old_info) :] if row[0].startswith(f"{old_info}/") else row[0]
        content = written.get(name)
        if name.endswith(".dist-info/RECORD") or content is None:
            new_rows.append([name, "", ""])
        else:
            new_rows.append([name, _record_hash(content), str(len(content))])
    record = _write_record(new_rows)
    members = [(i, record if i.filename == f"{new_info}/RECORD" else d) for i, d in members]
    path = _write(output, wheel_name(version), members)
    return Built(
        path=path,
        sha256=sha256(path.read_bytes()),
        release=release,
        version=version,
        revision=entry.revision,
        patch=entry.patch or "",
        source=source,
    )


def _entry(name: str, upstream: zipfile.ZipInfo) -> zipfile.ZipInfo:
    """A fresh entry with nothing from this machine: upstream's timestamp and mode, stored."""
    info = zipfile.ZipInfo(name, date_time=upstream.date_time)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = upstream.external_attr
    return info


def _write(output: Path, name: str, members: list[tuple[zipfile.ZipInfo, bytes]]) -> Path:
    """The archive, written to a temporary file beside it and renamed: all or nothing."""
    path = output / name
    try:
        output.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=output)
    except OSError as e:
        raise PatchingError(
            Exit.IO_ERROR,
            f"cannot write into {output}: {e}. Next: choose a writable directory with --output.",
        ) from e
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w") as out:
                for info, data in members:
                    out.writestr(info, data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        raise PatchingError(
            Exit.IO_ERROR,
            f"cannot write {path}: {e}. Nothing was written. Next: free space or choose "
            "another directory with --output.",
        ) from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
