"""The exit codes every command ends with: one table, shared by the command line, ``install``,
``contract`` (the checks report them from inside the target) and ``scan``."""

from __future__ import annotations

import enum


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
    """``status``: a write was cut short (its journal is there); the next apply or revert rolls
    it back. ``check``/``apply``/``revert``: that journal cannot be rolled back (unreadable,
    another release's, or the files changed since)."""
    CANNOT_VERIFY = 9
    """The contract's checks could not run on this target (harness error, missing verify
    dependencies, unsupported Python, or, for ``--allow-unlisted``, the patched copy): never 0,
    never 1."""
    INTERNAL = 10
    """A bug in this tool: the traceback is printed (in JSON too); a failed write of ``apply`` or
    ``revert`` is rolled back, and the other commands write nothing to the install."""
    SIGHUP = 129
    """Stopped by SIGHUP (128 + its number, as a shell reports it); so are the two below."""
    SIGINT = 130
    """Stopped by SIGINT (Ctrl-C)."""
    SIGTERM = 143
    """Stopped by SIGTERM (``docker stop``, a CI job's cancel)."""
