"""Exchanging releases with remotes: ``ws push``, ``ws pull``, ``ws clone``, ``ws fsck --remote``,
``ws remote releases``, and configuring remotes under the workspace lock.

The engines live in :mod:`sync` (push, pull, transfer, storage backends) and the
configuration rules in :mod:`sync.remotes`; this module adds what needs the
workspace: release records, the working tree, commits and the locks.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from catalog import objects as q
from catalog import releases as release_queries
from catalog import remotes as rq
from catalog import statcache
from catalog.statcache import ManifestEntry, StatEntry
from sync import remotes
from sync.errors import DamagedRemote
from sync.remote import Remote, record_digest, release_key
from sync.remotes import DEFAULT_NAME, RemoteInfo
from workspace.errors import WorkspaceError
from workspace.faults import checkpoint
from workspace.history import refs
from workspace.history.manifest import Manifest, head_manifest
from workspace.history.record import record_commit
from workspace.objects.durable import sync_file_system
from workspace.releases.collection import Releases
from workspace.releases.records import Release, ReleaseConflict, check_record, split_spec, validate_record
from workspace.releases.versions import parse_version, select
from workspace.repo import Repo
from workspace.types import Progress

R = TypeVar("R", bound=Repo)


class CloneTargetExists(WorkspaceError):
    """``ws clone`` into a folder that exists and is not empty (exit 8)."""

    exit_code = 8


@dataclass
class PullResult:
    """What a pull or clone did."""

    remote: str
    release: str
    files_written: int = 0
    files_unchanged: int = 0
    chunks_fetched: int = 0
    bytes_fetched: int = 0
    commit: str | None = None
    root: str = ""
    extra: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # e.g. stray objects skipped on the remote

    def to_dict(self) -> dict:
        """For --json."""
        return asdict(self)


# -- configuration, under the lock ---------------------------------------------------------
def add_remote(repo: Repo, name: str, url: str, options: dict | None = None, default: bool = False) -> RemoteInfo:
    """Configure a remote (``[remote.NAME]``); the first one becomes the default. Secrets are refused."""
    with repo.lock():
        config = repo.reload_config()
        info = remotes.add(config, name, url, options, default)
        repo.save_config(config)
        remotes.forget(repo.catalog, name)  # a stale cache from an earlier remote of that name
    return info


def remove_remote(repo: Repo, name: str) -> None:
    """Forget a remote: its config table and what the catalog remembers about it."""
    with repo.lock():
        config = repo.reload_config()
        remotes.remove(config, name)
        repo.save_config(config)
        remotes.forget(repo.catalog, name)


def open_remote(repo: Repo, name: str | None = None) -> Remote:
    """The :class:`sync.remote.Remote` for a configured remote (default when ``name`` is None)."""
    return remotes.open_remote(repo.config, name)


# -- push ---------------------------------------------------------------------------
def push(repo: Repo, remote: str | None = None, spec: str | None = None, progress: Progress | None = None,
         workers: int = 4):
    """Send releases to a remote: ``spec`` NAME (every version) or NAME@VERSION; default: all not there yet."""
    from sync.push import push_records

    if spec is None and remote is not None and remote not in {r.name for r in remotes.list_remotes(repo.config)}:
        remote, spec = None, remote  # 'ws push NAME@VERSION' to the default remote
    rem = open_remote(repo, remote)
    records = [r.to_record() for r in _releases_to_push(repo, rem.name, spec)]
    tmp = str(repo.layout.ws_dir / "tmp")
    with repo.pack_guard(exclusive=False):  # ws gc must not delete packs we read
        return push_records(repo.catalog, repo.store, rem, records, tmp, progress=progress, workers=workers)


def _releases_to_push(repo: Repo, remote_name: str, spec: str | None) -> list[Release]:
    releases = Releases(repo)
    if spec is None:
        missing = set(rq.releases_not_on(repo.catalog, remote_name))
        return [r for r in releases.list() if (r.title, r.version) in missing]
    name, expr = split_spec(spec)
    if "@" in spec:
        return [releases.resolve(name, expr)]
    found = releases.list(name)
    if not found:
        releases.resolve(name)  # raises UnknownRelease with the right message
    return found


# -- listing and checking a remote ------------------------------------------------------------
class RemoteReleases(list):
    """The rows of :func:`remote_releases` (a list, as before), with ``warnings`` about skipped objects."""

    warnings: list[str]


def stray_warnings(rem: Remote, keys: list[str]) -> list[str]:
    """One warning per object under ``releases/`` that is not a release record (skipped, never read)."""
    return [f"remote {rem.name}: skipped {key}: not a release record (releases/<title>/<version>.json)"
            for key in keys]


def remote_releases(repo: Repo, name: str | None = None) -> RemoteReleases:
    """What a remote holds: title, version, file count and size of each release (reads each record)."""
    rem = open_remote(repo, name)
    rem.check()
    found, stray = rem.scan_releases()
    out = RemoteReleases()
    out.warnings = stray_warnings(rem, stray)
    for title, version in sorted(found, key=lambda tv: (tv[0], parse_version(tv[1]))):
        record = rem.read_release(title, version)
        try:
            rec, _ = check_record(record)
        except WorkspaceError as exc:
            raise DamagedRemote(f"remote {rem.name}: {release_key(title, version)}: {exc}") from None
        out.append({"title": title, "version": version, "files": rec["file_count"], "size": rec["total_size"],
                    "created_at": rec["created_at"], "description": rec["description"]})
        rq.mark_release(repo.catalog, rem.name, title, version, rec["digest"], "seen")
    return out


def fsck_remote(repo: Repo, name: str | None = None, read_data: bool = False, progress: Progress | None = None):
    """Check a remote's packs, indexes and release records (``read_data``: every chunk's SHA-256)."""
    from sync.remote_check import check_remote

    tmp = repo.layout.ws_dir / "tmp"
    tmp.mkdir(exist_ok=True)
    return check_remote(open_remote(repo, name), read_data=read_data, progress=progress, tmp_dir=str(tmp),
                        check_record=check_record)  # pull's own checks, so fsck refuses what pull refuses


# -- pull and clone -----------------------------------------------------------------------
def pull(repo: Repo, remote: str | None, spec: str, *, force: bool = False, progress: Progress | None = None,
         workers: int = 4, new_tree: bool = False) -> PullResult:
    """Fetch NAME[@EXPR] from a remote into the working tree and record it as a commit and a release.

    ``new_tree`` (a clone: nothing else works in this workspace yet) holds the
    workspace lock for the download too, and writes files as their chunks arrive.
    """
    from sync.errors import UnknownRemoteRelease
    from sync.pull import check_sizes, fetch_chunks, needed_chunks
    from workspace.tree.apply_release import plan_files, write_tree
    from workspace.tree.leftovers import remove_dead_temp_files
    from workspace.tree.write import remove_file

    name, expr = split_spec(spec)
    rem = open_remote(repo, remote)
    rem.check()
    found, stray = rem.scan_releases(name)
    versions = [v for t, v in found if t == name]
    if not versions:
        skipped = f" (skipped {len(stray)} object(s) that are not records, first {stray[0]})" if stray else ""
        raise UnknownRemoteRelease(f"remote {rem.name} has no release named '{name}'{skipped}")
    version = select(versions, expr)
    record = rem.read_release(name, version)
    try:
        checked = validate_record(record, repo.root)  # unsafe paths (exit 5), malformed records: before any download
    except WorkspaceError as exc:
        exc.args = (f"remote {rem.name}: {release_key(name, version)}: {exc}",)  # the one line names the object
        raise
    check_not_conflicting(repo, record)
    check_sizes(repo.catalog, rem, record, workers)  # sizes against the chunks' lengths in the indexes
    result = PullResult(rem.name, f"{name}@{version}", root=str(repo.root), warnings=stray_warnings(rem, stray))
    what = f"pull of {record['title']}@{record['version']}"
    # The download runs without the workspace lock (commits and jobs go on meanwhile), but
    # under the pack guard: gc would delete packs recorded before their file rows are.
    # Lock order everywhere: pack guard, then workspace lock.
    def fetch(on_stored=None) -> None:
        fetched = fetch_chunks(repo.catalog, repo.store, rem, needed_chunks(repo.catalog, record), progress,
                               workers, on_stored=on_stored)
        result.chunks_fetched, result.bytes_fetched = fetched.chunks_fetched, fetched.bytes_fetched

    with repo.pack_guard(exclusive=False):
        if not new_tree:
            plan_files(repo, record["files"], force, what)  # refuse conflicts before downloading anything
            fetch()
        with repo.lock():  # the tree may have changed while we downloaded: plan again, authoritatively
            remove_dead_temp_files(repo)  # what a killed pull (or checkout) left in the tree
            check_not_conflicting(repo, record)
            plan = plan_files(repo, record["files"], force, what)
            dropped = dropped_paths(repo, record, plan.head, plan.ids)
            # a new tree (a clone) is written while the download goes on: each file once its chunks are stored
            cache_rows = write_tree(repo, plan.writes, progress, fetch=fetch if new_tree else None)
            for path in dropped:  # files the older version had and this one dropped
                remove_file(repo, path)
            checkpoint("pull:written")  # tests: killed with every file in place, before the sync and the catalog
            # the files and renames durable before the catalog calls them clean: those written now, and
            # those a killed run left in place (found unchanged, maybe never flushed)
            sync_file_system(str(repo.root))
            result.commit = _record(repo, rem, record, cache_rows, f"pull {name}@{version} from {rem.name}", dropped,
                                    checked)
    result.files_written, result.files_unchanged = len(plan.writes), plan.unchanged
    return result


def check_not_conflicting(repo: Repo, record: dict) -> None:
    """Refuse early (before touching anything) when this workspace has other files under title@version."""
    mine = release_queries.get_release(repo.catalog, record["title"], record["version"])
    if mine is not None and mine.digest != record_digest(record):
        raise ReleaseConflict(f"release '{record['title']}@{record['version']}' already exists here with "
                              "different files; releases are immutable")


def dropped_paths(repo: Repo, record: dict, head: Manifest, ids: dict[str, str]) -> list[str]:
    """Files an earlier version of this release put here that the pulled version no longer has.

    Only a file that HEAD holds exactly as another version of this release
    had it, and that is clean in the working tree, is removed: pulling
    ds@1.2.0 over ds@1.1.0 makes the release's paths match 1.2.0 without
    touching anything the user changed or added. The removal is part of the
    pull's commit, so history keeps the files.
    """
    wanted = {f["path"] for f in record["files"]}
    out: set[str] = set()
    for rel in Releases(repo).list(record["title"]):
        if rel.version == record["version"]:
            continue
        for f in rel.files:
            base = head.get(f.path)
            if f.path not in wanted and base is not None and base.file_id == f.id and ids.get(f.path) == f.id:
                out.add(f.path)
    return sorted(out)


def _record(repo: Repo, rem: Remote, record: dict, cache_rows: dict[str, StatEntry], message: str,
            dropped: list[str], checked: tuple | None = None) -> str | None:
    """One transaction: file rows, the commit that holds the release's files, the release, remote state."""
    from workspace.tree.apply_release import file_parents

    files = [q.FileInfo(f["id"], f["size"], f["chunks"]) for f in record["files"]]
    branch, head = refs.read_head(repo.catalog)
    old = head_manifest(repo.catalog) if head else {}
    new = dict(old)
    for parent in file_parents(record["files"], set(old)):  # replaced by a folder (pull --force)
        del new[parent]
    for path in _below_files(record["files"], old):  # a folder replaced by a file (pull --force)
        del new[path]
    for f in record["files"]:
        new[f["path"]] = ManifestEntry(f["id"], f["size"], f.get("mode", 0o644))
    for path in dropped:
        new.pop(path, None)
    commit_id = None
    with repo.catalog.write():
        q.add_files(repo.catalog, files)
        if new != old:
            commit_id = record_commit(repo, None, branch, head, old, new, files, message, None, cache_rows).id
        elif cache_rows:
            statcache.update_stat_cache(repo.catalog, cache_rows)
        Releases(repo).import_record(record, checked)
        rem.mark_release(repo.catalog, record, "seen")
    return commit_id


