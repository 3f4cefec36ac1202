"""What the install commands act on and how they refuse: the installed livekit-agents, refusals."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..exits import Exit


class PatchingError(Exception):
    """A refusal: says what was expected, what was found, and what to do next."""

    def __init__(self, code: Exit, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    """One installed livekit-agents: its version and the directory holding ``livekit/``."""

    version: str
    root: Path
    record: dict[str, str]
    """sha256 of the files as the wheel's RECORD lists them (may be empty)."""
    dist_root: Path | None = None
    """Where the distribution's metadata says it is installed, if that is not ``root``."""
    files_version: str | None = None
    """``__version__`` in ``livekit/agents/version.py``, if readable."""
    python: str | None = None
    """The interpreter the target belongs to, for the commands this tool suggests."""
    command: str | None = None
    """``--python`` as given, which child processes run (a wrapper may set the environment);
    ``None``: this interpreter."""
    notes: tuple[str, ...] = field(default=())
    wheel_version: str | None = None
    """The installed distribution's version when it is a patched wheel's (``1.8.9+fix5359.r1``,
    see ``wheel``); ``version`` is then upstream's release, ``1.8.9``."""

    def path(self, relative: str) -> Path:
        return self.root / relative

    @property
    def package_dir(self) -> Path:
        return self.root / "livekit" / "agents"

    @property
    def reinstall(self) -> str:
        """The command that puts back the wheel's own files."""
        python = self.python or "python"
        return f"{python} -m pip install --force-reinstall --no-deps livekit-agents=={self.version}"
