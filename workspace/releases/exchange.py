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
from dataclasses import asdict, dataclass, field
from pathlib import Path

from catalog import objects as q
from catalog import remotes as rq
from catalog.statcache import ManifestEntry
from workspace.errors import InvalidArgument, WorkspaceError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SECRET_OPTIONS = {"key", "secret", "token", "password", "aws_access_key_id", "aws_secret_access_key",
                   "aws_session_token"}
DEFAULT_NAME = "origin"


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
    from sync.storage.registry import check_url, normalize_url

    check_name(name)
    url = check_url(normalize_url(url))  # refuse now what no backend could open later (exit 2)
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
        remotes[name] = {"url": url, "options": options}
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
    return ws.reload_config()


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
    from workspace.lock import pack_guard

    with pack_guard(ws.layout.pack_lock, exclusive=False):  # ws gc must not delete packs we read
        return push_records(ws.catalog, ws.store, rem, records, tmp, progress=progress, workers=workers)


def _releases_to_push(ws, remote_name: str, spec: str | None) -> list:
    from workspace.releases.records import split_spec

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
    from workspace.releases.versions import parse_version

    try:
        return tv[0], parse_version(tv[1])
    except WorkspaceError:
        return tv[0], parse_version("0.0.0")


# -- pull and clone -----------------------------------------------------------------------
def pull(ws, remote: str | None, spec: str, *, force: bool = False, progress=None, workers: int = 4) -> PullResult:
    """Fetch NAME[@EXPR] from a remote into the working tree and record it as a commit and a release."""
    from workspace.releases.records import split_spec, validate_record
    from workspace.releases.versions import select

    from sync.errors import UnknownRemoteRelease
    from sync.pull import fetch_chunks, needed_chunks
    from workspace.lock import pack_guard
    from workspace.tree.apply_release import plan_files, write_tree
    from workspace.tree.write import remove_file

    name, expr = split_spec(spec)
    rem = open_remote(ws, remote)
    rem.check()
    versions = [v for t, v in rem.list_releases() if t == name]
    if not versions:
        raise UnknownRemoteRelease(f"remote {rem.name} has no release named '{name}'")
    version = select(versions, expr)
    record = rem.read_release(name, version)
    validate_record(record, ws.root)  # unsafe paths (exit 5) and malformed records, before any download
    check_not_conflicting(ws, record)
    result = PullResult(rem.name, f"{name}@{version}", root=str(ws.root))
    # The download runs without the workspace lock (commits and jobs go on meanwhile), but
    # under the pack guard: gc would delete packs recorded before their file rows are.
    # Lock order everywhere: pack guard, then workspace lock.
    what = f"pull of {record['title']}@{record['version']}"
    with pack_guard(ws.layout.pack_lock, exclusive=False):
        plan_files(ws, record["files"], force, what)  # refuse conflicts before downloading anything
        fetched = fetch_chunks(ws.catalog, ws.store, rem, needed_chunks(ws.catalog, record), progress, workers)
        result.chunks_fetched, result.bytes_fetched = fetched.chunks_fetched, fetched.bytes_fetched
        with ws.lock():  # the tree may have changed while we downloaded: plan again, authoritatively
            check_not_conflicting(ws, record)
            plan = plan_files(ws, record["files"], force, what)
            writes, unchanged = plan.writes, plan.unchanged
            dropped = dropped_paths(ws, record, plan.head, plan.ids)
            cache_rows = write_tree(ws, writes, progress)
            for path in dropped:  # files the older version had and this one dropped
                remove_file(ws, path)
            result.commit = _record(ws, rem, record, cache_rows, f"pull {name}@{version} from {rem.name}", dropped)
    result.files_written, result.files_unchanged = len(writes), unchanged
    return result


def _record(ws, rem, record: dict, cache_rows: dict, message: str, dropped: list[str] = ()) -> str | None:
    """One transaction: file rows, the commit that holds the release's files, the release, remote state."""
    from workspace.history.record import record_commit
    from workspace.tree.apply_release import file_parents

    files = [q.FileInfo(f["id"], f["size"], f["chunks"]) for f in record["files"]]
    branch, head = ws.head()
    old = ws.manifest("HEAD") if head else {}
    new = dict(old)
    for parent in file_parents(record["files"], set(old)):  # replaced by a folder (pull --force)
        del new[parent]
    for f in record["files"]:
        new[f["path"]] = ManifestEntry(f["id"], f["size"], f.get("mode", 0o644))
    for path in dropped:
        new.pop(path, None)
    commit_id = None
    with ws.catalog.write():
        q.add_files(ws.catalog, files)
        if new != old:
            c = record_commit(ws, None, branch, head, old, new, [], message, None, cache_rows)
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

    tmp = ws.layout.ws_dir / "tmp"
    tmp.mkdir(exist_ok=True)
    return check_remote(open_remote(ws, name), read_data=read_data, progress=progress, tmp_dir=str(tmp))


def check_not_conflicting(ws, record: dict) -> None:
    """Refuse early (before touching anything) when this workspace has other files under title@version."""
    from catalog import releases as release_queries
    from sync.remote import record_digest
    from workspace.releases.records import ReleaseConflict

    mine = release_queries.get_release(ws.catalog, record["title"], record["version"])
    if mine is not None and mine.digest != record_digest(record):
        raise ReleaseConflict(f"release '{record['title']}@{record['version']}' already exists here with "
                              "different files; releases are immutable")


def dropped_paths(ws, record: dict, head: dict, ids: dict) -> list[str]:
    """Files an earlier version of this release put here that the pulled version no longer has.

    Only a file that HEAD holds exactly as another version of this release
    had it, and that is clean in the working tree, is removed: pulling
    ds@1.2.0 over ds@1.1.0 makes the release's paths match 1.2.0 without
    touching anything the user changed or added. The removal is part of the
    pull's commit, so history keeps the files.
    """
    wanted = {f["path"] for f in record["files"]}
    out: set[str] = set()
    for rel in ws.releases.list(record["title"]):
        if rel.version == record["version"]:
            continue
        for f in rel.files:
            base = head.get(f.path)
            if f.path not in wanted and base is not None and base.file_id == f.id and ids.get(f.path) == f.id:
                out.add(f.path)
    return sorted(out)
