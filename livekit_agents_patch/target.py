"""What the commands act on and how they end: the installed livekit-agents, exits, refusals."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path


class Exit(enum.IntEnum):
    """Exit codes, one per outcome a script may want to tell apart."""

    OK = 0
    """Done, already done, or (``status``) patched."""
    VIOLATION = 1
    """``verify``: a property of the contract does not hold."""
    USAGE = 2
    """Bad arguments, an interpreter that cannot be run, an unreadable patch."""
    NOT_INSTALLED = 3
    UNSUPPORTED = 4
    FOREIGN_EDIT = 5
    """A target file is neither pristine nor patched, missing, or the two disagree."""
    PRISTINE = 6
    """``status``: the fix is not applied."""
    IO_ERROR = 7
    """Cannot write (read-only, another owner, symlink out of the package); nothing changed."""
    INTERRUPTED = 8
    """``status``: a run was killed mid-write; the next apply or revert rolls it back."""
    CANNOT_VERIFY = 9
    """The contract's checks could not run on this target (harness error, missing verify
    dependencies, unsupported Python, or, for ``--allow-unlisted``, the patched copy): never 0,
    never 1."""
    INTERNAL = 10
    """A bug in this tool: the traceback is printed (in JSON too); a failed write is rolled back."""


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
