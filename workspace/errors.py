"""Errors of the workspace layer. Each carries the CLI exit code documented in docs/errors.md."""


class WorkspaceError(Exception):
    """Base class of every workspace error."""

    exit_code = 1


class NotAWorkspace(WorkspaceError):
    """No ``.ws/`` folder here or in any parent."""

    exit_code = 3


class AlreadyAWorkspace(WorkspaceError):
    """``ws init`` where a workspace already is (or inside another one)."""

    exit_code = 8


class UnknownRef(WorkspaceError):
    """A ref, commit id or path in a commit that does not exist."""

    exit_code = 4


class AmbiguousRef(UnknownRef):
    """A commit id prefix that matches more than one commit."""


class PathOutsideWorkspace(WorkspaceError):
    """A path that resolves outside the workspace root."""

    exit_code = 5


class DamagedObjectError(WorkspaceError):
    """Stored content that fails verification."""

    exit_code = 6


class WorkspaceBusy(WorkspaceError):
    """Another ws process holds the workspace lock for longer than the timeout."""

    exit_code = 7


class UncommittedChanges(WorkspaceError):
    """An operation would overwrite uncommitted work."""

    exit_code = 8


class NothingToCommit(WorkspaceError):
    """``ws commit`` found no change."""

    exit_code = 1


class InvalidConfig(WorkspaceError):
    """A malformed ``.ws/config.toml`` or ``.wsignore``."""

    exit_code = 9


class InvalidArgument(WorkspaceError):
    """An argument the library cannot act on (bad branch name, glob, ...)."""

    exit_code = 2


class SymlinksNotSupported(WorkspaceError):
    """Symbolic links to write (a release, a commit) on a system that cannot create them; nothing is written."""

    exit_code = 1
