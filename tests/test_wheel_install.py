"""The patched wheel installed for real, the way lockfiles install it (``make wheel-check``).

Runs only with ``LIVEKIT_AGENTS_PATCH_WHEEL_VENV`` set to a venv holding stock livekit-agents
(and this package's dev tools): the wheel is built without ``--from`` (``pip download`` into a
fresh cache), installed over the stock release with ``pip install --no-deps --require-hashes``
from the line ``wheel`` prints, and checked: ``pip check``, every ``RECORD`` hash, ``status``,
``apply``, ``revert``, ``verify`` and the real-package property test. Then the uv path source it
prints is locked and synced in a fresh project. Each run starts from stock again, with the very
command ``revert`` names.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.cli import NEWEST, REINSTALL, cli
from support.fake_install import REPO, record_hash
from support.readme import blocks, section

from livekit_agents_patch.exits import Exit
from livekit_agents_patch.install.index import load, local_version

VENV = os.environ.get("LIVEKIT_AGENTS_PATCH_WHEEL_VENV")
pytestmark = pytest.mark.skipif(
    not VENV, reason="needs LIVEKIT_AGENTS_PATCH_WHEEL_VENV (make wheel-check)"
)
PATCHED = local_version(load().releases[NEWEST])
UV = Path(sys.executable).parent / "uv"


def run(*argv: str | Path, cwd: Path = REPO, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=900
    )
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@dataclass(frozen=True)
class Built:
    path: Path
    sha256: str
    pip: str
    uv: str


@pytest.fixture(scope="module")
def python() -> Path:
    assert VENV
    return (REPO / VENV / "bin" / "python").absolute()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, python: Path) -> Built:
    """The wheel built twice without ``--from``: pip downloads upstream's wheel once."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {"XDG_CACHE_HOME": str(tmp / "cache"), "HOME": str(tmp)}
    outputs = []
    for out in ("a", "b"):
        done = cli("wheel", "--json", "--release", NEWEST, "--output", str(tmp / out), env=env)
        assert done.returncode == 0, done.stdout
        outputs.append(json.loads(done.stdout))
    first, second = (Path(o["path"]) for o in outputs)
    assert first.read_bytes() == second.read_bytes()
    upstream = tmp / "cache" / "livekit-agents-patch" / "wheels"
    assert [p.name for p in upstream.iterdir()] == [f"livekit_agents-{NEWEST}-py3-none-any.whl"]
    data = outputs[0]
    return Built(first, data["sha256"], data["snippets"]["pip"], data["snippets"]["uv"])


