"""Remotes in the Python API: configuration, push, pull and clone.

``[remote.NAME]`` tables of ``.ws/config.toml`` hold each remote's ``url`` and
non-secret ``options``; ``[sync] default_remote`` names the default. Secrets
come from :func:`sync.credentials.resolve` (keyring, environment) and never
touch ``.ws/``. The engines live in :mod:`sync`; this module adds what needs
the workspace: release records, the working tree, commits and the lock.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from catalog import objects as q
from catalog import remotes as rq
from catalog.statcache import ManifestEntry, StatEntry
from workspace.errors import DamagedObjectError, InvalidArgument, WorkspaceError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SECRET_OPTIONS = {"key", "secret", "token", "password", "aws_access_key_id", "aws_secret_access_key",
                   "aws_session_token"}
DEFAULT_NAME = "origin"
_BIG_FILE = 1 << 20  # files at least this big are written by several threads at once


class CloneTargetExists(WorkspaceError):
    """``ws clone`` into a folder that exists and is not empty (exit 8)."""

    exit_code = 8


@dataclass
class RemoteInfo:
    """One configured remote."""

    name: str
    url: str
    options: dict
    default: bool

    def to_dict(self) -> dict:
        """For --json."""
        return asdict(self)


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

    def to_dict(self) -> dict:
        """For --json."""
        return asdict(self)


# -- configuration ---------------------------------------------------------------
def check_name(name: str) -> str:
    """A remote name: letters, digits, '_' and '-' (at most 64)."""
    from sync.errors import InvalidRemoteName

    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidRemoteName(f"invalid remote name {name!r}: use letters, digits, '_' and '-'")
    return name


def add_remote(ws, name: str, url: str, options: dict | None = None, default: bool = False) -> RemoteInfo:
    """Configure a remote; the first one becomes the default. Secrets are refused (use ``ws login``)."""
    from sync.errors import RemoteExists
    from sync.storage.registry import normalize_url

    check_name(name)
    options = {str(k): v for k, v in (options or {}).items()}
    secret = sorted(set(k.lower() for k in options) & _SECRET_OPTIONS)
    if secret:
        raise InvalidArgument(f"option {secret[0]!r} is a secret; store it with 'ws login {name}', "
                              "secrets never go into .ws/")
    with ws.lock():
        config = _fresh_config(ws)
        remotes = config.setdefault("remote", {})
        if name in remotes:
            raise RemoteExists(f"remote '{name}' already exists ({remotes[name].get('url')}); remove it first")
        remotes[name] = {"url": normalize_url(url), "options": options}
        sync_table = config.setdefault("sync", {})
        if default or not sync_table.get("default_remote"):
            sync_table["default_remote"] = name
        ws.save_config(config)
        rq.forget_remote(ws.catalog, name)  # a stale cache from an earlier remote of that name
    return next(r for r in list_remotes(ws) if r.name == name)


def list_remotes(ws) -> list[RemoteInfo]:
    """Every configured remote, by name."""
    config = ws.config
    remotes = config.get("remote", {}) if isinstance(config.get("remote"), dict) else {}
    default = default_remote_name(config)
    return [RemoteInfo(n, t.get("url", ""), dict(t.get("options", {})), n == default)
            for n, t in sorted(remotes.items()) if isinstance(t, dict)]


def remove_remote(ws, name: str) -> None:
    """Forget a remote: its config table and what the catalog remembers about it."""
    from sync.errors import UnknownRemote

    with ws.lock():
        config = _fresh_config(ws)
        remotes = config.get("remote", {})
        if name not in remotes:
            raise UnknownRemote(f"unknown remote '{name}'")
        del remotes[name]
        if config.get("sync", {}).get("default_remote") == name:
            del config["sync"]["default_remote"]
        ws.save_config(config)
        rq.forget_remote(ws.catalog, name)


def default_remote_name(config: dict) -> str | None:
    """The default remote: ``[sync] default_remote``, else the only remote, else None."""
    remotes = config.get("remote", {}) if isinstance(config.get("remote"), dict) else {}
    named = config.get("sync", {}).get("default_remote") if isinstance(config.get("sync"), dict) else None
    if named in remotes:
        return named
    return next(iter(remotes)) if len(remotes) == 1 else None


def _fresh_config(ws) -> dict:
    ws._config = None  # another process may have changed it since we read it
    return dict(ws.config)


def open_remote(ws, name: str | None = None):
    """The :class:`sync.remote.Remote` for a configured remote (default when ``name`` is None)."""
    from sync import credentials
    from sync.errors import UnknownRemote

    name = name or default_remote_name(ws.config)
    if not name:
        raise UnknownRemote("no remote given and no default remote; add one with 'ws remote add NAME URL'")
    url, options = credentials.remote_config(ws.config, name)
    return connect(name, url, options)


def connect(name: str, url: str, options: dict):
    """A Remote for ``url`` with credentials resolved for ``name`` (local folders need none)."""
    from sync.remote import Remote
    from sync.storage.registry import open_backend, scheme_of

    if scheme_of(url) not in ("file", "memory"):
        from sync import credentials

        options = credentials.resolve(name, url, options)
    return Remote(open_backend(url, options, label=name), name)


# -- push ---------------------------------------------------------------------------
def push(ws, remote: str | None = None, spec: str | None = None, progress=None, workers: int = 4):
    """Send releases to a remote: ``spec`` NAME (every version) or NAME@VERSION; default: all not there yet."""
    from sync.push import push_records

    if spec is None and remote is not None and remote not in {r.name for r in list_remotes(ws)}:
        remote, spec = None, remote  # 'ws push NAME@VERSION' to the default remote
    rem = open_remote(ws, remote)
    releases = _releases_to_push(ws, rem.name, spec)
    records = [r.to_record() for r in releases]
    tmp = str(ws.layout.ws_dir / "tmp")
    return push_records(ws.catalog, ws.store, rem, records, tmp, progress=progress, workers=workers)


def _releases_to_push(ws, remote_name: str, spec: str | None) -> list:
    from workspace.releases import split_spec

    if spec is None:
        missing = set(rq.releases_not_on(ws.catalog, remote_name))
        return [r for r in ws.releases.list() if (r.title, r.version) in missing]
    name, expr = split_spec(spec)
    if "@" in spec:
        return [ws.releases.resolve(name, expr)]
    found = ws.releases.list(name)
    if not found:
        ws.releases.resolve(name)  # raises UnknownRelease with the right message
    return found


# -- listing a remote ------------------------------------------------------------------
def remote_releases(ws, name: str | None = None) -> list[dict]:
    """What a remote holds: title, version, file count and size of each release (reads each record)."""
    from sync.remote import record_digest

    rem = open_remote(ws, name)
    rem.check()
    out = []
    for title, version in sorted(rem.list_releases(), key=_release_sort_key):
        record = rem.read_release(title, version)
        files = record.get("files", [])
        out.append({"title": title, "version": version, "files": len(files),
                    "size": sum(int(f.get("size", 0)) for f in files), "created_at": record.get("created_at"),
                    "description": record.get("description", "")})
        rq.mark_release(ws.catalog, rem.name, title, version, record_digest(record), "seen")
    return out


def _release_sort_key(tv):
    from workspace.versions import parse_version

    try:
        return tv[0], parse_version(tv[1])
    except WorkspaceError:
        return tv[0], parse_version("0.0.0")


# -- pull and clone -----------------------------------------------------------------------
def pull(ws, remote: str | None, spec: str, *, force: bool = False, progress=None, workers: int = 4) -> PullResult:
    """Fetch NAME[@EXPR] from a remote into the working tree and record it as a commit and a release."""
    from workspace.releases import split_spec, validate_record
    from workspace.versions import select

    from sync.errors import UnknownRemoteRelease
    from sync.pull import fetch_chunks, needed_chunks

    name, expr = split_spec(spec)
    rem = open_remote(ws, remote)
    rem.check()
    versions = [v for t, v in rem.list_releases() if t == name]
    if not versions:
        raise UnknownRemoteRelease(f"remote {rem.name} has no release named '{name}'")
    version = select(versions, expr)
    record = rem.read_release(name, version)
    validate_record(record, ws.root)  # unsafe paths (exit 5) and malformed records, before any download
    _check_not_conflicting(ws, record)
    result = PullResult(rem.name, f"{name}@{version}", root=str(ws.root))
    with ws.lock():
        writes, unchanged = _plan_tree(ws, record, force)
        fetched = fetch_chunks(ws.catalog, ws.store, rem, needed_chunks(ws.catalog, record), progress, workers)
        result.chunks_fetched, result.bytes_fetched = fetched.chunks_fetched, fetched.bytes_fetched
        cache_rows = _write_tree(ws, record, writes, progress)
        result.commit = _record(ws, rem, record, cache_rows, f"pull {name}@{version} from {rem.name}")
    result.files_written, result.files_unchanged = len(writes), unchanged
    return result


def _check_not_conflicting(ws, record: dict) -> None:
    """Refuse early (before touching anything) when this workspace has other files under title@version."""
    from catalog import releases as release_queries
    from sync.remote import record_digest
    from workspace.releases import ReleaseConflict

    mine = release_queries.get_release(ws.catalog, record["title"], record["version"])
    if mine is not None and mine.digest != record_digest(record):
        raise ReleaseConflict(f"release '{record['title']}@{record['version']}' already exists here with "
                              "different files; releases are immutable")


def _plan_tree(ws, record: dict, force: bool) -> tuple[list[dict], int]:
    """The record's files that must be written; refuses to overwrite local changes unless ``force``."""
    from workspace.checkout import _dirty_error

    head = ws.manifest("HEAD") if ws.head()[1] else {}
    ids, stats = ws.working_ids()
    writes, conflicts, unchanged = [], [], 0
    for f in record["files"]:
        path, mode = f["path"], f.get("mode", 0o644)
        have, base = ids.get(path), head.get(path)
        if have == f["id"] and stats[path].mode == mode:
            unchanged += 1
            continue
        clean = (have is None and base is None) or (base is not None and have == base.file_id)
        if not clean and not force:
            conflicts.append(path)
        writes.append(f)
    if conflicts:
        raise _dirty_error(sorted(conflicts), f"pull of {record['title']}@{record['version']}")
    return writes, unchanged


