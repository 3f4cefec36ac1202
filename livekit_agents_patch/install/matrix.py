"""The version matrix: does each release's patch apply exactly, reverse exactly, and compile?

Wheels come from ``pip download --no-deps`` and are cached under ``.cache/wheels``. With
``--write-index`` this writes ``patches/index.json``; otherwise it checks the index against the
wheels and exits non-zero on any difference (``make matrix``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import applier
from .index import REVISIONS_DIR, STRIP, TARGETS, load, patches_dir, sha256, version_key

PACKAGE = "livekit-agents"
FIRST_LINE = "1.2.0"
"""Releases from here on are listed; ``RunContext.wait_for_playout`` appears in 1.2.2."""

CACHE = Path(".cache/wheels")


def pypi_versions() -> list[str]:
    """Every final release of livekit-agents from ``FIRST_LINE`` on, as pip lists them."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", PACKAGE],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"Available versions: (.*)", out)
    if not match:
        raise RuntimeError(f"unexpected output from pip index versions: {out!r}")
    versions = [v.strip() for v in match.group(1).split(",")]
    finals = [v for v in versions if re.fullmatch(r"\d+(\.\d+)*", v)]
    return sorted((v for v in finals if version_key(v) >= version_key(FIRST_LINE)), key=version_key)


PIP = (sys.executable, "-m", "pip")
TRIES = 3
BACKOFF = 2.0
"""Seconds before the second try of a download; doubled before each later one."""


class DownloadError(subprocess.CalledProcessError):
    """``pip download`` failed on every try; says so with pip's own last words."""

    def __init__(self, version: str, tries: int, failed: subprocess.CalledProcessError) -> None:
        super().__init__(failed.returncode, failed.cmd, failed.output, failed.stderr)
        self.version = version
        self.tries = tries

    def __str__(self) -> str:
        stderr = self.stderr.decode("utf-8", "replace") if isinstance(self.stderr, bytes) else ""
        return (
            f"pip download of {PACKAGE}=={self.version} failed {self.tries} time(s), last with "
            f"exit {self.returncode}; pip said: {stderr.strip() or 'nothing'}"
        )


