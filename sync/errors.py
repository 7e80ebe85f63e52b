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


# -- compute backends (jobs) --
class BackendError(SyncError):
    """A compute backend refused or failed an operation (exit 10)."""


class UnknownBackend(SyncError):
    """A compute backend name no registry knows: a configuration/spec problem."""

    exit_code = 9


# -- storage, remotes, push/pull (the sync engine) --
class ObjectNotFound(SyncError):
    """A key that a storage backend does not hold."""

    exit_code = 4


class ObjectExists(SyncError):
    """A create-only put found the key already there."""

    exit_code = 8


class TransientError(SyncError):
    """A failure worth retrying (connection dropped, throttled, server error)."""


class NotARemote(SyncError):
    """The URL holds no ``ws-remote.json`` (nothing was pushed there yet)."""

    exit_code = 4


class RemoteTooNew(SyncError):
    """The remote's format version is newer than this ws understands."""

    exit_code = 10


class InvalidRemoteConfig(SyncError):
    """A malformed ``[remote.NAME]`` table or a bad ``--option``."""

    exit_code = 9


class InvalidRemoteName(SyncError):
    """A remote name that cannot be used (empty, spaces, dots)."""

    exit_code = 2


class RemoteExists(SyncError):
    """``ws remote add`` with a name that is already configured."""

    exit_code = 8


class UnknownRemoteRelease(SyncError):
    """A release (or version expression) that the remote does not hold."""

    exit_code = 4


class RemoteReleaseConflict(SyncError):
    """The remote holds a different release under the same NAME@VERSION."""

    exit_code = 8


class DamagedRemote(SyncError):
    """A pack, index or record on the remote fails verification (exit 6)."""

    exit_code = 6


class UnsafeRemotePath(SyncError):
    """A release record names a path that would land outside the workspace."""

    exit_code = 5
