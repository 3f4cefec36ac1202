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
        assert result.wheel_sha256 == entry["wheel_sha256"]  # the pin is the downloaded file's


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


# --- the download: retried, pip's words kept (issue 17, defect 13) ---------------------------


def _fake_pip(tmp_path: Path, failures: int) -> list[str]:
    """A pip that fails ``failures`` times (exit 2, a message on stderr), then downloads."""
    counter = tmp_path / "calls"
    script = tmp_path / "pip"
    script.write_text(
        "#!/bin/sh\n"
        f'echo x >> "{counter}"\n'
        f'if [ "$(wc -l < "{counter}")" -le {failures} ]; then\n'
        '  echo "ERROR: HTTP error 503 while getting the wheel" >&2; exit 2\n'
        "fi\n"
        'while [ "$1" != "-d" ]; do shift; done\n'
        f'cp "{matrix.wheel(NEWEST)}" "$2/"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return [str(script)]


NEWEST = load().supported()[-1]


def test_a_failed_download_is_tried_again_after_a_backoff(tmp_path: Path) -> None:
    """Before: one transient `pip download` failure failed the whole matrix, pip's words lost."""
    waits: list[float] = []
    pip = _fake_pip(tmp_path, failures=1)
    got = matrix.wheel(NEWEST, tmp_path / "cache", pip=pip, sleep=waits.append, backoff=0.5)
    assert got.read_bytes() == matrix.wheel(NEWEST).read_bytes()
    assert waits == [0.5]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [got.name]  # no scratch dir


def test_a_download_that_keeps_failing_fails_with_pips_stderr(tmp_path: Path) -> None:
    waits: list[float] = []
    pip = _fake_pip(tmp_path, failures=99)
    with pytest.raises(matrix.DownloadError) as caught:
        matrix.wheel(NEWEST, tmp_path / "cache", pip=pip, sleep=waits.append, backoff=1)
    assert waits == [1, 2]  # three tries, the backoff doubling
    assert "failed 3 time(s)" in str(caught.value)
    assert "HTTP error 503 while getting the wheel" in str(caught.value)
    assert list((tmp_path / "cache").iterdir()) == []
    assert isinstance(caught.value, subprocess.CalledProcessError)  # wheel.fetch's contract