def _write_tree(ws, record: dict, writes: list[dict], progress) -> dict[str, StatEntry]:
    """Stage every file under a temporary name (verified), then rename them all into place."""
    from sync.transfer import Meter, bounded_map
    from workspace.checkout import _clear_file_parents
    from workspace.layout import safe_join

    meter = Meter(progress, "writing", sum(f["size"] for f in writes))
    started = time.time_ns()
    locs = q.chunk_locations(ws.catalog, {c for f in writes for c in f["chunks"]})  # one query, not one per file
    for folder in sorted({f["path"].rpartition("/")[0] for f in writes} - {""}):
        _clear_file_parents(ws, folder + "/x")  # a tracked file where the release needs a folder
        # checked again right before writing: a symlinked parent may have appeared since validation
        safe_join(ws.root, folder + "/x").parent.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[dict, str, str]] = []
    root = str(ws.root)

    def stage(batch: list[dict]) -> None:
        for f in batch:
            dest = root + "/" + f["path"]  # every parent folder was checked by safe_join above
            tmp = _stage_one(ws, f, dest, locs)
            staged.append((f, dest, tmp))  # list.append is atomic: safe from worker threads
            meter.add(f["size"])

    # threads pay off for big files (hashing and I/O release the GIL); for tiny files the
    # GIL hand-offs cost more than the work, so those are staged on this thread
    big = [f for f in writes if f["size"] >= _BIG_FILE]
    small = [f for f in writes if f["size"] < _BIG_FILE]
    try:
        for _ in bounded_map(stage, _batches(big), workers=4):
            pass
        for batch in _batches(small):
            stage(batch)
    except BaseException:
        for _, _, tmp in staged:
            _unlink(tmp)
        raise
    rows: dict[str, StatEntry] = {}
    for f, dest, tmp in staged:  # every file verified: now they may take their real names
        if os.path.isdir(dest) and not os.path.islink(dest):
            shutil.rmtree(dest)  # an untracked folder where the release has a file (only with --force)
        os.replace(tmp, dest)
        st = os.stat(dest)
        rows[f["path"]] = StatEntry(st.st_size, st.st_mtime_ns, st.st_ino, f["id"], started)
    return rows


