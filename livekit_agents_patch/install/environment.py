"""Find the livekit-agents installed in an environment, from outside it if need be.

A short probe runs in the target interpreter (``--python``, or this one): it reads the
distribution's metadata and RECORD, and asks the import system where ``livekit.agents`` would
be imported from, without importing it. When the two differ (a copy earlier on ``PYTHONPATH``,
an editable checkout), the files that would be imported are the target.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..exits import Exit
from . import bounded
from .index import TARGETS, split_local
from .target import PatchingError, Target

# runs in the target interpreter: keep it to the standard library of any Python 3. argv[1] is a
# nonce the answer must echo, so that a program which is not Python (/bin/true, /usr/bin/env, a
# shell script printing "{}") cannot pass for one. The answer goes to the pipe whose descriptor
# is argv[2], not to stdout: whatever the target prints itself (a sitecustomize's line at import
# or at exit) cannot disturb it
_PROBE = r"""
import sys
answer_fd = int(sys.argv.pop(2))
if sys.path and sys.path[0] == "":  # -c puts the working directory first: not the environment
    del sys.path[0]
import base64, importlib.util, json, os, re, stat
out = {"nonce": sys.argv[1], "python_version": list(sys.version_info[:3]),
       "python": sys.executable, "version": None, "dist_root": None, "record": {},
       "package_dir": None, "files_version": None}
try:
    from importlib import metadata
    dist = metadata.distribution("livekit-agents")
except Exception:  # no such distribution, or a Python without importlib.metadata (< 3.8)
    dist = None
if dist is not None:
    out["version"] = dist.version
    out["dist_root"] = str(dist.locate_file(""))
    for f in dist.files or []:
        if f.hash is not None and f.hash.mode == "sha256" and str(f) in sys.argv[2:]:
            out["record"][str(f)] = base64.urlsafe_b64decode(f.hash.value + "==").hex()
try:
    spec = importlib.util.find_spec("livekit.agents")
except Exception:
    spec = None
for location in (spec.submodule_search_locations or []) if spec else []:
    if os.path.isdir(os.path.join(location, "voice")):
        out["package_dir"] = os.path.abspath(location)
        break
if out["package_dir"]:  # O_NONBLOCK and a regular file only: a FIFO there must not block
    try:
        fd = os.open(os.path.join(out["package_dir"], "version.py"),
                     os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            text = os.read(fd, 1 << 16) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
        finally:
            os.close(fd)
        found = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']",
                          text.decode("utf-8", "replace"), re.M)
        out["files_version"] = found.group(1) if found else None
    except OSError:
        pass
data = json.dumps(out).encode("utf-8")
while data:
    data = data[os.write(answer_fd, data):]
os.close(answer_fd)
"""

_KEYS: dict[str, type | tuple[type, ...]] = {
    "nonce": str,
    "python_version": list,
    "python": str,
    "version": (str, type(None)),
    "dist_root": (str, type(None)),
    "record": dict,
    "package_dir": (str, type(None)),
    "files_version": (str, type(None)),
}

_NEXT = "Next: point --python at the environment's interpreter, e.g. /app/.venv/bin/python."


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= 120 else text[:117] + "...")


def _found(done: subprocess.CompletedProcess[str], answer: str) -> str:
    """What a run of the probe showed, in a few words, for the error message."""
    parts = [f"exit {done.returncode}"]
    out, err = done.stdout.strip(), done.stderr.strip()
    if answer.strip():
        parts.append(f"answer {_clip(answer)}")
    if out:
        parts.append(f"stdout {_clip(out.splitlines()[-1])}")
    if not (answer.strip() or out):
        parts.append("no output")
    if err:
        parts.append(f"stderr {_clip(err.splitlines()[-1])}")
    return ", ".join(parts)


def _run_probe(
    interpreter: str, nonce: str, timeout: float
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the probe; return the run and what it wrote to the pipe it was given for its answer."""
    with bounded.Answer() as answer:
        done = bounded.run(
            [interpreter, "-c", _PROBE, nonce, str(answer.fd), *TARGETS],
            timeout=timeout,
            pass_fds=(answer.fd,),
        )
    return done, answer.text


def probe(python: str | None = None, timeout: float = 120) -> dict[str, Any]:
    """Run the probe in ``python`` (default: this interpreter) and return its answer.

    Raises ``PatchingError(Exit.USAGE)`` unless ``python`` is a working Python interpreter: it
    must run the probe, exit 0 and print the probe's answer with the nonce it was given.
    """
    interpreter = sys.executable if python is None else python
    nonce = secrets.token_hex(8)
    expected = (
        f"expected {interpreter} to be a Python 3 interpreter that runs `-c CODE` and writes the "
        "probe's answer"
    )
    try:
        done, answer = _run_probe(interpreter, nonce, timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PatchingError(
            Exit.USAGE, f"expected a Python interpreter at {interpreter}, found: {e}. {_NEXT}"
        ) from e
    try:
        found = json.loads(answer) if answer else None
    except ValueError:
        found = None
    valid = (
        done.returncode == 0
        and isinstance(found, dict)
        and found.get("nonce") == nonce
        and all(isinstance(found.get(k), t) for k, t in _KEYS.items())
    )
    if not valid:
        raise PatchingError(Exit.USAGE, f"{expected}, found: {_found(done, answer)}. {_NEXT}")
    assert isinstance(found, dict)
    return found


def find(python: str | None = None) -> Target:
    """The livekit-agents of ``python`` (default: this interpreter)."""
    interpreter = sys.executable if python is None else python
    found = probe(python)
    dist_root = Path(found["dist_root"]) if found["dist_root"] else None
    package_dir = Path(found["package_dir"]) if found["package_dir"] else None
    version: str | None = found["version"]
    files_version: str | None = found["files_version"]
    if version is None and files_version is None:
        raise PatchingError(
            Exit.NOT_INSTALLED,
            f"expected livekit-agents in the environment of {interpreter}, found none. Next: "
            f"{interpreter} -m pip install livekit-agents, or point --python at the "
            "environment's interpreter.",
        )
    notes: list[str] = []
    record: dict[str, str] = found["record"]
    if package_dir is None:
        assert dist_root is not None
        root = dist_root  # its files are gone: the targets will be reported missing
        notes.append(f"livekit.agents cannot be found on the import path of {interpreter}")
    else:
        root = package_dir.parent.parent
        if dist_root is None or root.resolve() != dist_root.resolve():
            record = {}  # the RECORD describes other files
            if dist_root is not None:
                notes.append(
                    f"livekit.agents is imported from {package_dir}, which shadows the "
                    f"installed distribution at {dist_root}"
                )
            if files_version is not None:
                version = files_version
    assert version is not None
    wheel_version = None
    upstream, revision = split_local(version)
    if revision is not None:  # a patched wheel's install (see ``wheel``): judged as upstream's
        version, wheel_version = upstream, version
    return Target(
        version=version,
        root=root,
        record=record,
        dist_root=dist_root if dist_root != root else None,
        files_version=files_version,
        python=found["python"],
        command=python,
        notes=tuple(notes),
        wheel_version=wheel_version,
    )
