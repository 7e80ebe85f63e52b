"""The Python API: :class:`Workspace`, the porcelain that the CLI is a thin layer over.

Nothing here prints or exits; errors are :class:`~workspace.errors.WorkspaceError`
subclasses and long operations report through an optional ``progress`` callback
``progress(phase, done, total)``.
"""

from __future__ import annotations

from typing import Iterator

from catalog.statcache import ManifestEntry
from workspace.history import log as log_mod, manifest as manifest_mod, read as read_mod, refs
from workspace.repo import Repo
from workspace.types import Commit, CommitResult, Diff, FsckReport, GcReport, LsEntry, Progress, Status


class Workspace(Repo):
    """A project folder under ws control: the repository handle plus one method per verb."""

    # -- HEAD and history -------------------------------------------------
    def head(self) -> tuple[str | None, str | None]:
        """(branch or None when detached, commit id or None before the first commit)."""
        return refs.read_head(self.catalog)

    def resolve(self, ref: str) -> str:
        """The full commit id a ref expression names."""
        return refs.resolve(self.catalog, ref)

    def get_commit(self, ref: str) -> Commit:
        """The commit a ref names."""
        return manifest_mod.get_commit(self.catalog, ref)

    def manifest(self, ref: str | None = "HEAD") -> dict[str, ManifestEntry]:
        """The flat manifest (path -> file id, size, mode) of a commit."""
        return manifest_mod.manifest(self.catalog, ref)

    def log(self, n: int | None = None, path: str | None = None, ref: str = "HEAD") -> list[Commit]:
        """Commits reachable from ``ref``, newest first; with ``path``, only those that changed it."""
        return log_mod.log(self.catalog, n, path, ref)

    # -- branches ---------------------------------------------------------
    def branches(self) -> list[tuple[str, str, bool]]:
        """Every branch as (name, commit id, is current)."""
        return refs.branches(self.catalog)

    def create_branch(self, name: str, ref: str = "HEAD") -> str:
        """Make a branch at ``ref``; returns its commit id."""
        return refs.create_branch(self.catalog, name, ref)

    def delete_branch(self, name: str) -> None:
        """Remove a branch (not the current one)."""
        refs.delete_branch(self.catalog, name)

    # -- status -----------------------------------------------------------
    def status(self, progress: Progress | None = None) -> Status:
        """Added, modified and deleted paths of the working tree against HEAD."""
        from workspace.tree.status import compute_status

        st = compute_status(self, progress)
        st.remotes = self._remote_status()
        return st

    def working_ids(self, under: list[str] | None = None, progress: Progress | None = None,
                    head: dict | None = None) -> tuple[dict[str, str], dict]:
        """Content ids of the working files (optionally below ``under`` prefixes) and their stats.

        ``head`` is HEAD's manifest when the caller already has it (it is read otherwise).
        """
        from workspace.tree.scan import working_ids

        return working_ids(self, under, progress, head)

    def _remote_status(self) -> list[dict]:
        """Per configured remote, the releases not on it yet: answered from the catalog, offline."""
        from sync.remote_status import remote_rows  # stdlib and catalog only: cheap on the status path

        return remote_rows(self)

    # -- reading committed content ----------------------------------------------
    def ls(self, ref: str = "HEAD", pattern: str | None = None) -> list[LsEntry]:
        """Files of a commit, optionally filtered by a glob or a folder prefix."""
        return read_mod.ls(self.catalog, ref, pattern)

    def iter_read(self, ref: str, path: str) -> Iterator[bytes]:
        """A committed file's bytes, chunk by chunk, each verified."""
        return read_mod.iter_read(self, ref, path)

    def read(self, ref: str, path: str) -> bytes:
        """A committed file's bytes."""
        return b"".join(self.iter_read(ref, path))

    # -- writing (implemented in their own modules) -------------------------
    def commit(self, message: str, paths: list[str] | None = None, *, progress: Progress | None = None,
               provenance: dict | None = None, cwd: str | None = None) -> CommitResult:
        """Record the working tree (or only ``paths``) as a new commit on the current branch."""
        from workspace.tree.commit import commit

        return commit(self, message, paths, progress=progress, provenance=provenance, cwd=cwd)

    def transaction(self, message: str, *, provenance: dict | None = None):
        """An atomic multi-operation commit: ``with ws.transaction("msg") as t: ...``."""
        from workspace.tree.transaction import Transaction

        return Transaction(self, message, provenance=provenance)

    def diff(self, a: str | None = None, b: str | None = None, paths: list[str] | None = None) -> Diff:
        """Changes from ``a`` (default HEAD) to ``b`` (default: the working tree)."""
        from workspace.tree.diff import diff

        return diff(self, a, b, paths)

    def checkout(self, ref: str, *, force: bool = False, progress: Progress | None = None) -> Commit:
        """Make the working tree match ``ref``; a branch name attaches HEAD to it."""
        from workspace.tree.checkout import checkout

        return checkout(self, ref, force=force, progress=progress)

    def switch(self, branch: str, *, create: bool = False, force: bool = False) -> Commit | None:
        """Switch to a branch (``create`` makes it at HEAD first)."""
        from workspace.tree.checkout import switch

        return switch(self, branch, create=create, force=force)

    def restore(self, paths: list[str], source: str = "HEAD", *, cwd: str | None = None) -> list[str]:
        """Overwrite working files with their version in ``source``; returns the paths written."""
        from workspace.tree.checkout import restore

        return restore(self, paths, source, cwd=cwd)

    def fsck(self, progress: Progress | None = None) -> FsckReport:
        """Verify every pack, chunk and catalog reference."""
        from workspace.maintenance import fsck

        return fsck(self, progress)

    def gc(self, progress: Progress | None = None) -> GcReport:
        """Reclaim pack space that no commit references."""
        from workspace.maintenance import gc

        return gc(self, progress)

    # -- releases and remotes (owned by the releases/remotes work; see workspace.releases, sync) --
    # RELEASES-API-BEGIN
    @property
    def releases(self):
        """The workspace's releases: create, list, get, resolve, import_record (see workspace.releases)."""
        from workspace.releases.records import Releases

        return Releases(self)

    # -- remotes, push, pull, clone (S; see workspace.releases.exchange and sync) --
    def add_remote(self, name: str, url: str, options: dict | None = None, default: bool = False):
        """Configure a remote (``[remote.NAME]`` in .ws/config.toml); secrets go through ``ws login``."""
        from workspace.releases.exchange import add_remote

        return add_remote(self, name, url, options, default)

    def remotes(self) -> list:
        """Every configured remote (name, url, options, default)."""
        from workspace.releases.exchange import list_remotes

        return list_remotes(self)

    def remove_remote(self, name: str) -> None:
        """Forget a remote and what the catalog remembers about it."""
        from workspace.releases.exchange import remove_remote

        remove_remote(self, name)

    def remote_releases(self, remote: str | None = None) -> list[dict]:
        """The releases a remote holds (asks the remote)."""
        from workspace.releases.exchange import remote_releases

        return remote_releases(self, remote)

    def push(self, remote: str | None = None, spec: str | None = None, *, progress=None, workers: int = 4):
        """Send releases (``NAME`` or ``NAME@VERSION``; default: all not there yet) and the chunks they need."""
        from workspace.releases.exchange import push

        return push(self, remote, spec, progress=progress, workers=workers)

    def pull(self, remote: str | None, spec: str, *, force: bool = False, progress=None, workers: int = 4):
        """Fetch release ``NAME[@EXPR]`` into the working tree; refuses to overwrite local changes unless force."""
        from workspace.releases.exchange import pull

        return pull(self, remote, spec, force=force, progress=progress, workers=workers)

    @classmethod
    def clone(cls, url: str, spec: str, directory, *, options: dict | None = None, progress=None):
        """A new workspace in ``directory`` holding release ``NAME[@EXPR]`` from ``url`` (remote ``origin``)."""
        from workspace.releases.exchange import clone

        ws, _ = clone(url, spec, directory, options=options, progress=progress)
        return ws

    def fsck_remote(self, remote: str | None = None, read_data: bool = False, progress=None):
        """Check a remote: every index matches its pack id, every pack is listed, every release complete."""
        from workspace.releases.exchange import fsck_remote

        return fsck_remote(self, remote, read_data=read_data, progress=progress)

    # RELEASES-API-END

    # -- jobs (owned by the jobs work; see workspace.jobs) --
    # JOBS-API-BEGIN
    @property
    def jobs(self):
        """The jobs of this workspace (:class:`workspace.jobs.api.JobsAPI`): list, show, logs, specs."""
        from workspace.jobs.api import JobsAPI

        return JobsAPI(self)
    # JOBS-API-END