def _stage_one(ws, f: dict, dest: str, locs: dict) -> str:
    """One file under a temporary name, its SHA-256 and size checked."""
    from workspace.objects.store import DamagedObject

    info = q.FileInfo(f["id"], f["size"], f["chunks"])
    try:
        tmp = ws.store.stage_file(info, dest, f.get("mode", 0o644), locs)
    except DamagedObject as exc:
        raise DamagedObjectError(f"cannot write '{f['path']}': {exc}") from exc
    if os.path.getsize(tmp) != f["size"]:
        _unlink(tmp)
        raise DamagedObjectError(f"cannot write '{f['path']}': the record says {f['size']} bytes")
    return tmp


def _batches(writes: list[dict], max_files: int = 256, max_bytes: int = 16 << 20):
    """Group files so that one task stages many tiny files (thread hand-offs cost more than they do)."""
    batch: list[dict] = []
    size = 0
    for f in writes:
        batch.append(f)
        size += f["size"]
        if len(batch) >= max_files or size >= max_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _record(ws, rem, record: dict, cache_rows: dict, message: str) -> str | None:
    """One transaction: file rows, the commit that holds the release's files, the release, remote state."""
    from workspace import commit as commit_mod

    files = [q.FileInfo(f["id"], f["size"], f["chunks"]) for f in record["files"]]
    branch, head = ws.head()
    old = ws.manifest("HEAD") if head else {}
    new = dict(old)
    for f in record["files"]:
        new[f["path"]] = ManifestEntry(f["id"], f["size"], f.get("mode", 0o644))
    commit_id = None
    with ws.catalog.write():
        q.add_files(ws.catalog, files)
        if new != old:
            c = commit_mod.record_commit(ws, None, branch, head, old, new, [], message, None, cache_rows)
            commit_id = c.id
        elif cache_rows:
            from catalog import statcache

            statcache.update_stat_cache(ws.catalog, cache_rows)
        ws.releases.import_record(record)
        rem.mark_release(ws.catalog, record, "seen")
    return commit_id