@pytest.fixture(scope="module")
def installed(built: Built, python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stock first (the command revert names), then the wheel from a hash-pinned requirement."""
    run(
        python,
        "-m",
        "pip",
        "install",
        "-q",
        "--force-reinstall",
        "--no-deps",
        f"livekit-agents=={NEWEST}",
    )
    assert cli("--python", str(python), "status").returncode == Exit.PRISTINE
    requirements = tmp_path_factory.mktemp("req") / "requirements.txt"
    requirements.write_text(built.pip + "\n", encoding="utf-8")
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--require-hashes", "-r", requirements)
    return python


def test_pip_check_and_metadata(installed: Path) -> None:
    run(installed, "-m", "pip", "check")
    version = run(
        installed, "-c", "from importlib import metadata as m; print(m.version('livekit-agents'))"
    )
    assert version.strip() == PATCHED


def test_every_record_hash_is_true(installed: Path) -> None:
    dist = Path(
        run(
            installed,
            "-c",
            "from importlib import metadata as m; print(m.distribution('livekit-agents')._path)",
        ).strip()
    )
    assert dist.name == f"livekit_agents-{PATCHED}.dist-info"
    rows = list(csv.reader(io.StringIO((dist / "RECORD").read_text(encoding="utf-8"))))
    checked = 0
    for name, digest, _size in rows:
        if digest:
            assert record_hash((dist.parent / name).read_bytes()) == digest, name
            checked += 1
    assert checked > 200


def test_status_apply_revert_verify(installed: Path) -> None:
    done = cli("--python", str(installed), "status")
    assert done.returncode == Exit.OK, done.stdout
    assert f"patched (installed from a patched wheel, {PATCHED})" in done.stdout
    done = cli("--python", str(installed), "apply")
    assert done.returncode == 0 and done.stdout.startswith("already applied")
    done = cli("--python", str(installed), "revert")
    assert done.returncode == Exit.FOREIGN_EDIT
    assert f"{installed} {REINSTALL}{NEWEST}" in done.stderr
    done = cli("--python", str(installed), "verify")
    assert done.returncode == 0, done.stdout + done.stderr


def test_real_package_property_test_passes(installed: Path) -> None:
    run(
        installed,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_contract.py",
        "--expect",
        "patched",
    )


def test_uv_path_source_locks_and_installs(built: Built, tmp_path: Path) -> None:
    """The README's uv block, as written, in a project with the wheel in ``wheels/``."""
    uv = [
        body for lang, body in blocks(section("Lockfiles and immutable images")) if lang == "toml"
    ]
    assert uv[0].startswith("[project]\n") and built.uv.split("\n")[0] in uv[0]
    project = tmp_path / "agent"
    (project / "wheels").mkdir(parents=True)
    shutil.copy(built.path, project / "wheels" / built.path.name)
    header = '[project]\nname = "agent"\nversion = "0"\nrequires-python = ">=3.10"\n'
    pyproject = uv[0].replace("[project]\n", header, 1)
    (project / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    env = {
        **os.environ,
        "UV_CACHE_DIR": str(REPO / ".cache" / "uv"),
        "UV_PYTHON": sys.executable,
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_CONFIG": "1",
    }
    if Path("/etc/ssl/certs/ca-certificates.crt").is_file():
        env.setdefault("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
    run(UV, "lock", cwd=project, env=env)
    lock = (project / "uv.lock").read_text(encoding="utf-8")
    assert f'version = "{PATCHED}"' in lock
    assert f"sha256:{built.sha256}" in lock
    run(UV, "sync", "--locked", cwd=project, env=env)
    python = project / ".venv" / "bin" / "python"
    done = cli("--python", str(python), "status")
    assert done.returncode == Exit.OK, done.stdout
    assert "installed from a patched wheel" in done.stdout
    shutil.rmtree(project / ".venv")


def test_poetry_path_dependency_locks(built: Built, tmp_path: Path) -> None:
    """The README's poetry block, as written, locks the wheel by its hash (not installed here:
    the uv test above installs the same wheel)."""
    poetry = os.environ.get("LIVEKIT_AGENTS_PATCH_POETRY")
    if not poetry:
        pytest.skip("needs LIVEKIT_AGENTS_PATCH_POETRY (make wheel-check)")
    block = [
        body
        for lang, body in blocks(section("Lockfiles and immutable images"))
        if lang == "toml" and body.startswith("[tool.poetry.dependencies]\n")
    ]
    assert len(block) == 1
    project = tmp_path / "agent"
    (project / "wheels").mkdir(parents=True)
    shutil.copy(built.path, project / "wheels" / built.path.name)
    header = '[tool.poetry]\nname = "agent"\nversion = "0"\npackage-mode = false\n\n'
    dependencies = block[0].replace(
        "[tool.poetry.dependencies]\n", '[tool.poetry.dependencies]\npython = ">=3.10,<3.15"\n'
    )
    (project / "pyproject.toml").write_text(header + dependencies, encoding="utf-8")
    env = {**os.environ, "POETRY_CACHE_DIR": str(REPO / ".cache" / "poetry")}
    poetry = str((REPO / poetry).absolute())  # run from the project: relative to the checkout
    run(Path(poetry), "lock", cwd=project, env=env)
    lock = (project / "poetry.lock").read_text(encoding="utf-8")
    assert f'version = "{PATCHED}"' in lock
    assert f'hash = "sha256:{built.sha256}"' in lock
    run(Path(poetry), "check", "--lock", cwd=project, env=env)
