"""The Python API: :class:`Workspace`, the porcelain that the CLI is a thin layer over.

One method per verb, each delegating to the capability that does the work
(:mod:`workspace.history`, :mod:`workspace.tree`, :mod:`workspace.releases`,
:mod:`workspace.jobs`, :mod:`workspace.maintenance`, :mod:`sync`); there is no
logic here. A ``Workspace`` is a :class:`~workspace.repo.Repo`, so it can be
passed wherever a ``Repo`` is expected. Modules that are slow to import (the
chunker, fsspec, Typer...) are imported inside the methods that need them:
``ws status`` must start fast.

Nothing here prints or exits; errors derive from one of :func:`error_bases` and
long operations report through an optional ``progress`` callback
``progress(phase, done, total)``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from catalog.statcache import ManifestEntry
from workspace import config as config_mod
from workspace.errors import InvalidConfig, WorkspaceBusy, WorkspaceError
from workspace.history import manifest as manifest_mod, reffiles, refs
from workspace.repo import Repo
from workspace.types import Commit, Progress, Status

if TYPE_CHECKING:
    from workspace.reports import CommitResult, Diff, DiffEntry, FsckReport, GcReport, LsEntry
    from workspace.maintenance.rebuild import RebuildReport
    from sync.push import PushResult
    from sync.remote_check import RemoteFsckReport
    from sync.remotes import RemoteInfo
    from workspace.jobs.api import JobsAPI
    from workspace.jobs.backends import BackendInfo
    from workspace.maintenance.rebuild import RebuildReport
    from workspace.releases.collection import Releases
    from workspace.releases.exchange import PullResult
    from workspace.tree.diff import CommitChanges
    from workspace.tree.transaction import Transaction


def error_bases() -> tuple[type[Exception], ...]:
    """The three base classes every error ws raises derives from (the CLI maps them to exit codes)."""
    from catalog.errors import CatalogError
    from sync.errors import SyncError  # imported when an error is mapped, not on every ws status

    return (WorkspaceError, CatalogError, SyncError)


def as_library_error(exc: BaseException) -> BaseException:
    """``exc``, or the error of ours that a bare disk failure stands for; anything else is returned as is.

    A full disk or quota becomes :class:`~workspace.errors.NoSpace` (exit 13),
    a read-only file system :class:`~catalog.errors.CatalogReadOnly` (exit 12).
    The code that writes names these itself, with its path, after removing
    what it half-wrote; this is the CLI's net for a write that did not, so
    that neither is ever shown as a traceback.
    """
    import errno

    from workspace.errors import NO_SPACE_ERRNOS, NoSpace, no_space_message

    if not isinstance(exc, OSError) or isinstance(exc, error_bases()):
        return exc
    where = exc.filename or "the workspace"
    if exc.errno in NO_SPACE_ERRNOS:
        return NoSpace(no_space_message(where, exc))
    if exc.errno == errno.EROFS:
        from catalog.errors import CatalogReadOnly

        return CatalogReadOnly(f"{where} is on a read-only file system, so this command cannot write it; "
                               "reading commands (status, log, diff, ls, cat) still work")
    return exc


def redact_secrets(text: str) -> str:
    """``text`` with the userinfo of every URL in it hidden (``https://***@host``): the CLI shows nothing else."""
    from sync.urls import redact

    return redact(text)


class Workspace(Repo):
    """A project folder under ws control: the repository handle plus one method per verb."""

    # -- opening, locking, recovering -------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike | None = None) -> Workspace:
        """The workspace at or above ``path``, its catalog brought up to date with ``.ws/`` when it lags.

        A workspace made before history objects existed is upgraded in place
        (history, release records and job records written under ``.ws/``).
        """
        ws = super().open(path)
        if not reffiles.in_sync(ws) or ws._format() < config_mod.FORMAT:
            from workspace.history import reconcile

            if reconcile.on_open(ws) or ws._format() < config_mod.FORMAT:
                ws._finish_upgrade()
        return ws

    def _format(self) -> int:
        """The config's format; a malformed config is reported by the commands that need it, not here."""
        try:
            return config_mod.format_of(self.config)
        except InvalidConfig:
            return config_mod.FORMAT

    def _finish_upgrade(self) -> None:
        """The parts of the upgrade that belong to releases and jobs; then the config says format 2."""
        from workspace.jobs import records
        from workspace.releases.collection import Releases

        try:
            with self.lock(timeout=0):
                Releases(self).export_files()
                records.export(self)
                config = self.reload_config()
                config.setdefault("core", {})["format"] = config_mod.FORMAT
                self.save_config(config)
        except (WorkspaceBusy, PermissionError):
            pass  # another writer has the lock (it finishes the upgrade), or this user cannot write

    @contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the workspace write lock, with the catalog caught up to ``.ws/`` (a crash may have left it behind)."""
        with super().lock(timeout):
            if not reffiles.in_sync(self):
                from workspace.history import reconcile

                reconcile.catch_up(self)
            yield

    @classmethod
    def rebuild_catalog(cls, path: str | os.PathLike | None = None) -> RebuildReport:
        """``ws fsck --rebuild-catalog``: a new catalog from ``.ws/`` alone (the old one kept aside)."""
        from workspace.jobs import records
        from workspace.maintenance.rebuild import rebuild_catalog
        from workspace.releases.collection import Releases

        report = rebuild_catalog(path)
        with cls.open(path) as ws:
            report.releases, problems = Releases(ws).restore_from_files()
            report.jobs, more = records.restore(ws)
        report.problems += problems + more
        return report

    # -- HEAD, history, branches ---------------------------------------------
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

    def log(self, n: int | None = None, path: str | None = None, ref: str = "HEAD", *,
            cwd: str | None = None) -> list[Commit]:
        """Commits reachable from ``ref``, newest first; with ``path``, only those that changed it.

        ``path`` is workspace-relative; with ``cwd`` it is a user's path relative to that folder.
        """
        from workspace.history.log import log

        return log(self.catalog, n, self.rel(path, cwd) if path and cwd is not None else path, ref)

    def branches(self) -> list[tuple[str, str, bool]]:
        """Every branch as (name, commit id, is current)."""
        return refs.branches(self.catalog)

    def create_branch(self, name: str, ref: str = "HEAD") -> str:
        """Make a branch at ``ref``; returns its commit id."""
        return refs.create_branch(self, name, ref)

    def delete_branch(self, name: str) -> None:
        """Remove a branch (not the current one)."""
        refs.delete_branch(self, name)

    # -- reading committed content ----------------------------------------------
    def ls(self, ref: str = "HEAD", pattern: str | None = None) -> list[LsEntry]:
        """Files of a commit, optionally filtered by a glob or a folder prefix."""
        from workspace.history.read import ls

        return ls(self.catalog, ref, pattern)

    def ls_ref_or_pattern(self, ref: str | None = None, pattern: str | None = None) -> list[LsEntry]:
        """``ws ls [REF] [PATTERN]``: like :meth:`ls`, but a lone argument that names no commit is a pattern."""
        from workspace.history.read import ls_ref_or_pattern

        return ls_ref_or_pattern(self.catalog, ref, pattern)

    def iter_read(self, ref: str, path: str) -> Iterator[bytes]:
        """A committed file's bytes, chunk by chunk, each verified."""
        from workspace.history.read import iter_read

        return iter_read(self, ref, path)

    def read(self, ref: str, path: str) -> bytes:
        """A committed file's bytes."""
        return b"".join(self.iter_read(ref, path))

    def cat(self, spec: str) -> Iterator[bytes]:
        """``ws cat``: the bytes of ``REF:PATH`` (or ``PATH`` in HEAD), chunk by chunk, each verified."""
        from workspace.history.read import iter_read, split_cat_spec

        return iter_read(self, *split_cat_spec(self.catalog, spec))

    # -- the working tree -------------------------------------------------------------
    def status(self, progress: Progress | None = None, paths: list[str] | None = None, *,
               cwd: str | None = None) -> Status:
        """Added, modified and deleted paths of the working tree against HEAD, and per remote what is
        not pushed yet (from the catalog, offline). ``paths``: only those matched by these pathspecs
        (relative to ``cwd``; see :mod:`workspace.pathspecs`)."""
        from sync.remote_status import remote_rows  # stdlib and catalog only: cheap on the status path
        from workspace.tree.status import compute_status

        st = compute_status(self, progress)
        if paths:
            from workspace import pathspecs  # only with patterns: pathspec stays off the plain status path

            spec = pathspecs.compile(pathspecs.resolve(p, lambda q: self.rel(q, cwd)) for p in paths)
            st.added, st.modified, st.deleted = (spec.filter(st.added), spec.filter(st.modified),
                                                 spec.filter(st.deleted))
        st.remotes = remote_rows(self.config, self.catalog)
        return st

    # -- ws watch -------------------------------------------------------------------------
    def watch(self, ready_fd: int | None = None, on_ready=None) -> None:
        """``ws watch``: watch the working tree in this process until stopped (SIGTERM, Ctrl-C, ``ws watch --stop``).

        ``on_ready(state)`` is called once every folder is watched.
        """
        from workspace.tree.watchd import serve

        serve(self.root, ready_fd, on_ready)

    def watch_start(self) -> dict:
        """``ws watch --daemon``: start the watcher in the background; its state once it watches everything."""
        from workspace.tree.watchd import start_daemon

        return start_daemon(self.root)

    def watch_stop(self) -> dict:
        """``ws watch --stop``: stop the running watcher and wait for it to exit (``{"stopped": pid or None}``)."""
        from workspace.tree.watchd import stop

        return stop(self.layout)

    def watch_info(self) -> dict:
        """``ws watch --status``: whether a watcher runs, and its pid, epoch, start time, folders watched..."""
        from workspace.tree.watchd import info

        return info(self.layout)

    def watch_run(self, spec: str, params: list[str] | None = None, *, backend: str | None = None,
                  settle: float = 0.3, rounds: int | None = None, cwd: str | None = None):
        """``ws watch --run SPEC``: run a spec now and again whenever its inputs change; yields a summary per round."""
        from workspace.jobs.watch_run import watch_run

        return watch_run(self, spec, params, backend, settle=settle, rounds=rounds, cwd=cwd)

    def working_ids(self, under: list[str] | None = None, progress: Progress | None = None,
                    head: dict | None = None) -> tuple[dict[str, str], dict]:
        """Content ids of the working files (optionally below ``under`` prefixes) and their stats.

        ``head`` is HEAD's manifest when the caller already has it (it is read otherwise).
        """
        from workspace.tree.scan import working_ids

        return working_ids(self, under, progress, head)

    def commit(self, message: str, paths: list[str] | None = None, *, progress: Progress | None = None,
               provenance: dict | None = None, cwd: str | None = None) -> CommitResult:
        """Record the working tree (or only ``paths``) as a new commit on the current branch."""
        from workspace.tree.commit import commit

        return commit(self, message, paths, progress=progress, provenance=provenance, cwd=cwd)

    def transaction(self, message: str, *, provenance: dict | None = None) -> Transaction:
        """An atomic multi-operation commit: ``with ws.transaction("msg") as t: ...``."""
        from workspace.tree.transaction import Transaction

        return Transaction(self, message, provenance=provenance)

    def diff(self, a: str | None = None, b: str | None = None, paths: list[str] | None = None) -> Diff:
        """Changes from ``a`` (default HEAD) to ``b`` (default: the working tree)."""
        from workspace.tree.diff import diff

        return diff(self, a, b, paths)

    def diff_lines(self, d: Diff, entry: DiffEntry) -> list[str] | None:
        """A unified diff of one entry of ``d``, or None when either side is binary or large."""
        from workspace.tree.diff import unified

        return unified(self, d, entry)

    def show(self, ref: str = "HEAD") -> CommitChanges:
        """One commit and what it changed against its first parent (a root commit adds everything)."""
        from workspace.tree.diff import commit_changes

        return commit_changes(self, ref)

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

    # -- maintenance -------------------------------------------------------------------
    def fsck(self, progress: Progress | None = None) -> FsckReport:
        """Verify every pack, chunk and catalog reference."""
        from workspace.maintenance.fsck import fsck

        return fsck(self, progress)

    def gc(self, progress: Progress | None = None, *, prune: str | None = None, dry_run: bool = False) -> GcReport:
        """Reclaim pack space that no commit references.

        ``prune`` (an age: ``2.weeks``, ``3d``, ``now``) first drops commits no
        branch, HEAD, release or job record reaches and that are older than it;
        ``dry_run`` only counts what would go.
        """
        from workspace.jobs.records import kept_commits
        from workspace.maintenance.gc import gc

        extra = kept_commits(self) if prune is not None else frozenset()
        return gc(self, progress, prune=prune, dry_run=dry_run, extra_roots=extra)

    def squash(self, branch: str, keep: int = 0, dry_run: bool = False) -> tuple[GcReport, dict]:
        """Rewrite ``branch``'s history below its ``keep`` newest commits into one commit, then prune what
        only the old commits held. Returns (what was or would be freed, ``{branch, commits_squashed,
        commits_kept, old_tip, new_tip}``)."""
        from workspace.jobs.records import kept_commits
        from workspace.maintenance.squash import squash

        return squash(self, branch, keep, dry_run=dry_run, extra_roots=kept_commits(self))

    # -- releases ------------------------------------------------------------------------
    @property
    def releases(self) -> Releases:
        """The workspace's releases: create, list, get, resolve, import_record (see workspace.releases)."""
        from workspace.releases.collection import Releases

        return Releases(self)

    # -- remotes, push, pull, clone -------------------------------------------------------
    def add_remote(self, name: str, url: str, options: dict | None = None, default: bool = False) -> RemoteInfo:
        """Configure a remote (``[remote.NAME]`` in .ws/config.toml); secrets go through ``ws login``."""
        from workspace.releases.exchange import add_remote

        return add_remote(self, name, url, options, default)

    def remotes(self) -> list[RemoteInfo]:
        """Every configured remote (name, url, options, default)."""
        from sync.remotes import list_remotes

        return list_remotes(self.config)

    def remove_remote(self, name: str) -> None:
        """Forget a remote and what the catalog remembers about it."""
        from workspace.releases.exchange import remove_remote

        remove_remote(self, name)

    def remote_releases(self, remote: str | None = None) -> list[dict]:
        """The releases a remote holds (asks the remote); ``.warnings`` of the list names objects it skipped."""
        from workspace.releases.exchange import remote_releases

        return remote_releases(self, remote)

    def login(self, remote: str, secrets: dict | None = None, *, pairs: list[str] | None = None,
              text: str | None = None, backend: bool = False) -> dict:
        """Store a remote's (or a configured backend's) secrets in the system keyring: a dict, ``KEY=VALUE``
        pairs, or the text ``ws login --stdin`` reads (a JSON object or KEY=VALUE lines). Returns what was
        stored (names only). A name that is a configured backend and no remote (or ``backend``) is the backend."""
        from sync import credentials
        from workspace.jobs import backends

        given = credentials.gather(secrets, pairs, text)
        if backends.is_backend_login(self.config, remote, backend):
            return backends.login(self.config, remote, given)
        return credentials.login(self.config, remote, given)

    def login_prompts(self, remote: str, *, backend: bool = False) -> list[tuple[str, str, bool]]:
        """What ``ws login`` asks for a remote or backend: (name, label, required) per secret of its kind."""
        from sync import credentials
        from workspace.jobs import backends

        if backends.is_backend_login(self.config, remote, backend):
            return backends.login_prompts(self.config, remote)
        return credentials.prompts_for(self.config, remote)

    def logout(self, remote: str, *, backend: bool = False) -> dict:
        """Delete a remote's (or a configured backend's) secrets from the keyring (``ws login --forget``)."""
        from sync import credentials
        from workspace.jobs import backends

        if backends.is_backend_login(self.config, remote, backend):
            return backends.logout(self.config, remote)
        return credentials.logout(self.config, remote)

    # -- compute backends ------------------------------------------------------------------
    def add_backend(self, name: str, kind: str, options: dict | None = None) -> BackendInfo:
        """Configure a compute backend (``[backend.NAME]`` in .ws/config.toml); secrets go through ``ws login``."""
        from workspace.jobs.backends import add_backend

        return add_backend(self, name, kind, options)

    def backends(self) -> list[BackendInfo]:
        """Every configured compute backend (name, type, options)."""
        from workspace.jobs.backends import configured

        return configured(self.config)

    def remove_backend(self, name: str) -> None:
        """Forget a configured backend (its recorded jobs stay)."""
        from workspace.jobs.backends import remove_backend

        remove_backend(self, name)

    def check_backend(self, name: str) -> list[dict]:
        """``ws backend check``: reach the backend; ``{check, ok, detail}`` per check."""
        from workspace.jobs.backends import check

        return check(self, name)

    def push(self, remote: str | None = None, spec: str | None = None, *, progress: Progress | None = None,
             workers: int = 4) -> PushResult:
        """Send releases (``NAME`` or ``NAME@VERSION``; default: all not there yet) and the chunks they need."""
        from workspace.releases.exchange import push

        return push(self, remote, spec, progress=progress, workers=workers)

    def pull(self, remote: str | None, spec: str, *, force: bool = False, progress: Progress | None = None,
             workers: int = 4) -> PullResult:
        """Fetch release ``NAME[@EXPR]`` into the working tree; refuses to overwrite local changes unless force."""
        from workspace.releases.exchange import pull

        return pull(self, remote, spec, force=force, progress=progress, workers=workers)

    @classmethod
    def clone(cls, url: str, spec: str, directory: str | os.PathLike, *, options: dict | None = None,
              progress: Progress | None = None) -> Workspace:
        """A new workspace in ``directory`` holding release ``NAME[@EXPR]`` from ``url`` (remote ``origin``)."""
        return clone(url, spec, directory, options=options, progress=progress)[0]

    def fsck_remote(self, remote: str | None = None, read_data: bool = False,
                    progress: Progress | None = None) -> RemoteFsckReport:
        """Check a remote: every index matches its pack id, every pack is listed, every release complete."""
        from workspace.releases.exchange import fsck_remote

        return fsck_remote(self, remote, read_data=read_data, progress=progress)

    # -- jobs -----------------------------------------------------------------------------
    @property
    def jobs(self) -> JobsAPI:
        """The jobs of this workspace (:class:`workspace.jobs.api.JobsAPI`): list, show, logs, cancel, wait..."""
        from workspace.jobs.api import JobsAPI

        return JobsAPI(self)

    def run(self, spec: str, params: dict | list[str] | None = None, *, backend: str | None = None,
            wait: bool = False, force: bool = False, dry_run: bool = False, cwd: str | None = None,
            param_file: str | None = None) -> dict:
        """``ws run``: expand a spec (a name in jobs/ or a YAML path) and its dependencies, and run the jobs.

        ``params`` sets parameters: a dict (a value or a list of values each), or
        ``KEY=V1,V2`` strings as ``--param`` gives them; ``param_file`` (CSV or
        JSON Lines) replaces the spec's parameters with its records.
        Returns ``{"workflow": id or None, "jobs": [rows], "state": ...}``.
        """
        from workspace.jobs.engine import run_spec

        return run_spec(self, spec, params, backend, wait=wait, force=force, dry_run=dry_run, cwd=cwd,
                        param_file=param_file)

    def run_request(self, spec: str | None, command: list[str] | None, *, params: list[str] | None = None,
                    param_file: str | None = None, backend: str | None = None, inputs: list[str] | None = None,
                    outputs: list[str] | None = None, resources: str | None = None, name: str | None = None,
                    save: str | None = None, wait: bool = False, force: bool = False, dry_run: bool = False,
                    cwd: str | None = None):
        """What ``ws run`` asks, checked as a whole: a spec (``spec``) or a command (``command``, after ``--``).

        Dispatches to :meth:`run` / :meth:`dry_run` for a spec, :meth:`run_command`
        for a command, :meth:`save_command` with ``save`` (returns
        ``{"saved": path, "name": NAME}``). Options that only make sense for
        the other kind are refused (InvalidArgument, exit 2).
        """
        from workspace.errors import InvalidArgument

        if command is None:
            if spec is None:
                raise InvalidArgument("name a spec, or give a command after '--' (ws run -- COMMAND ARGS...)")
            adhoc = {"--input": inputs, "--output": outputs, "--resources": resources, "--name": name,
                     "--save": save}
            given = [k for k, v in adhoc.items() if v]
            if given:
                raise InvalidArgument(f"{given[0]} is for a command given after '--' (ws run {given[0]} ... -- "
                                      "COMMAND); a spec declares it in its file")
            if dry_run:
                return self.dry_run(spec, params or [], backend=backend, force=force, cwd=cwd, param_file=param_file)
            return self.run(spec, params or [], backend=backend, wait=wait, force=force, cwd=cwd,
                            param_file=param_file)
        if spec is not None:
            raise InvalidArgument(f"'{spec}' before '--': a run is either a spec or a command after '--'")
        opts = dict(inputs=inputs, outputs=outputs, resources=resources, backend=backend, params=params,
                    param_file=param_file)
        if save:
            if name and name != save:
                raise InvalidArgument("--save NAME names the spec; drop --name")
            if dry_run:
                raise InvalidArgument("--save writes jobs/NAME.yaml and runs nothing; drop --dry-run "
                                      "(or --save to see the jobs)")
            return {"saved": self.save_command(save, command, force=force, **opts), "name": save}
        return self.run_command(command, name=name, wait=wait, force=force, dry_run=dry_run, **opts)

    def run_command(self, argv: list[str], *, name: str | None = None, inputs: list[str] | None = None,
                    outputs: list[str] | None = None, resources: str | None = None, backend: str | None = None,
                    params: list[str] | None = None, param_file: str | None = None, wait: bool = False,
                    force: bool = False, dry_run: bool = False) -> dict | Iterator[dict]:
        """``ws run -- COMMAND ARGS...``: run a command as jobs without a spec file (see workspace.jobs.adhoc).

        The spec is built in memory and goes through the same expansion and
        engine as a file's. Returns what :meth:`run` returns; with ``dry_run``
        the rows one at a time, as :meth:`dry_run` does.
        """
        from workspace.jobs.adhoc import build
        from workspace.jobs.engine import dry_run_rows, run_spec

        _, spec = build(argv, name=name, inputs=inputs, outputs=outputs, resources=resources, backend=backend,
                        params=params, param_file=param_file, config=self.config)
        if dry_run:
            return dry_run_rows(self, spec, force=force)
        return run_spec(self, spec, wait=wait, force=force)

    def save_command(self, save_as: str, argv: list[str], *, inputs: list[str] | None = None,
                     outputs: list[str] | None = None, resources: str | None = None, backend: str | None = None,
                     params: list[str] | None = None, param_file: str | None = None, force: bool = False) -> str:
        """``ws run --save NAME -- COMMAND``: write the ad-hoc run's spec as ``jobs/NAME.yaml``; returns the path.

        SpecExists (exit 8) when the file exists, unless ``force``.
        """
        from workspace.jobs.adhoc import build, save

        data, _ = build(argv, name=save_as, inputs=inputs, outputs=outputs, resources=resources, backend=backend,
                        params=params, param_file=param_file, config=self.config)
        return save(self, save_as, data, force=force)

    def dry_run(self, spec: str, params: dict | list[str] | None = None, *, backend: str | None = None,
                force: bool = False, cwd: str | None = None, param_file: str | None = None) -> Iterator[dict]:
        """``ws run --dry-run``: the row each job would get (``state`` PENDING or SKIPPED), one at a time.

        Nothing is recorded; the rows come as the sweep is expanded, so a big
        sweep streams in flat memory. Errors found before expanding (the cap
        ``[jobs] max_jobs_per_run`` among them) are raised by this call.
        """
        from workspace.jobs.engine import dry_run_rows

        return dry_run_rows(self, spec, params, backend, force=force, cwd=cwd, param_file=param_file)


def clone(url: str, spec: str, directory: str | os.PathLike, *, options: dict | None = None,
          progress: Progress | None = None) -> tuple[Workspace, PullResult]:
    """``ws clone``: a new :class:`Workspace` holding release ``NAME[@EXPR]`` from ``url``, and what the pull did."""
    from workspace.releases.exchange import clone as clone_release

    return clone_release(Workspace, url, spec, directory, options=options, progress=progress)


def versions() -> dict:
    """``ws version``: the package version and the format versions this ws reads and writes.

    ``catalog_schema`` is the last catalog migration (``PRAGMA user_version`` of
    an up-to-date catalog), ``local_format`` the ``[core] format`` of
    ``.ws/config.toml``, ``remote_format`` the ``format`` of a remote's
    ``ws-remote.json``, ``release_record_format`` that of a release record.
    """
    import platform
    from importlib import metadata

    from catalog.migrations import MIGRATIONS
    from sync.remote import FORMAT as REMOTE_FORMAT
    from workspace.releases.records import RECORD_FORMAT

    try:
        version = metadata.version("ws")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        version = "0+unknown"
    return {"version": version, "catalog_schema": MIGRATIONS[-1].version, "local_format": config_mod.FORMAT,
            "remote_format": REMOTE_FORMAT, "release_record_format": RECORD_FORMAT,
            "python": platform.python_version()}


# -- the ws server (``ws serve``, docs/server.md) --
def serve(root: str | os.PathLike, host: str = "127.0.0.1", port: int = 50051, *, tls_cert: str | None = None,
          tls_key: str | None = None, workers: int | None = None, transfers: int | None = None):
    """``ws serve``: serve the remote in ``root`` over gRPC; returns once it listens.

    The handle (:class:`sync.server.ServerHandle`) has ``.url`` and ``.port``
    (the chosen one when ``port`` is 0), ``.stop(grace)`` and ``.wait()``.
    Requests are logged on the ``ws.server`` logger, one line each, naming the
    token, never showing it.
    """
    from sync.server.app import DEFAULT_TRANSFERS, DEFAULT_WORKERS, serve as serve_root

    return serve_root(root, host, port, tls_cert, tls_key, workers=workers or DEFAULT_WORKERS,
                      transfers=transfers or DEFAULT_TRANSFERS)


def create_server_token(root: str | os.PathLike, name: str, role: str, titles: list[str] | None = None) -> str:
    """``ws serve token create``: a new token for a server root; returned once, only its hash is stored."""
    from sync.server.tokens import create_token

    return create_token(root, name, role, titles or [])


def server_tokens(root: str | os.PathLike) -> list:
    """``ws serve token list``: the tokens of a server root (:class:`sync.server.TokenInfo`, never the token)."""
    from sync.server.tokens import list_tokens

    return list_tokens(root)


def revoke_server_token(root: str | os.PathLike, name: str):
    """``ws serve token revoke``: forget a token; a running server refuses it at its next request."""
    from sync.server.tokens import revoke_token

    return revoke_token(root, name)


def server_roles() -> tuple[str, ...]:
    """The roles a server token may have, weakest first."""
    from sync.server.tokens import ROLES

    return ROLES
