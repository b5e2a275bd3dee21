"""One exception hierarchy, so the CLI can tell a user's mistake from a bug.

Every error a user can cause (bad input, bad option, missing file) is a :class:`DarkscopeError`;
the CLI prints its message as one line and exits non-zero. Anything else is a bug and shows a
traceback only with ``--debug``.
"""

from __future__ import annotations

from pathlib import Path


class DarkscopeError(Exception):
    """Base of all errors caused by input or configuration rather than by a bug."""

    exit_code = 1


class UsageError(DarkscopeError):
    """An option or argument that cannot work (exit code 2, like a command-line syntax error)."""

    exit_code = 2


class OutputExistsError(UsageError):
    """The output path exists and the user did not ask to overwrite it."""


class InputFormatError(DarkscopeError):
    """Input data that does not follow its format; names the file and where it went wrong."""

    def __init__(self, path: str | Path, message: str, offset: int | None = None) -> None:
        self.path = str(path)
        self.offset = offset
        self.reason = message
        where = self.path if offset is None else f"{self.path} at byte {offset}"
        super().__init__(f"{where}: {message}")


class CaptureFormatError(InputFormatError):
    """A pcap/pcapng capture that cannot be decoded at ``offset``."""