CLONE_MARKER = "clone.json"  # in .ws/ while a clone is unfinished: url, release, remote, created, writer


def _below_files(files: list[dict], paths) -> list[str]:
    """Those of ``paths`` inside a folder that is a file of the release: one name, one kind."""
    names = {f["path"] for f in files if f["path"] not in paths}  # a file already there has no folder
    if not names:
        return []
    out = []
    for path in paths:
        parent = path.rpartition("/")[0]
        while parent and parent not in names:
            parent = parent.rpartition("/")[0]
        if parent:
            out.append(path)
    return out


def clone(kind: type[R], url: str, spec: str, directory: str | os.PathLike, *, options: dict | None = None,
          remote_name: str = DEFAULT_NAME, progress: Progress | None = None, workers: int = 4) -> tuple[R, PullResult]:
    """A new workspace (a ``kind``) in ``directory`` holding release NAME[@EXPR] from ``url``.

    The remote becomes ``origin`` (the default remote). On failure the new
    folder is removed again, so a failed clone leaves nothing behind. A clone
    that was killed (no chance to clean up) leaves ``.ws/clone.json`` naming
    its URL and release: running the same clone again resumes it, fetching
    only what the first run had not recorded; any other clone into that
    folder is refused (:class:`CloneTargetExists`).
    """
    from sync.storage.registry import normalize_url
    from workspace.layout import writer_id

    target = Path(os.path.abspath(directory))
    wanted = {"url": normalize_url(url), "release": spec, "remote": remote_name}
    unfinished = _unfinished_clone(target, wanted)
    created = unfinished["created"] if unfinished else not target.exists()
    repo = None
    try:
        marker = json.dumps(dict(wanted, created=created, writer=writer_id()), sort_keys=True).encode()
        if unfinished:
            repo = kind.open(target)
            _replace_file(repo.layout.ws_dir / CLONE_MARKER, marker)  # this process carries it on now
            if remote_name not in {r.name for r in remotes.list_remotes(repo.config)}:  # killed before adding it
                add_remote(repo, remote_name, url, options, default=True)
        else:
            remotes.connect(remote_name, url, dict(options or {})).check()  # fail before creating anything
            repo = kind.init(target, files={CLONE_MARKER: marker})
            add_remote(repo, remote_name, url, options, default=True)
        result = pull(repo, remote_name, spec, progress=progress, workers=workers, new_tree=True)
        (repo.layout.ws_dir / CLONE_MARKER).unlink(missing_ok=True)  # finished: an ordinary workspace now
        return repo, result
    except BaseException:
        if repo is not None:
            repo.close()
        if created:
            shutil.rmtree(target, ignore_errors=True)
        elif (target / ".ws").exists():
            shutil.rmtree(target / ".ws", ignore_errors=True)
        raise


