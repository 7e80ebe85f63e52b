"""Errors of the sync layer (remotes, transfers, credentials).

Each carries the CLI exit code documented in docs/errors.md; the CLI maps any
of them to one line on stderr.
"""


class SyncError(Exception):
    """Base class of every sync error: a remote or backend failed (exit 10)."""

    exit_code = 10


class UnknownRemote(SyncError):
    """A remote name that is not configured in ``.ws/config.toml``."""

    exit_code = 4


class MissingCredentials(SyncError):
    """A remote needs secrets that neither the environment nor the keyring holds."""

    exit_code = 11


class RejectedCredentials(SyncError):
    """The remote refused the credentials it was given."""

    exit_code = 11


class InvalidCredentials(SyncError):
    """Secrets given to ``ws login`` that cannot be used (bad KEY=VALUE, bad JSON)."""

    exit_code = 2