def wheel(
    version: str,
    cache: Path = CACHE,
    *,
    tries: int = TRIES,
    backoff: float = BACKOFF,
    sleep: Callable[[float], None] = time.sleep,
    pip: Sequence[str] = PIP,
) -> Path:
    """The release's wheel, downloaded once into ``cache``.

    A failed ``pip download`` (a transient index error among the matrix's parallel downloads)
    is tried again after ``backoff`` seconds, doubled each time, ``tries`` times in all; then
    ``DownloadError`` carries pip's stderr. Each download goes to a directory of its own and is
    renamed into ``cache`` whole, so a killed download never leaves a partial file there.
    """
    name = f"livekit_agents-{version}-py3-none-any.whl"
    path = cache / name
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, tries + 1):
        scratch = Path(tempfile.mkdtemp(prefix=".download-", dir=cache))
        try:
            subprocess.run(
                [*pip, "download", "-q", "--no-deps", "--only-binary=:all:"]
                + ["-d", str(scratch), f"{PACKAGE}=={version}"],
                check=True,
                capture_output=True,
                stdin=subprocess.DEVNULL,
            )
            if not (scratch / name).is_file():
                found = ", ".join(sorted(p.name for p in scratch.iterdir())) or "nothing"
                raise subprocess.CalledProcessError(
                    0, pip, b"", f"expected {name}, pip downloaded {found}".encode()
                )
            os.replace(scratch / name, path)
            return path
        except subprocess.CalledProcessError as e:
            if attempt == tries:
                raise DownloadError(version, tries, e) from e
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        sleep(backoff * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def read_targets(wheel_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel_path) as archive:
        return {path: archive.read(path) for path in TARGETS}


NOISY_STOP = (
    "its tool runner logs every exception a tool raises at ERROR with a traceback, StopResponse "
    "included (fixed upstream in 1.2.18), so SpeechInterruptedError cannot end a tool quietly; "
    "the patch applies exactly, but the fix's contract does not hold"
)


def stop_response_is_quiet(wheel_path: Path) -> bool:
    """Whether the release's tool runner exempts ``StopResponse`` from its ERROR log."""
    with zipfile.ZipFile(wheel_path) as archive:
        runner = archive.read("livekit/agents/voice/generation.py")
    return b"isinstance(e, StopResponse)" in runner


@dataclass
class Result:
    version: str
    patch: str | None = None
    applies: bool = False
    reverses: bool = False
    compiles: bool = False
    reason: str | None = None
    hashes: dict[str, dict[str, str]] = field(default_factory=dict)
    older: dict[int, dict[str, str]] = field(default_factory=dict)
    """The patched hashes of each older revision of the serving patch that applies."""
    quiet_stop: bool = True
    """``StopResponse`` ends a tool without an ERROR log (1.2.18 on)."""
    wheel_sha256: str = ""
    """Of upstream's wheel as pip downloaded it (pip checks the index's published hash)."""

    @property
    def ok(self) -> bool:
        return self.applies and self.reverses and self.compiles and self.quiet_stop


def patch_files(files: dict[str, bytes], patch_text: str) -> dict[str, bytes]:
    """The patched bytes of every file the patch touches; raise ``PatchError`` on any hunk."""
    out = {}
    for patched_file in applier.parse(patch_text):
        path = applier.target_path(patched_file, STRIP)
        if path not in files:
            raise applier.PatchError(f"the patch changes {path}, which is not a target file")
        text, _ = applier.apply_file(files[path].decode("utf-8"), patched_file)
        out[path] = text.encode("utf-8")
    return out


def unpatch_files(files: dict[str, bytes], patch_text: str) -> dict[str, bytes]:
    out = {}
    for patched_file in applier.parse(patch_text):
        path = applier.target_path(patched_file, STRIP)
        text, _ = applier.apply_file(files[path].decode("utf-8"), patched_file, reverse=True)
        out[path] = text.encode("utf-8")
    return out


def check_release(
    version: str, files: dict[str, bytes], patch_names: list[str], quiet_stop: bool = True
) -> Result:
    """Try each patch in turn; the first that applies, reverses and compiles serves."""
    result = Result(version, quiet_stop=quiet_stop)
    if not quiet_stop:
        result.reason = NOISY_STOP
    if b"def wait_for_playout" not in files["livekit/agents/voice/events.py"]:
        result.reason = "no RunContext.wait_for_playout in this release (it appears in 1.2.2)"
        return result
    errors = []
    for name in patch_names:
        text = (patches_dir() / name).read_text(encoding="utf-8")
        try:
            patched = patch_files(files, text)
        except applier.PatchError as e:
            errors.append(f"{name}: {e}")
            continue
        result.patch, result.applies = name, True
        result.reverses = unpatch_files(patched, text) == files
        try:
            for path, data in patched.items():
                compile(data, path, "exec")
            result.compiles = True
        except SyntaxError as e:
            result.reason = f"patched {e.filename} does not compile: {e}"
        result.hashes = {
            path: {"pristine": sha256(files[path]), "patched": sha256(patched[path])}
            for path in TARGETS
        }
        result.older = older_revisions(files, name)
        return result
    result.reason = "; ".join(errors)
    return result


def older_revisions(files: dict[str, bytes], name: str) -> dict[int, dict[str, str]]:
    """Revision -> patched hashes, for each kept older revision of ``name`` that applies exactly
    and reverses to ``files``."""
    out = {}
    for revision in sorted(revisions()):
        path = patches_dir() / REVISIONS_DIR / str(revision) / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        try:
            patched = patch_files(files, text)
        except applier.PatchError:
            continue
        if unpatch_files(patched, text) == files:
            out[revision] = {p: sha256(patched[p]) for p in TARGETS}
    return out


def revisions() -> list[int]:
    """The older revisions kept under ``patches/revisions/``."""
    root = patches_dir() / REVISIONS_DIR
    found = [int(d.name) for d in root.iterdir() if d.name.isdigit()] if root.is_dir() else []
    return sorted(found)


def current_revision() -> int:
    """The revision of the patches in ``patches/``: one past the newest kept older one."""
    return max(revisions(), default=0) + 1


def run(versions: list[str], patch_names: list[str]) -> list[Result]:
    with ThreadPoolExecutor(max_workers=6) as pool:
        wheels = list(pool.map(wheel, versions))
    results = []
    for v, w in zip(versions, wheels, strict=True):
        result = check_release(v, read_targets(w), patch_names, stop_response_is_quiet(w))
        result.wheel_sha256 = file_sha256(w)
        results.append(result)
    return results


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def index_data(results: list[Result], patch_names: list[str]) -> dict[str, object]:
    served = {}
    for name in patch_names:
        versions = [r.version for r in results if r.patch == name and r.ok]
        served[name] = {"first": versions[0], "last": versions[-1]} if versions else None
    releases: dict[str, object] = {}
    for r in results:
        if r.ok:
            entry: dict[str, object] = {
                "patch": r.patch,
                "files": r.hashes,
                "wheel_sha256": r.wheel_sha256,
            }
            if r.older:
                entry["revisions"] = {str(n): h for n, h in sorted(r.older.items())}
            releases[r.version] = entry
        else:
            releases[r.version] = {"unsupported": r.reason or "the patch does not round-trip"}
    return {
        "bug": "livekit/agents#5359",
        "package": PACKAGE,
        "strip": STRIP,
        "targets": list(TARGETS),
        "revision": current_revision(),
        "patches": served,
        "releases": releases,
    }


def table(results: list[Result]) -> str:
    rows = [f"{'release':<9} {'patch':<52} applies reverses compiles supported"]
    for r in results:
        mark = {True: "yes", False: "no"}
        rows.append(
            f"{r.version:<9} {r.patch or '-':<52} {mark[r.applies]:<7} {mark[r.reverses]:<8} "
            f"{mark[r.compiles]:<8} {mark[r.ok]}" + (f"   ({r.reason})" if r.reason else "")
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m livekit_agents_patch.install.matrix")
    parser.add_argument("--write-index", action="store_true", help="rewrite patches/index.json")
    parser.add_argument(
        "--pypi", action="store_true", help="also check releases on PyPI missing from the index"
    )
    args = parser.parse_args(argv)
    patch_names = sorted(p.name for p in patches_dir().glob("*.patch"))
    if args.write_index:
        versions = pypi_versions()
    else:
        versions = sorted(load().releases, key=version_key)
        if args.pypi:
            versions = sorted(set(versions) | set(pypi_versions()), key=version_key)
    results = run(versions, patch_names)
    print(table(results))
    if args.write_index:
        data = index_data(results, patch_names)
        path = patches_dir() / "index.json"
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")
        return 0
    expected = load().data
    actual = index_data(results, patch_names)
    problems = [
        f"{v}: index says {expected['releases'].get(v)}, the wheel gives {entry}"
        for v, entry in actual["releases"].items()  # type: ignore[attr-defined]
        if expected["releases"].get(v) != entry
    ]
    if expected.get("revision") != actual["revision"]:
        problems.append(
            f"the index says revision {expected.get('revision')}, patches/ holds revision "
            f"{actual['revision']}"
        )
    for problem in problems:
        print(problem)
    supported = sum(1 for r in results if r.ok)
    print(
        f"{supported} of {len(results)} releases supported; {len(problems)} differ from the index"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
