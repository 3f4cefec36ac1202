"""The CLI under an adversarial review of issue 17's promises: each test here failed on the
merged main before its fix (the commit that added it says how it was found)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.cli import NEWEST, PYTHON, Install, cli, cli_env, faults, read_until
from support.fake_install import EVENTS, REPO, SPEECH, WHEELS, make, snapshot

from livekit_agents_patch.exits import Exit
from livekit_agents_patch.install import matrix


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return make(tmp_path / "site", NEWEST)


# --- a standard descriptor closed by the caller (`>&-`, `2>&-`) ------------------------------


def _closed(redirection: str) -> tuple[str, ...]:
    """A prefix that runs the CLI with ``redirection`` applied (``>&-``: no descriptor 1 at all,
    which Python shows as ``sys.stdout = None``; a broken pipe is another case)."""
    return ("/bin/sh", "-c", f'exec "$@" {redirection}', "sh")


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (("status",), Exit.PRISTINE),
        (("status", "--json"), Exit.PRISTINE),
        (("apply",), Exit.OK),
        (("show", "--release", "9.9", "--json"), Exit.UNSUPPORTED),
        (("--version",), Exit.OK),
    ],
)
def test_a_closed_stdout_keeps_the_exit_and_prints_no_traceback(
    site: Path, argv: tuple[str, ...], code: int
) -> None:
    """Before: ``sys.stdout`` is None, so the first print raised AttributeError: exit 10
    ("internal error ... report this") with a traceback, and under --json a bare traceback
    and exit 1."""
    done = cli(*argv, root=site, prefix=_closed(">&-"))
    assert (done.returncode, done.stderr) == (code, ""), done.stderr


@pytest.mark.parametrize("redirection", ["2>&-", ">&- 2>&-"])
def test_a_closed_stderr_keeps_refusals_off_stdout_and_the_exit(
    site: Path, redirection: str
) -> None:
    """Before: with ``2>&-`` a refusal went to stdout (``show --release X > file 2>&-`` wrote
    the error into the file), and with both closed every command ended with exit 1."""
    done = cli("show", "--release", "9.9", root=site, prefix=_closed(redirection))
    assert (done.returncode, done.stdout) == (Exit.UNSUPPORTED, "")
    done = cli("status", root=site, prefix=_closed(redirection))
    assert done.returncode == Exit.PRISTINE
    if redirection == "2>&-":
        assert done.stdout.startswith(f"livekit-agents {NEWEST} at ")
        done = cli("show", "--release", "9.9", "--json", root=site, prefix=_closed(redirection))
        assert json.loads(done.stdout)["exit"] == done.returncode == Exit.UNSUPPORTED


# --- an empty value for an option that names a release, a directory or a file ----------------


@pytest.mark.parametrize(
    "argv",
    [
        ("show", "--release", ""),
        ("show", "--release", " "),
        ("wheel", "--release", ""),
        ("wheel", "--release", "\t"),
        ("wheel", "--release", NEWEST, "--output", ""),
        ("wheel", "--release", NEWEST, "--output", " "),
        ("wheel", "--release", NEWEST, "--from", ""),
    ],
)
def test_an_empty_release_output_or_from_is_a_usage_error(
    site: Path, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    """Before: ``show --release ""`` printed the installed release's patch (exit 0),
    ``wheel --output ""`` wrote into the working directory and ``--output " "`` into a new
    directory named " ", ``--release ""`` was "not in the patch index" (exit 4) and
    ``--from ""`` said "expected . to be a regular file": an unset variable taken for a value,
    as ``--python ""`` was before issue 17."""
    work = tmp_path / "work"
    work.mkdir()
    upstream = str(matrix.wheel(NEWEST, WHEELS))
    if "--from" not in argv:
        argv = (*argv, "--from", upstream) if argv[0] == "wheel" else argv
    for json_flag in ((), ("--json",)):
        done = subprocess.run(
            [PYTHON, "-m", "livekit_agents_patch", *argv, *json_flag],
            env=cli_env(site, {"XDG_CACHE_HOME": str(tmp_path / "cache")}),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=work,
        )
        assert done.returncode == Exit.USAGE, done.stdout + done.stderr
        message = json.loads(done.stdout)["error"] if json_flag else done.stderr
        assert "found an empty value" in message and "mistyped variable" in message
        assert json_flag or done.stdout == ""
    assert list(work.iterdir()) == []


# --- a timeout too long for the operating system to wait -------------------------------------


@pytest.mark.parametrize("value", ["1e308", "2147484"])
def test_a_verify_timeout_past_what_the_os_can_wait_is_a_usage_error(value: str) -> None:
    """Before: any finite value was accepted, and past ~24.8 days (poll's INT_MAX ms) the wait
    raised OverflowError: exit 9, "verify failed before a verdict ... Next: report this"."""
    done = cli("verify", "--examples", "1", "--timeout", value, "--json")
    data = json.loads(done.stdout)
    assert data["exit"] == done.returncode == Exit.USAGE, data
    assert "at most" in str(data["error"])


# --- what sits at the download cache's name ---------------------------------------------------


def test_a_directory_at_the_download_cache_s_wheel_name_is_refused_not_a_crash(
    tmp_path: Path,
) -> None:
    """Before: the entry failed the checks (not a regular file), and removing it so that it
    is downloaded again raised IsADirectoryError: exit 10, "internal error ... report this".
    Now exit 2 names it and what to do; it is left as it is (never removed recursively), and
    nothing is downloaded or written."""
    cache = tmp_path / "cache"
    planted = (
        cache / "livekit-agents-patch" / "wheels" / f"livekit_agents-{NEWEST}-py3-none-any.whl"
    )
    (planted / "inside").mkdir(parents=True)
    out = tmp_path / "out"
    for json_flag in ((), ("--json",)):
        done = cli(
            "wheel",
            "--release",
            NEWEST,
            "--output",
            str(out),
            *json_flag,
            env={"XDG_CACHE_HOME": str(cache)},
        )
        assert done.returncode == Exit.USAGE, done.stdout + done.stderr
        message = json.loads(done.stdout)["error"] if json_flag else done.stderr
        assert f"{planted} fails the checks" in message and "a directory" in message
        assert "cannot be removed" in message and "--from" in message
    assert (planted / "inside").is_dir() and not out.exists()


# --- a signal that lands once the result is printed ------------------------------------------


AFTER_THE_RESULT = "sys.stdout.write~\n#1:after=SIGTERM"
"""SIGTERM right after the command wrote its result (one line ending in a newline) to stdout:
``docker stop`` or a CI cancel racing the last line."""


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (("status", "--json"), Exit.PRISTINE),
        (("apply", "--json"), Exit.OK),
        (("bogus", "--json"), Exit.USAGE),
        (("--version", "--json"), Exit.OK),
    ],
)
def test_a_signal_after_the_result_is_printed_keeps_one_object_and_its_exit(
    site: Path, argv: tuple[str, ...], code: int
) -> None:
    """Before: the handler raised ``Stopped`` after the result was written, and the CLI printed
    a second JSON object, "stopped by SIGTERM before it finished", and exited 143: two objects,
    the first one's "exit" not the process's (in text: "applied" then "stopped before it
    finished")."""
    done = cli(*argv, root=site, env=faults(AFTER_THE_RESULT))
    objects = done.stdout.splitlines()
    assert len(objects) == 1, done.stdout
    assert json.loads(objects[0])["exit"] == done.returncode == code
    assert "stopped" not in done.stderr


def test_a_signal_after_a_text_result_adds_no_stopped_line(site: Path) -> None:
    assert cli("apply", root=site).returncode == Exit.OK
    done = cli("revert", root=site, env=faults(AFTER_THE_RESULT))
    assert done.returncode == Exit.OK, done.stderr
    assert done.stdout.startswith("reverted: ") and done.stderr == ""
    assert json.loads(cli("status", "--json", root=site).stdout)["state"] == "pristine"


# --- what sits in __pycache__ -----------------------------------------------------------------


def test_a_directory_at_a_bytecode_name_is_no_bytecode_and_does_not_fail_the_write(
    site: Path,
) -> None:
    """Before: ``check`` said "would apply", then ``apply`` wrote both files, failed to unlink
    the directory (``IsADirectoryError``), rolled back and exited 7 naming "an I/O error" and
    `dmesg`. Python never loads a directory as bytecode (it compiles the source), so there is
    nothing stale to remove: the directory is left alone and the write goes through."""
    voice = site / SPEECH.rsplit("/", 1)[0]
    planted = voice / "__pycache__" / "speech_handle.cpython-311.pyc"
    (planted / "inside").mkdir(parents=True)
    done = cli("apply", root=site)
    assert done.returncode == Exit.OK, done.stderr
    assert Install(site, NEWEST).state() == {SPEECH: "patched", EVENTS: "patched"}
    assert (planted / "inside").is_dir()
    assert cli("revert", root=site).returncode == Exit.OK


# --- the tool's own patch index, damaged -------------------------------------------------------


@pytest.mark.parametrize("damage", ["{", "[]", "{}", '{"releases": {"1.8.9": {}}}', "\x00\xff"])
def test_a_damaged_patch_index_is_exit_2_naming_it_not_an_internal_error(
    site: Path, tmp_path: Path, damage: str
) -> None:
    """Before: exit 10 with a traceback (JSONDecodeError, KeyError, TypeError, IndexError),
    "report this", and for apply "A failed write was rolled back" when nothing was written;
    an unreadable patch was already exit 2 "reinstall this tool"."""
    tool = tmp_path / "tool"
    shutil.copytree(REPO / "livekit_agents_patch", tool / "livekit_agents_patch")
    shutil.copytree(REPO / "patches", tool / "patches")
    index = tool / "patches" / "index.json"
    index.write_bytes(damage.encode("latin-1"))
    before = snapshot(site)
    for argv in (("status",), ("apply", "--json"), ("wheel", "--release", NEWEST, "--json")):
        done = cli(*argv, env={"PYTHONPATH": f"{tool}:{site}"})
        assert done.returncode == Exit.USAGE, done.stdout + done.stderr
        message = json.loads(done.stdout)["error"] if "--json" in argv else done.stderr
        assert f"cannot read the patch index {index}" in message, message
        assert "reinstall livekit-agents-patch" in message and "Traceback" not in done.stderr
    assert snapshot(site) == before


# --- a FIFO among the files the probe reads ---------------------------------------------------


def test_a_fifo_at_version_py_does_not_hang_the_probe(site: Path) -> None:
    """Before: the probe opened ``livekit/agents/version.py`` to read it, which blocks on a FIFO
    until a writer comes: ``status`` hung for the probe's 120 s, then blamed the interpreter
    ("expected a Python interpreter at ..."), exit 2, quoting the probe's whole source. A
    version.py that is no regular file is not read: the metadata's version is used."""
    version_py = site / "livekit" / "agents" / "version.py"
    version_py.unlink()
    os.mkfifo(version_py)
    done = subprocess.run(
        [PYTHON, "-m", "livekit_agents_patch", "status", "--json"],
        env=cli_env(site),
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )
    data = json.loads(done.stdout)
    assert data["exit"] == done.returncode == Exit.PRISTINE, data
    assert data["version"] == NEWEST and data["files_version"] is None


# --- wheel: the temporary file swapped before it is hashed -------------------------------------


def test_a_wheel_swapped_in_the_output_directory_is_never_published_with_its_hash(
    tmp_path: Path,
) -> None:
    """Before: the wheel's sha256 was read back by the temporary file's name after it was
    closed, so whoever can write the output directory (a shared artifacts directory) could
    rename a file of their own over it: ``wheel`` renamed that file into place and printed its
    hash in the ``--require-hashes`` line, exit 0. Now the hash is read through the tool's own
    descriptor and the published name must be that very file; otherwise exit 7 and it is not
    left at the wheel's name."""
    out = tmp_path / "out"
    out.mkdir()
    fifo = tmp_path / "release"
    os.mkfifo(fifo)
    upstream = str(matrix.wheel(NEWEST, WHEELS))
    run = subprocess.Popen(
        [PYTHON, "-m", "livekit_agents_patch", "wheel", "--release", NEWEST, "--from", upstream]
        + ["--output", str(out), "--json"],
        env=cli_env(None, faults(f"os.fsync#1:after=hold:{fifo}")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd="/",
    )
    try:
        read_until(run, "fault: holding at os.fsync#1", bytearray())
        (tmp,) = list(out.iterdir())
        forged = tmp_path / "forged.whl"
        forged.write_bytes(b"not the wheel the tool wrote")
        os.rename(forged, tmp)
        with open(fifo, "w"):
            pass
        stdout, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    data = json.loads(stdout)
    assert data["exit"] == run.returncode == Exit.IO_ERROR, data
    assert "replaced" in str(data["error"])
    published = out / f"livekit_agents-{NEWEST}+fix5359.r2-py3-none-any.whl"
    assert not published.exists() and list(out.iterdir()) == []


# --- a directory at one of the tool's own names -------------------------------------------------


@pytest.mark.parametrize(
    "name", [".livekit-agents-patch.journal", ".events.py.livekit-agents-patch.tmp"]
)
def test_check_and_status_agree_with_apply_on_a_directory_at_the_tool_s_name(
    site: Path, name: str
) -> None:
    """Before: ``check`` (the dry run of apply) said "would apply", exit 0, and ``status`` said
    "the next apply or revert removes it", while ``apply`` refused with exit 7: ``unlink``
    cannot remove a directory (and the tool never removes one recursively)."""
    planted = site / SPEECH.rsplit("/", 1)[0] / name
    planted.mkdir()
    applied = cli("apply", root=site)
    assert applied.returncode == Exit.IO_ERROR
    assert f"could not remove the leftover {planted}" in applied.stderr
    checked = cli("check", root=site)
    assert checked.returncode == Exit.IO_ERROR, checked.stdout
    assert checked.stderr == applied.stderr
    note = json.loads(cli("status", "--json", root=site).stdout)["notes"]
    assert [
        n for n in note if str(planted) in n and "refuses while it is there" in n and "rmdir" in n
    ]
    assert planted.is_dir() and Install(site, NEWEST).state()[SPEECH] == "pristine"


# --- XDG_CACHE_HOME that is not absolute --------------------------------------------------------


@pytest.mark.parametrize("value", ["relative/cache", ""])
def test_a_relative_or_empty_xdg_cache_home_is_ignored(tmp_path: Path, value: str) -> None:
    """Before: ``XDG_CACHE_HOME=relative/cache`` put the download cache under the working
    directory (a project checkout gained ``relative/cache/livekit-agents-patch/``); the XDG
    spec says a relative path is invalid and must be ignored, as an empty one was."""
    home = tmp_path / "home"
    cached = home / ".cache" / "livekit-agents-patch" / "wheels"
    cached.mkdir(parents=True)
    shutil.copy(matrix.wheel(NEWEST, WHEELS), cached)
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "out"
    done = subprocess.run(
        [PYTHON, "-m", "livekit_agents_patch", "wheel", "--release", NEWEST, "--output", str(out)]
        + ["--json"],
        env=cli_env(None, {"HOME": str(home), "XDG_CACHE_HOME": value}),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=work,
    )
    data = json.loads(done.stdout)
    assert data["exit"] == done.returncode == Exit.OK, data
    assert data["source"] == str(cached / f"livekit_agents-{NEWEST}-py3-none-any.whl")
    assert list(work.iterdir()) == []
