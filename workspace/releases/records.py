"""Releases: immutable, semver-versioned snapshots of (part of) a commit.

``ws.releases`` is a :class:`Releases`. A release records, for each file, its
path, content id (the file's SHA-256), size and mode, plus the commit, the
creating job (from the commit's provenance), author, time, description and
metadata. Which files go in is decided by the release mapping
(:mod:`workspace.releases.mapping`). The record format that remotes store is
:meth:`Release.to_record`; :meth:`Releases.import_record` takes one back.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from catalog import objects as q
from catalog import releases as rq
from workspace.errors import DamagedObjectError, InvalidArgument, UnknownRef, WorkspaceError
from workspace.layout import safe_join
from workspace.objects.hashing import release_digest
from workspace.releases.mapping import TITLE_RE, InvalidReleaseMapping, load_mapping
from workspace.releases.versions import (  # noqa: F401  (re-exported for callers)
    InvalidVersion,
    InvalidVersionExpression,
    NoMatchingVersion,
    UnknownRelease,
    bump as bump_version,
    highest,
    parse_version,
    select,
)

RECORD_FORMAT = 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ReleaseConflict(WorkspaceError):
    """title@version already exists with other content (exit 8)."""

    exit_code = 8


class VersionNotIncreasing(InvalidArgument):
    """A new version that is not above the highest existing one (exit 2)."""


class InvalidReleaseRecord(WorkspaceError):
    """A release record (from a remote) that is malformed (exit 6: damaged data)."""

    exit_code = 6


@dataclass(frozen=True)
class ReleaseFile:
    """One file of a release; ``sha256`` equals ``id`` (a file's id is its SHA-256)."""

    path: str
    id: str
    size: int
    sha256: str
    mode: int


class _LazyFiles(Sequence):
    """A release's files, read from the catalog on first use (listing releases needs only counts)."""

    def __init__(self, load, count: int):
        self._load, self._count, self._items = load, count, None

    def _all(self) -> list[ReleaseFile]:
        if self._items is None:
            self._items = self._load()
        return self._items

    def __len__(self) -> int:
        return self._count if self._items is None else len(self._items)

    def __getitem__(self, i):
        return self._all()[i]

    def __iter__(self):
        return iter(self._all())

    def __eq__(self, other) -> bool:
        return list(self) == list(other)


@dataclass
class Release:
    """An immutable release record as stored in the catalog."""

    title: str
    version: str
    description: str
    metadata: dict
    commit: str | None
    job: Any
    author: str
    created_at: str
    files: list[ReleaseFile]
    digest: str = ""
    total_size: int | None = None
    _catalog: Any = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> int:
        """Total bytes of the release's files."""
        return self.total_size if self.total_size is not None else sum(f.size for f in self.files)

    def summary_dict(self) -> dict:
        """The release without its file list (for listings)."""
        return {
            "title": self.title, "version": self.version, "description": self.description,
            "metadata": self.metadata, "commit": self.commit, "job": self.job, "author": self.author,
            "created_at": self.created_at, "digest": self.digest, "file_count": len(self.files),
            "size": self.size,
        }

    def to_dict(self) -> dict:
        """The release for ``--json`` (no chunk lists)."""
        return dict(self.summary_dict(), files=[
            {"path": f.path, "id": f.id, "size": f.size, "sha256": f.sha256, "mode": f.mode} for f in self.files])

    def to_record(self) -> dict:
        """The record remotes store at ``releases/<title>/<version>.json`` (with chunk lists)."""
        infos = q.get_files(self._catalog, [f.id for f in self.files]) if self._catalog else {}
        files = []
        for f in self.files:
            info = infos.get(f.id)
            if info is None:
                raise DamagedObjectError(f"release {self.title}@{self.version}: content of '{f.path}' "
                                         f"({f.id[:12]}) is missing from the catalog; run 'ws fsck'")
            files.append({"path": f.path, "id": f.id, "size": f.size, "sha256": f.sha256, "mode": f.mode,
                          "chunks": info.chunk_ids})
        return {
            "format": RECORD_FORMAT, "title": self.title, "version": self.version,
            "description": self.description, "metadata": self.metadata, "commit": self.commit,
            "job": self.job, "author": self.author, "created_at": self.created_at, "files": files,
        }


def file_digest(files: list[ReleaseFile]) -> str:
    """SHA-256 of the canonical file listing: what 'same content' means for two records."""
    return release_digest((f.path, f.id, f.size, f.mode) for f in files)


def check_title(name: str) -> str:
    """A release title usable as a folder name on any remote; InvalidArgument otherwise."""
    if not isinstance(name, str) or not TITLE_RE.match(name):
        raise InvalidArgument(
            f"invalid release name {name!r}: use letters, digits, '.', '_' and '-' (at most 100), "
            "starting with a letter or digit"
        )
    return name


def split_spec(spec: str) -> tuple[str, str]:
    """``NAME[@EXPR]`` as (name, expression); the expression defaults to ``latest``."""
    name, _, expr = spec.partition("@")
    return check_title(name), (expr.strip() or "latest")


class Releases:
    """The releases of one workspace (``ws.releases``)."""

    def __init__(self, ws):
        self._ws = ws
        self._cat = ws.catalog

    # -- reading ------------------------------------------------------------
    def _load(self, rec: rq.ReleaseRecord) -> Release:
        def load() -> list[ReleaseFile]:
            return [ReleaseFile(f.path, f.file_id, f.size, f.file_id, f.mode)
                    for f in rq.release_files(self._cat, rec.id)]

        return Release(rec.title, rec.version, rec.description, json.loads(rec.metadata_json or "{}"),
                       rec.commit_id, json.loads(rec.job) if rec.job else None, rec.author, rec.created_at,
                       _LazyFiles(load, rec.file_count), rec.digest, rec.total_size, self._cat)

    def list(self, name: str | None = None) -> list[Release]:
        """Every release (or those of ``name``), by title then version."""
        recs = rq.list_releases(self._cat, name)
        recs.sort(key=lambda r: (r.title, parse_version(r.version)))
        return [self._load(r) for r in recs]

    def get(self, name: str, version: str) -> Release:
        """The release name@version exactly; UnknownRelease (exit 4) when absent."""
        check_title(name)
        text = str(parse_version(version))
        rec = rq.get_release(self._cat, name, text)
        if rec is None:
            known = rq.versions_of(self._cat, name)
            hint = f" (known versions: {', '.join(sorted(known, key=parse_version))})" if known else ""
            raise UnknownRelease(f"unknown release '{name}@{text}'{hint}")
        return self._load(rec)

    def resolve(self, name: str, expr: str = "latest") -> Release:
        """The release of ``name`` that a version expression picks (``latest``, ``^1.2``, ranges...)."""
        check_title(name)
        versions = rq.versions_of(self._cat, name)
        if not versions:
            raise UnknownRelease(f"no release named '{name}'; see 'ws release list'")
        try:
            version = select(versions, expr)
        except NoMatchingVersion as exc:
            raise NoMatchingVersion(f"release '{name}': {exc}") from None
        return self.get(name, version)

    # -- writing ------------------------------------------------------------
    def create(self, name: str, version: str | None = None, bump: str | None = None,
               from_ref: str = "HEAD", message: str | None = None) -> Release:
        """Record a new release of ``from_ref``'s files that the mapping of ``name`` selects.

        Give exactly one of ``version`` (must be above every existing version of
        ``name``) or ``bump`` (major/minor/patch of the highest existing one,
        counting from 0.0.0 for the first release).
        """
        check_title(name)
        if (version is None) == (bump is None):
            raise InvalidArgument("give exactly one of a version (--version X.Y.Z) or --bump major|minor|patch")
        if bump is not None:
            bump_version(None, bump)  # a bad part fails before any work
        if version is not None:
            version = str(parse_version(version))
        commit_id, files, mapping = self._select_files(name, from_ref)
        description = message if message is not None else mapping.description
        rec = {
            "title": name, "description": description, "metadata_json": json.dumps(mapping.metadata),
            "commit_id": commit_id, "job": self._job_of(commit_id), "author": self._author(),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "created_ns": time.time_ns(), "digest": file_digest(files), "file_count": len(files),
            "total_size": sum(f.size for f in files),
        }
        rows = [rq.ReleaseFileRecord(f.path, f.id, f.size, f.mode) for f in files]
        with self._cat.write():
            # decided inside the write transaction so two concurrent creates cannot both win
            top = highest(rq.versions_of(self._cat, name))
            rec["version"] = version = version if bump is None else bump_version(top, bump)
            self._check_increasing(name, version, top)
            rq.insert_release(self._cat, rec, rows)
        return self.get(name, version)

    def _check_increasing(self, name: str, version: str, top: str | None) -> None:
        if top is None:
            return
        if rq.get_release(self._cat, name, version) is not None:
            raise ReleaseConflict(f"release '{name}@{version}' already exists; releases are immutable")
        if parse_version(version) <= parse_version(top):
            raise VersionNotIncreasing(
                f"version {version} of '{name}' must be greater than the highest existing one, {top}"
            )

    def _select_files(self, name: str, from_ref: str):
        """(commit id, the files the mapping takes, the mapping) for a new release."""
        try:
            commit_id = self._ws.resolve(from_ref)
        except UnknownRef:
            if from_ref == "HEAD" and self._ws.head()[1] is None:
                raise UnknownRef("nothing is committed yet; run 'ws commit' before 'ws release create'") from None
            raise
        manifest = self._ws.manifest(from_ref if from_ref != "HEAD" else "HEAD")
        mapping = load_mapping(self._ws.root, name)
        paths = mapping.select(manifest)
        if not paths:
            if mapping.source:
                raise InvalidReleaseMapping(f"{mapping.source}: the mapping selects no file of commit {commit_id[:12]}")
            raise InvalidArgument(f"commit {commit_id[:12]} has no files to release")
        files = [ReleaseFile(p, manifest[p].file_id, manifest[p].size, manifest[p].file_id, manifest[p].mode)
                 for p in paths]
        missing = {f.id for f in files} - q.known_files(self._cat, [f.id for f in files])
        if missing:
            raise DamagedObjectError(f"{len(missing)} file(s) of commit {commit_id[:12]} are missing from the "
                                     "store; run 'ws fsck'")
        return commit_id, files, mapping

    def _job_of(self, commit_id: str) -> str | None:
        """The creating job (JSON) when the commit's provenance names one."""
        prov = self._ws.get_commit(commit_id).provenance or {}
        job = prov.get("job") if isinstance(prov, dict) else None
        return json.dumps(job) if job else None

    def _author(self) -> str:
        from workspace import config as config_mod

        return config_mod.author(self._ws.config)

    def import_record(self, record: dict) -> Release:
        """Record a release fetched from a remote; a no-op when the same content is already here.

        The file contents (chunks and file rows) must already be stored. Raises
        InvalidReleaseRecord for a malformed record, PathOutsideWorkspace for an
        unsafe path and ReleaseConflict when title@version exists with other files.
        """
        rec, files = validate_record(record, self._ws.root)
        with self._cat.write():
            existing = rq.get_release(self._cat, rec["title"], rec["version"])
            if existing is not None:
                if existing.digest != rec["digest"]:
                    raise ReleaseConflict(
                        f"release '{rec['title']}@{rec['version']}' already exists here with different files"
                    )
                return self._load(existing)
            missing = {f.file_id for f in files} - q.known_files(self._cat, [f.file_id for f in files])
            if missing:
                raise DamagedObjectError(
                    f"release '{rec['title']}@{rec['version']}': {len(missing)} file(s) are not stored locally"
                )
            rq.insert_release(self._cat, rec, files)
        return self.get(rec["title"], rec["version"])


def _fail(msg: str) -> InvalidReleaseRecord:
    return InvalidReleaseRecord(f"invalid release record: {msg}")


def _check_path(path: str, root, checked: set[str]) -> None:
    """safe_join's rules; the symlink checks of a parent folder run once per folder, not per file."""
    parent, _, leaf = path.rpartition("/")
    if parent and parent in checked and leaf not in ("", ".", "..") and "\\" not in leaf and "\x00" not in leaf:
        return
    safe_join(root, path)  # PathOutsideWorkspace (exit 5) for '../', absolute paths, symlinked parents
    checked.add(parent)


def _check_record_file(i: int, f: Any, root, checked: set[str]) -> rq.ReleaseFileRecord:
    """One entry of a record's ``files``; paths must stay inside the workspace."""
    if not isinstance(f, dict):
        raise _fail(f"files[{i}] is not an object")
    path, fid, size, mode = f.get("path"), f.get("id"), f.get("size"), f.get("mode", 0o644)
    if not isinstance(path, str):
        raise _fail(f"files[{i}].path is not a string")
    _check_path(path, root, checked)
    if not isinstance(fid, str) or not _HEX64.match(fid):
        raise _fail(f"files[{i}] ('{path}'): id is not 64 lowercase hex digits")
    if f.get("sha256", fid) != fid:
        raise _fail(f"files[{i}] ('{path}'): sha256 differs from id")
    if type(size) is not int or size < 0 or type(mode) is not int or not 0 <= mode <= 0o7777:
        raise _fail(f"files[{i}] ('{path}'): size and mode must be non-negative integers")
    chunks = f.get("chunks", [])
    if not isinstance(chunks, list) or not all(isinstance(c, str) and _HEX64.match(c) for c in chunks):
        raise _fail(f"files[{i}] ('{path}'): chunks must be a list of 64-hex ids")
    return rq.ReleaseFileRecord(path, fid, size, mode)


def validate_record(record: Any, root) -> tuple[dict, list[rq.ReleaseFileRecord]]:
    """Check a remote release record; returns the ``releases`` row values and the file rows."""
    if not isinstance(record, dict):
        raise _fail("not a JSON object")
    if record.get("format") != RECORD_FORMAT:
        raise _fail(f"format {record.get('format')!r} is not {RECORD_FORMAT}; upgrade ws")
    title = check_title(record.get("title"))
    version = record.get("version")
    if not isinstance(version, str) or str(parse_version(version)) != version:
        raise _fail(f"version {version!r} is not a normalized semantic version")
    raw = record.get("files")
    if not isinstance(raw, list) or not raw:
        raise _fail("'files' must be a non-empty list")
    checked: set[str] = set()
    files = [_check_record_file(i, f, root, checked) for i, f in enumerate(raw)]
    if len({f.path for f in files}) != len(files):
        raise _fail("a path appears twice")
    metadata, description = record.get("metadata") or {}, record.get("description") or ""
    commit, author, created = record.get("commit"), record.get("author") or "", record.get("created_at") or ""
    if not isinstance(metadata, dict) or not isinstance(description, str):
        raise _fail("'metadata' must be an object and 'description' a string")
    if commit is not None and (not isinstance(commit, str) or not _HEX64.match(commit)):
        raise _fail("'commit' must be null or a 64-hex id")
    if not isinstance(author, str) or not isinstance(created, str):
        raise _fail("'author' and 'created_at' must be strings")
    try:
        created_ns = int(datetime.fromisoformat(created).timestamp() * 1e9) if created else time.time_ns()
    except ValueError:
        raise _fail(f"created_at {created!r} is not an ISO 8601 time") from None
    digest = file_digest([ReleaseFile(f.path, f.file_id, f.size, f.file_id, f.mode) for f in files])
    job = record.get("job")
    rec = {"title": title, "version": version, "description": description, "metadata_json": json.dumps(metadata),
           "commit_id": commit, "job": json.dumps(job) if job else None, "author": author,
           "created_at": created, "created_ns": created_ns, "digest": digest, "file_count": len(files),
           "total_size": sum(f.size for f in files)}
    return rec, files