def clone(url: str, spec: str, directory: str | os.PathLike, *, options: dict | None = None,
          remote_name: str = DEFAULT_NAME, progress=None, workers: int = 4):
    """A new workspace in ``directory`` holding release NAME[@EXPR] from ``url``; returns (Workspace, PullResult).

    The remote becomes ``origin`` (the default remote). On failure the new
    folder is removed again, so a failed clone leaves nothing behind.
    """
    from workspace.api import Workspace

    target = Path(os.path.abspath(directory))
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CloneTargetExists(f"{target} already exists and is not empty")
    created = not target.exists()
    ws = None
    try:
        connect(remote_name, url, dict(options or {})).check()  # fail before creating anything
        ws = Workspace.init(target)
        add_remote(ws, remote_name, url, options, default=True)
        result = pull(ws, remote_name, spec, progress=progress, workers=workers)
        return ws, result
    except BaseException:
        if ws is not None:
            ws.close()
        if created:
            shutil.rmtree(target, ignore_errors=True)
        elif (target / ".ws").exists():
            shutil.rmtree(target / ".ws", ignore_errors=True)
        raise


def fsck_remote(ws, name: str | None = None, read_data: bool = False, progress=None):
    """Check a remote's packs, indexes and release records (``read_data``: every chunk's SHA-256)."""
    from sync.remote_check import check_remote

    return check_remote(open_remote(ws, name), read_data=read_data, progress=progress)
