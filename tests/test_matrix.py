"""The version matrix: every release in the index, from its real wheel, matches its entry.

Supported releases: the patch applies exactly, reverses to the pristine bytes, the patched files
compile, and the hashes are the index's. Unsupported ones are unsupported for the stated reason.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from livekit_agents_patch.install import applier, matrix
from livekit_agents_patch.install.index import load, patches_dir, version_key

RELEASES = sorted(load().releases, key=version_key)


@pytest.fixture(scope="session")
def results() -> dict[str, matrix.Result]:
    patch_names = sorted(load().data["patches"])
    return {r.version: r for r in matrix.run(RELEASES, patch_names)}


@pytest.mark.parametrize("version", RELEASES)
def test_release_matches_index(results: dict[str, matrix.Result], version: str) -> None:
    result, entry = results[version], load().data["releases"][version]
    if "unsupported" in entry:
        assert not result.ok
        assert result.reason == entry["unsupported"]
    else:
        assert (result.applies, result.reverses, result.compiles) == (True, True, True)
        assert result.patch == entry["patch"]
        assert result.hashes == entry["files"]


def test_range_is_complete() -> None:
    """Every release from 1.2.18 on is supported; before, the patch applies but is refused."""
    supported = load().supported()
    assert supported == [v for v in RELEASES if version_key(v) >= version_key("1.2.18")]


def test_noisy_stop_response_releases(results: dict[str, matrix.Result]) -> None:
    """1.2.2-1.2.17 log StopResponse at ERROR: the patch applies, the release is unsupported."""
    noisy = [v for v, r in results.items() if r.reason == matrix.NOISY_STOP]
    assert noisy == [v for v in RELEASES if (1, 2, 2) <= version_key(v) < (1, 2, 18)]
    assert all(results[v].applies and results[v].reverses for v in noisy)


def test_changed_context_is_refused() -> None:
    """Exact application: one changed context line and the hunk does not apply (no fuzz)."""
    newest = load().releases[load().supported()[-1]]
    files = matrix.read_targets(matrix.wheel(newest.version))
    events = "livekit/agents/voice/events.py"
    changed = files[events].replace(
        b"this tool to finish playing.", b"this tool to finish playing!", 1
    )
    assert changed != files[events]
    with pytest.raises(applier.PatchError, match="expected .*this tool to finish playing"):
        matrix.patch_files({**files, events: changed}, load().patch_text(newest.patch or ""))


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize("version", [load().supported()[0], load().supported()[-1]])
def test_git_apply_agrees(version: str, tmp_path: Path) -> None:
    """The .patch stays valid for ``git apply -p2`` in site-packages, with the same result."""
    files = matrix.read_targets(matrix.wheel(version))
    for relative, data in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(data)
    patch = load().releases[version].patch or ""
    subprocess.run(["git", "apply", "-p2", str(patches_dir() / patch)], cwd=tmp_path, check=True)
    ours = matrix.patch_files(files, load().patch_text(patch))
    assert {rel: (tmp_path / rel).read_bytes() for rel in files} == ours
