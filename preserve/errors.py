"""Exceptions that stop work, each with the exit code the CLI gives for it.

Problems found in *data* are findings (see findings.py), not exceptions. Raise only when work cannot go on.
"""


class PreserveError(Exception):
    """Base error. `exit_code` 2 = usage or system error."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:  # message plus what to do next
        base = super().__str__()
        return f"{base}\n  → {self.hint}" if self.hint else base


class UsageError(PreserveError):
    """The user asked for something that cannot be done as asked."""


class RepositoryNotFound(PreserveError):
    """No repository at the given path."""


class ConfigError(PreserveError):
    """preserve.toml is missing a setting or has a bad one."""


class CatalogError(PreserveError):
    """The catalog cannot be opened or written."""


class StorageError(PreserveError):
    """A tier cannot be read or written."""


class SigningError(PreserveError):
    """Keys are missing or do not match."""
