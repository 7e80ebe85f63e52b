"""Release records: what one release holds, the record format remotes store, and checking a record.

A release records, for each file, its path, content id (the file's SHA-256),
size and mode, plus the commit, the creating job (from the commit's
provenance), author, time, description and metadata. The record format that
remotes store is :meth:`Release.to_record`; :func:`validate_record` checks one
that comes back (``ws.releases.import_record``, in
:mod:`workspace.releases.collection`, records it).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from catalog import objects as q
from catalog import releases as rq
from workspace.errors import DamagedObjectError, InvalidArgument, WorkspaceError
from workspace.layout import safe_join
from workspace.objects.hashing import release_digest
from workspace.releases.mapping import TITLE_RE
from workspace.releases.versions import parse_version

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
