"""Releases the patch index does not list (a newer release, a pre-release), behind an opt-in.

The index only vouches for releases it has seen. For any other, ``--allow-unlisted`` asks for two
checks instead, both made before anything is written:

1. ``release``: the newest patch applies exactly (every hunk's context unchanged, lines may move)
   to the files the wheel's ``RECORD`` vouches for, or reverses exactly from files that are the
   patch's result. That yields a release entry like the index's, for this install only.
2. ``contract``: the contract's properties hold on the patched files in this very environment:
   they are written to a temporary overlay, and ``verify`` runs with it first on the path.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

from unidiff.patch import PatchedFile

from ..exits import Exit
from . import applier, bounded, verify_target
from .index import STRIP, TARGETS, Index, Release, sha256, version_key
from .target import PatchingError, Target

FLAG = "--allow-unlisted"

CONTRACT_EXAMPLES = 200
"""Scenarios explored on an unlisted release before its files are replaced."""


def newest_patch(index: Index) -> str:
    """The patch of the newest release the index supports: the one to try on a newer release."""
    newest = max(index.supported(), key=version_key)
    patch = index.releases[newest].patch
    assert patch is not None
    return patch


def refusal(target: Target, index: Index) -> PatchingError:
    """Without the opt-in: say that the release is unlisted and what the flag would check."""
    supported = sorted(index.supported(), key=version_key)
    return PatchingError(
        Exit.UNSUPPORTED,
        f"livekit-agents {target.version} is not in the patch index (it covers {supported[0]} "
        f"to {supported[-1]}). Next: `{FLAG}` applies the patch anyway if every hunk applies "
        "exactly and the contract's properties hold on the patched files in this environment "
        "(checked before anything is written); or upgrade livekit-agents-patch. "
        "`livekit-agents-patch verify` tells whether this release still needs the fix.",
    )


def show_refusal(version: str, index: Index) -> PatchingError:
    """``show`` has no ``FLAG``: for an unlisted release, name what works instead."""
    supported = sorted(index.supported(), key=version_key)
    prog = "livekit-agents-patch"
    return PatchingError(
        Exit.UNSUPPORTED,
        f"livekit-agents {version} is not in the patch index (it covers {supported[0]} to "
        f"{supported[-1]}), so there is no patch of its own to show. Next: `{prog} show "
        f"--release {supported[-1]}` prints the newest release's patch, the one `{prog} check "
        f"{FLAG}` tries on an unlisted release (and says whether it applies); or upgrade "
        "livekit-agents-patch.",
    )


def release(target: Target, contents: Mapping[str, bytes | None], index: Index) -> Release:
    """An index-like entry for ``target``'s unlisted release, from its files and the newest patch.

    A file is pristine when its bytes are the ones the wheel's ``RECORD`` lists (or, without a
    ``RECORD`` entry, when the patch applies to it), patched when the patch reverses exactly to
    such bytes. Raises ``PatchingError`` naming the hunk when the patch fits neither way.
    """
    name = newest_patch(index)
    try:
        diffs = {applier.target_path(f, STRIP): f for f in applier.parse(index.patch_text(name))}
    except (OSError, applier.PatchError) as e:
        raise PatchingError(Exit.USAGE, f"cannot read the patch {name}: {e}") from e
    pristine: dict[str, str] = {}
    patched: dict[str, str] = {}
    for relative in TARGETS:
        data = contents.get(relative)
        path = target.path(relative)
        if data is None:
            raise PatchingError(
                Exit.FOREIGN_EDIT, f"expected {path}, found no file. Next: {target.reinstall}"
            )
        forward, error = _placed(data, diffs[relative], reverse=False)
        backward, _ = _placed(data, diffs[relative], reverse=True)
        recorded = target.record.get(relative)
        if forward is not None and recorded in (None, sha256(data)):
            pristine[relative], patched[relative] = sha256(data), sha256(forward)
        elif backward is not None and recorded in (None, sha256(backward)):
            pristine[relative], patched[relative] = sha256(backward), sha256(data)
        elif recorded in (None, sha256(data)):
            raise PatchingError(
                Exit.UNSUPPORTED,
                f"livekit-agents {target.version} is not in the patch index, and {name} does not "
                f"apply exactly to its {relative}: {error}. Next: keep this release unpatched "
                "until a livekit-agents-patch release covers it.",
            )
        else:
            raise PatchingError(
                Exit.FOREIGN_EDIT,
                f"{path}: expected the bytes the wheel's RECORD lists (sha256 {recorded[:12]}…) "
                f"or those bytes patched by {name}, found sha256 {sha256(data)[:12]}…, neither. "
                f"Next: put back the wheel's files with {target.reinstall}, then run this again.",
            )
    # judged by the current revision only: older revisions are kept for listed releases
    return Release(
        target.version,
        name,
        None,
        pristine,
        patched,
        revision=index.revision,
        revisions={index.revision: patched},
    )


def _placed(data: bytes, diff: PatchedFile, *, reverse: bool) -> tuple[bytes | None, str]:
    """The file with every hunk applied (or reversed), or ``None`` and why not."""
    try:
        text, _ = applier.apply_file(data.decode("utf-8"), diff, reverse=reverse)
    except (UnicodeDecodeError, applier.PatchError) as e:
        return None, str(e)
    return text.encode("utf-8"), ""


def contract(target: Target, new: Mapping[str, bytes], examples: int = CONTRACT_EXAMPLES) -> None:
    """Run ``verify`` on a copy of the package holding ``new``; raise ``PatchingError`` unless
    every property holds. Nothing of the install is written."""
    if (target.root / "livekit" / "__init__.py").exists():
        raise PatchingError(
            Exit.CANNOT_VERIFY,
            f"cannot check the contract on livekit-agents {target.version}: {target.root}/livekit "
            "is a regular package, so a patched copy cannot be put ahead of it. Nothing changed.",
        )
    with tempfile.TemporaryDirectory(prefix="livekit-agents-patch-contract-") as tmp:
        overlay = Path(tmp)
        if target.root.is_file():  # a wheel (see ``wheel``): its package, extracted
            with zipfile.ZipFile(target.root) as archive:
                package = [n for n in archive.namelist() if n.startswith("livekit/agents/")]
                archive.extractall(overlay, members=package)
        else:
            shutil.copytree(
                target.package_dir,
                overlay / "livekit" / "agents",
                ignore=shutil.ignore_patterns("__pycache__"),
                symlinks=False,
            )
        for relative, data in new.items():
            (overlay / relative).write_bytes(data)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (tmp, env.get("PYTHONPATH"))))
        python = target.command or target.python or sys.executable  # as verify runs it
        command = [sys.executable, "-m", "livekit_agents_patch", "--python", python]
        command += ["verify", "--json", "--examples", str(examples)]
        command += ["--timeout", f"{verify_target.DEFAULT_TIMEOUT:g}"]
        # its own group: stopped here, the nested verify gets SIGTERM and ends its checks
        done = bounded.run(command, timeout=None, grace=10, env=env)
    try:  # under --json the CLI prints exactly one object, always; unless it was killed
        result = json.loads(done.stdout)
        code = result["exit"]
        trace = result["report"] if code == Exit.VIOLATION else None  # the shrunk trace, in words
    except (ValueError, KeyError, TypeError):
        tail = " | ".join(done.stderr.strip().splitlines()[-3:]) or "nothing"
        raise PatchingError(
            Exit.CANNOT_VERIFY,
            f"livekit-agents {target.version} is not in the patch index, and the contract's "
            f"checks on the patched files gave no answer (verify exited {done.returncode}, "
            f"stderr: {tail}). Nothing changed. Next: run `livekit-agents-patch verify` in this "
            "environment to see why, then try again.",
        ) from None
    if code == Exit.OK:
        return
    if code == Exit.VIOLATION:
        raise PatchingError(
            Exit.VIOLATION,
            f"livekit-agents {target.version} is not in the patch index; every hunk applies, but "
            f"the contract does not hold on the patched files in this environment:\n{trace}\n"
            "Nothing changed. Next: keep this release unpatched and report it to "
            "livekit-agents-patch.",
        )
    raise PatchingError(
        Exit.CANNOT_VERIFY,
        f"livekit-agents {target.version} is not in the patch index, and the contract's checks "
        f"could not run on the patched files (verify exited {code}: {result.get('error')}). "
        "Nothing changed. Next: make `livekit-agents-patch verify` run in this environment (for "
        "`wheel`: pass --python an interpreter whose environment has this release's "
        "dependencies), then try again.",
    )