def _unfinished_clone(target: Path, wanted: dict) -> dict | None:
    """The marker of an unfinished clone of ``wanted`` in ``target`` (resume it), or None (a new clone).

    Raises CloneTargetExists for a folder that is not empty and does not hold
    an unfinished clone of the same URL and release (compared as given:
    ``ds`` and ``ds@latest`` are different clones). The ``.ws.init-<pid>``
    folder of a clone killed while it made the workspace is removed first.
    """
    from workspace.layout import WS_DIR, host_tag, parse_writer_id
    from workspace.lock import process_alive

    if not target.exists():
        return None
    if not target.is_dir():
        raise CloneTargetExists(f"{target} already exists and is not a folder")
    entries = list(target.iterdir())
    prefix = WS_DIR + ".init-"
    dead = [e for e in entries if e.name.startswith(prefix) and e.name[len(prefix):].isdigit()
            and not process_alive(int(e.name[len(prefix):]))]
    if entries and len(dead) == len(entries):
        for leftover in dead:
            shutil.rmtree(leftover, ignore_errors=True)
        return None
    if not entries:
        return None
    try:
        found = json.loads((target / WS_DIR / CLONE_MARKER).read_text())
    except (OSError, ValueError):
        raise CloneTargetExists(f"{target} already exists and is not empty") from None
    if not isinstance(found, dict) or any(found.get(k) != v for k, v in wanted.items()):
        what = found if isinstance(found, dict) else {}
        raise CloneTargetExists(f"{target} holds an unfinished clone of {what.get('release')} from "
                                f"{what.get('url')}; run that clone again to finish it, or remove {target}")
    owner = parse_writer_id(str(found.get("writer", "")))
    if owner is not None and owner[1] == host_tag() and process_alive(owner[0]):
        raise CloneTargetExists(f"{target} is being cloned by process {owner[0]}, which is still running; "
                                "wait for it to finish")
    return found


def _replace_file(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a temporary name, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
