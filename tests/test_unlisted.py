"""``--allow-unlisted``: a release the index does not list, made from the real 1.8.9 package.

Each synthetic release is a copy of the real package with a true ``RECORD`` and a new version
(``tests/support/unlisted.py``), imported with the real environment's dependencies, so the
contract check runs the real code. Bytes on disk are checked after every refusal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support.cli import LK, NEWEST, cli, expected, json_of, real_venv_ready, sha
from support.fake_install import EVENTS, SPEECH, WHEELS, make
from support.unlisted import CONTEXT_CHANGED, INTERRUPT_NEVER_SEEN, relabelled, relabelled_wheel

from livekit_agents_patch.exits import Exit
from livekit_agents_patch.install import matrix

PYTHON = LK / "bin" / "python"
UNLISTED = "1.8.99"

if not real_venv_ready(LK / ".ok") and os.environ.get("LIVEKIT_AGENTS_PATCH_REQUIRE_REAL"):
    raise AssertionError(f"{LK} is required (make venvs)")
pytestmark = pytest.mark.skipif(
    not real_venv_ready(LK / ".ok"),
    reason=f"needs the real-package venv {LK} (`make venvs`); `make test` runs this in cli-real",
)


def _bytes(root: Path) -> dict[str, bytes]:
    return {relative: (root / relative).read_bytes() for relative in (SPEECH, EVENTS)}


def test_unlisted_release_applies_only_with_the_flag_and_reverts(tmp_path: Path) -> None:
    root = relabelled(tmp_path / "site", PYTHON, UNLISTED)
    pristine = _bytes(root)
    refused = cli("apply", root=root, python=str(PYTHON))
    assert refused.returncode == Exit.UNSUPPORTED
    assert f"livekit-agents {UNLISTED} is not in the patch index" in refused.stderr
    assert "Next: `--allow-unlisted`" in refused.stderr
    assert _bytes(root) == pristine

    checked = cli("check", "--allow-unlisted", root=root, python=str(PYTHON))
    assert checked.returncode == Exit.OK, checked.stderr
    assert f"unlisted release {UNLISTED} (hunks exact, contract holds)" in checked.stdout
    assert _bytes(root) == pristine

    done = cli("apply", "--allow-unlisted", "--json", root=root, python=str(PYTHON))
    assert json_of(done)["exit"] == Exit.OK, done.stdout
    for relative, data in _bytes(root).items():  # the same files as 1.8.9: the same result
        assert sha(data) == expected(NEWEST, "patched", relative)

    status = json_of(cli("status", "--json", root=root, python=str(PYTHON)))
    assert status["state"] == "patched" and status["listed"] is False
    assert f"release {UNLISTED} is not in the patch index" in str(status["summary"])
    again = cli("apply", "--allow-unlisted", root=root, python=str(PYTHON))
    assert again.returncode == Exit.OK and "already applied" in again.stdout

    reverted = cli("revert", root=root, python=str(PYTHON))  # no flag needed to go back
    assert reverted.returncode == Exit.OK, reverted.stderr
    assert _bytes(root) == pristine


def test_a_hunk_whose_context_changed_is_refused_naming_it(tmp_path: Path) -> None:
    root = relabelled(tmp_path / "site", PYTHON, UNLISTED, CONTEXT_CHANGED)
    before = _bytes(root)
    for command in ("check", "apply"):
        done = cli(command, "--allow-unlisted", root=root, python=str(PYTHON))
        assert done.returncode == Exit.UNSUPPORTED, done.stderr
        assert f"does not apply exactly to its {SPEECH}" in done.stderr
        assert "cannot apply hunk @@" in done.stderr
        assert "# steps" in done.stderr  # the line that changed
    assert _bytes(root) == before
    status = json_of(cli("status", "--json", root=root, python=str(PYTHON)))
    assert status["state"] == "unsupported"


def test_hunks_apply_but_the_contract_fails_nothing_written(tmp_path: Path) -> None:
    root = relabelled(tmp_path / "site", PYTHON, UNLISTED, INTERRUPT_NEVER_SEEN)
    before = _bytes(root)
    for command in ("check", "apply"):
        done = cli(command, "--allow-unlisted", root=root, python=str(PYTHON))
        assert done.returncode == Exit.VIOLATION, done.stderr
        assert "the contract does not hold on the patched files" in done.stderr
        assert "Nothing changed" in done.stderr
        assert "1. " in done.stderr  # the counterexample, as a numbered event trace
    assert _bytes(root) == before
    assert not list(root.rglob("*.livekit-agents-patch.tmp"))
    assert json_of(cli("status", "--json", root=root, python=str(PYTHON)))["state"] == "pristine"


def test_a_foreign_edit_of_an_unlisted_release_is_refused(tmp_path: Path) -> None:
    root = relabelled(tmp_path / "site", PYTHON, UNLISTED)
    (root / EVENTS).write_bytes((root / EVENTS).read_bytes() + b"# local edit\n")
    before = _bytes(root)
    done = cli("apply", "--allow-unlisted", root=root, python=str(PYTHON))
    assert done.returncode == Exit.FOREIGN_EDIT, done.stderr
    assert "expected the bytes the wheel's RECORD lists" in done.stderr
    assert _bytes(root) == before


# --- wheel --allow-unlisted --------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Path:
    return matrix.wheel(NEWEST, WHEELS)


def _wheel(source: Path, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(
        "wheel", "--release", UNLISTED, "--from", str(source), "--output", str(output), *extra
    )


def test_wheel_of_an_unlisted_release_only_with_the_flag(upstream: Path, tmp_path: Path) -> None:
    source = relabelled_wheel(upstream, tmp_path / "src", UNLISTED)
    refused = _wheel(source, tmp_path / "out")
    assert refused.returncode == Exit.UNSUPPORTED and "--allow-unlisted" in refused.stderr
    assert not (tmp_path / "out").exists()
    done = _wheel(source, tmp_path / "out", "--allow-unlisted", "--python", str(PYTHON), "--json")
    built = json_of(done)
    assert built["exit"] == Exit.OK, done.stdout
    assert str(built["version"]).startswith(f"{UNLISTED}+fix5359.r")
    with zipfile.ZipFile(str(built["path"])) as archive:
        for relative in (SPEECH, EVENTS):  # 1.8.9's files: 1.8.9's patched bytes
            assert sha(archive.read(relative)) == expected(NEWEST, "patched", relative)


def test_wheel_of_an_unlisted_release_whose_contract_fails(upstream: Path, tmp_path: Path) -> None:
    source = relabelled_wheel(upstream, tmp_path / "src", UNLISTED, INTERRUPT_NEVER_SEEN)
    done = _wheel(source, tmp_path / "out", "--allow-unlisted", "--python", str(PYTHON))
    assert done.returncode == Exit.VIOLATION, done.stderr
    assert "the contract does not hold on the patched files" in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    changed = relabelled_wheel(upstream, tmp_path / "src2", UNLISTED, CONTEXT_CHANGED)
    done = _wheel(changed, tmp_path / "out", "--allow-unlisted", "--python", str(PYTHON))
    assert done.returncode == Exit.UNSUPPORTED and "cannot apply hunk @@" in done.stderr


# --- verify names what the files are ----------------------------------------------------------


def test_verify_names_a_foreign_edit_neither_stock_nor_patched(tmp_path: Path) -> None:
    """Someone else's edit (here one changed line; say, a closed PR applied by hand) is what
    verify says it checked: before, its subject said "(stock)" for any install without
    ``SpeechInterruptedError``."""
    root = relabelled(tmp_path / "site", PYTHON, NEWEST, CONTEXT_CHANGED)
    done = cli("verify", "--examples", "50", root=root, python=str(PYTHON))
    assert done.returncode == Exit.VIOLATION, done.stdout + done.stderr
    subject = f"FAIL: livekit-agents {NEWEST} (foreign edit: neither pristine nor patched) at "
    assert done.stdout.startswith(subject), done.stdout
    assert "(stock)" not in done.stdout and "(pristine)" not in done.stdout


@pytest.mark.parametrize("stdout", ["", "not json\n", '{"exit": 1}\n'])
def test_a_contract_run_that_gives_no_answer_is_exit_9_not_an_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stdout: str
) -> None:
    """The nested verify killed (no JSON), or its object without the report: before, a
    ``ValueError``/``KeyError`` reached the CLI as exit 10 "internal error"."""
    from livekit_agents_patch.install import bounded, unlisted
    from livekit_agents_patch.install.target import PatchingError, Target

    root = tmp_path / "site"
    (root / "livekit" / "agents").mkdir(parents=True)
    target = Target(version="9.9.9", root=root, record={})
    died = subprocess.CompletedProcess(["verify"], -9, stdout=stdout, stderr="Killed\n")
    monkeypatch.setattr(bounded, "run", lambda *a, **k: died)
    with pytest.raises(PatchingError) as refused:
        unlisted.contract(target, {})
    assert refused.value.code == Exit.CANNOT_VERIFY
    assert "gave no answer (verify exited -9, stderr: Killed)" in str(refused.value)


def test_the_contract_runs_with_python_as_given_not_the_interpreter_it_execs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrapper (``--python ./run-python``) may set the environment; ``verify`` runs it as
    given, and so must ``--allow-unlisted``'s contract run (before: the target's
    ``sys.executable``, the wrapped interpreter, so another environment could be checked)."""
    from livekit_agents_patch.install import bounded, environment, unlisted

    wrapper = tmp_path / "run-python"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PYTHONPATH", str(make(tmp_path / "site", NEWEST)))
    target = environment.find(str(wrapper))
    assert target.command == str(wrapper) and target.python != str(wrapper)
    ran: list[list[str]] = []

    def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        return subprocess.CompletedProcess(command, 0, stdout='{"exit": 0}', stderr="")

    monkeypatch.setattr(bounded, "run", run)
    unlisted.contract(target, {})
    assert ran[0][ran[0].index("--python") + 1] == str(wrapper)
