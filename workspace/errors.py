"""Errors of the workspace layer. Each carries the CLI exit code documented in docs/errors.md."""

from __future__ import annotations

import errno
from contextlib import contextmanager
from typing import Iterator

# a full disk, or a full quota: the same remedy (free space), the same error
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


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


class NoSpace(WorkspaceError):
    """The disk (or the quota) holding the workspace is full: a write got ENOSPC or EDQUOT.

    The command that met it removed what it had half-written; freeing space and
    running it again finishes the work.
    """

    exit_code = 13


def no_space_cause(exc: BaseException | None) -> OSError | None:
    """The OSError saying a disk or quota is full behind ``exc`` (itself or a cause), if any.

    Causes are followed because a layer may have wrapped it (a storage
    backend's error for a local write, a thread pool's result).
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def no_space_message(where: object, cause: OSError) -> str:
    """The one line for a full disk met while writing ``where``."""
    return (f"no space left on the device holding {where} ({cause.strerror or 'disk full'}); "
            "free some space and run the command again")


@contextmanager
def reporting_no_space(where: object) -> Iterator[None]:
    """Inside the block, a full disk or quota (ENOSPC, EDQUOT) becomes :class:`NoSpace` naming ``where``.

    Whoever writes must still remove what it half-wrote (in its own ``except``
    or ``finally`` inside this block); this only names the failure.
    """
    try:
        yield
    except NoSpace:
        raise
    except Exception as exc:
        cause = no_space_cause(exc)
        if cause is None:
            raise
        raise NoSpace(no_space_message(where, cause)) from exc


class SymlinksNotSupported(WorkspaceError):
    """Symbolic links to write (a release, a commit) on a system that cannot create them; nothing is written."""

    exit_code = 1


class WatcherRunning(WorkspaceBusy):
    """``ws watch`` where a watcher already runs for this workspace (one per workspace)."""

    exit_code = 7


class WatchUnavailable(WorkspaceError):
    """The watcher cannot start here: no inotify (not Linux), or the inotify watch limit is reached.

    ``ws status`` is unaffected: without a watcher it scans the whole tree.
    """

    exit_code = 1
