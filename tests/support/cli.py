"""What the CLI tests share: running the CLI on a fake install, and reading the result."""

from __future__ import annotations

import hashlib
import json
import os
import py_compile
import selectors
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from unidiff.patch import PatchSet

from livekit_agents_patch.install.index import load
from livekit_agents_patch.install.writer import JOURNAL

from .fake_install import EVENTS, REPO, SPEECH

PYTHON = sys.executable
NEWEST = "1.8.9"
PATCH = REPO / "patches" / "0001-fix-voice-let-playout-waits-see-interruptions.patch"
REINSTALL = "-m pip install --force-reinstall --no-deps livekit-agents=="
LK = REPO / ".venvs" / f"lk-{NEWEST}"
FIRST = load().supported()[0]
"""The oldest release the index supports."""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected(version: str, state: str, relative: str) -> str:
    """The index's sha256 of a target file of ``version``, ``pristine`` or ``patched``."""
    files = load().data["releases"][version]["files"]
    value: str = files[relative][state]
    return value


@dataclass
class Install:
    root: Path
    version: str

    def file(self, relative: str) -> Path:
        return self.root / relative

    def read(self, relative: str) -> bytes:
        return self.file(relative).read_bytes()

    def state(self) -> dict[str, str]:
        """Each target's state by its sha256 against the index (the test's own oracle)."""
        out = {}
        for relative in (SPEECH, EVENTS):
            digest = sha(self.read(relative)) if self.file(relative).is_file() else "missing"
            states = {expected(self.version, s, relative): s for s in ("pristine", "patched")}
            out[relative] = states.get(digest, "other")
        return out

    def no_leftovers(self) -> None:
        voice = self.file(SPEECH).parent
        assert [p.name for p in voice.iterdir() if p.name.startswith(".")] == []
        assert not (voice / JOURNAL).exists()


def real_venv_ready(marker: Path) -> bool:
    """Whether a real-package venv may be used now: built (``marker`` exists), and this is not
    ``make test``'s unit phase, which runs while those venvs are being built
    (``LIVEKIT_AGENTS_PATCH_SKIP_REAL``); ``make test`` runs these tests after they are."""
    return not os.environ.get("LIVEKIT_AGENTS_PATCH_SKIP_REAL") and marker.exists()


FAULTS_DIR = Path(__file__).resolve().parent / "faults"
"""Its ``sitecustomize`` injects the faults ``LKP_FAULTS`` names (see that module)."""
FAULT_EXIT = 70
"""The exit status of a run stopped by an ``exit`` fault (``os._exit``: no cleanup ran)."""


def faults(*rules: str) -> dict[str, str]:
    """The environment that injects ``rules`` (``FUNC[~SUFFIX]#N:WHEN=ACTION``) into a run."""
    return {"LKP_FAULTS": ";".join(rules)}


BETWEEN_THE_WRITES = {
    "apply": "os.replace~events.py#1:before",
    "revert": "os.replace~speech_handle.py#1:before",
}
"""Right before the second target file is replaced: ``apply`` replaces ``speech_handle.py``
first, ``revert`` restores ``events.py`` first (append ``=ACTION``)."""


def cli_env(root: Path | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {"PATH": "/nonexistent", "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    if root is not None:
        env["PYTHONPATH"] = str(root)
    env.update(extra or {})
    if "LKP_FAULTS" in env or "LKP_FAULTS_TRACE" in env:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FAULTS_DIR), env.get("PYTHONPATH")]))
    return env


def cli(
    *args: str,
    root: Path | None = None,
    env: Mapping[str, str] | None = None,
    prefix: tuple[str, ...] = (),
    python: str = PYTHON,
) -> subprocess.CompletedProcess[str]:
    """``livekit-agents-patch ARGS`` in a fresh process, on the fake install at ``root``."""
    return subprocess.run(
        [*prefix, python, "-m", "livekit_agents_patch", *args],
        env=cli_env(root, env),
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",  # not the checkout: the package comes from the environment, as for a user
    )


def json_of(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """The one JSON object a ``--json`` run prints, whose ``exit`` is the real exit code."""
    data = json.loads(done.stdout)
    assert isinstance(data, dict)
    assert data["exit"] == done.returncode
    return data


def hunk_line(relative: str, kind: str) -> str:
    """The first context (or added) line of the patch's first hunk in ``relative``."""
    for patched_file in PatchSet(PATCH.read_text(encoding="utf-8")):
        if patched_file.path.endswith(relative):
            for line in patched_file[0]:
                if line.line_type == kind and line.value.strip():
                    value: str = line.value
                    return value
    raise AssertionError(f"no {kind!r} line for {relative}")


def first_hunk_header(relative: str) -> str:
    """``@@ -a,b +c,d @@`` of the patch's first hunk in ``relative``, as errors print it."""
    for patched_file in PatchSet(PATCH.read_text(encoding="utf-8")):
        if patched_file.path.endswith(relative):
            h = patched_file[0]
            return f"@@ -{h.source_start},{h.source_length} +{h.target_start},{h.target_length} @@"
    raise AssertionError(f"no hunk for {relative}")


def drop_root_powers() -> tuple[str, ...]:
    """A prefix that makes root obey permission bits: drop CAP_DAC_OVERRIDE for the run."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: root ignores a read-only directory")
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all")


_SEES_FIX = (
    "import importlib.machinery as m, sys\n"
    "code = m.SourceFileLoader('speech_handle', sys.argv[1]).get_code('speech_handle')\n"
    "print('SpeechInterruptedError' in code.co_names)\n"
)


def fresh_process_sees_fix(source: Path) -> bool:
    """What a fresh interpreter's import machinery runs for ``source``: cached or compiled."""
    out = subprocess.run([PYTHON, "-c", _SEES_FIX, str(source)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return {"True": True, "False": False}[out.stdout.strip()]


def unchecked_pyc(source: Path) -> Path:
    written = py_compile.compile(
        str(source),
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    assert written is not None
    pyc = Path(written)
    assert pyc.parent.name == "__pycache__"
    return pyc


def read_until(proc: subprocess.Popen[bytes], text: str, seen: bytearray) -> None:
    """Read ``proc``'s stderr into ``seen`` until ``text`` appears (20 s at most)."""
    assert proc.stderr is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 20
        while text.encode() not in seen:
            assert selector.select(max(0.0, deadline - time.monotonic())), f"no {text!r}: {seen!r}"
            chunk = os.read(proc.stderr.fileno(), 4096)
            assert chunk, f"stderr closed before {text!r}: {seen!r}"
            seen += chunk
