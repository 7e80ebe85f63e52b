"""Release records: what one release holds, the record format remotes store, and checking a record.

A release records, for each file, its path, content id (the file's SHA-256),
size and mode, plus the commit, the creating job (from the commit's
provenance), author, time, description and metadata. The record format that
remotes store is :meth:`Release.to_record`; :func:`validate_record` checks one
that comes back (``ws.releases.import_record``, in
:mod:`workspace.releases.collection`, records it).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from catalog import objects as q
from catalog import releases as rq
from sync.remote import TITLE_RE, is_version
from workspace.errors import DamagedObjectError, InvalidArgument, PathOutsideWorkspace, WorkspaceError
from workspace.layout import WS_DIR, safe_join
from workspace.objects.hashing import release_digest
from workspace.objects.names import MAX_LINK_TARGET, NAME_MAX, require_symlinks
from workspace.types import ENTRY_MODES, FILE_MODE, LINK_MODE

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


EMPTY_FILE_ID = hashlib.sha256(b"").hexdigest()
HIDDEN_NAMES = (WS_DIR, ".git")  # folders the walk never enters; as git refuses .git, refused as any component
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _unsafe(path: str, why: str = "") -> PathOutsideWorkspace:
    return PathOutsideWorkspace(f"refusing unsafe path {path!r}" + (f": {why}" if why else ""))


def check_path_text(path: str) -> None:
    """What a record path may be, without looking at any file system.

    safe_join's rules (relative, no NUL, no empty, '.' or '..' parts; exit 5), no
    ``.ws`` or ``.git`` component in any letter case (exit 5), and names the
    walk would hide or no file system can hold: ``.ws-tmp-*``, not UTF-8,
    control characters, names over 255 bytes (exit 6).
    """
    if not path or path[0] == "/" or "\x00" in path:
        raise _unsafe(path)
    parts = path.split("/")
    if "" in parts or "." in parts or ".." in parts:
        raise _unsafe(path)
    folded = path.casefold()
    if ".ws" in folded or ".git" in folded:  # cheap test first: most paths have neither
        for part in parts:
            if part.casefold() in HIDDEN_NAMES:
                raise _unsafe(path, f"'{part}' is a folder that ws and git keep for themselves")
            if part.startswith(".ws-tmp-"):
                raise _fail(f"'{path}' uses a name ws keeps for its temporary files (.ws-tmp-*), "
                            "which it never shows")
    if path.isascii():
        size = len(path)
    else:
        try:
            size = len(path.encode("utf-8"))
        except UnicodeEncodeError:
            raise _fail(f"path {path!r} is not valid UTF-8") from None
    if _CONTROL.search(path):
        raise _fail(f"path {path!r} holds a control character")
    if size > NAME_MAX and any(len(part.encode("utf-8")) > NAME_MAX for part in parts):
        raise _fail(f"'{path}' has a name longer than {NAME_MAX} bytes")


def _check_chunks(where: str, fid: str, size: int, chunks: list[str]) -> None:
    """A chunk list consistent with its file, as far as the record alone tells (the index tells sizes)."""
    if size == 0:
        if chunks or fid != EMPTY_FILE_ID:
            raise _fail(f"{where}: an empty file has no chunks and the id {EMPTY_FILE_ID[:12]}...")
    elif not chunks:
        raise _fail(f"{where}: {size} bytes but no chunks")
    elif len(chunks) > size:
        raise _fail(f"{where}: {len(chunks)} chunks cannot hold {size} bytes")
    elif len(chunks) == 1 and chunks[0] != fid:
        raise _fail(f"{where}: a file of one chunk is that chunk, but the chunk id differs from the file id")


def _check_record_file(i: int, f: Any) -> rq.ReleaseFileRecord:
    """One entry of a record's ``files``: its path, id, size, mode and chunk list."""
    if not isinstance(f, dict):
        raise _fail(f"files[{i}] is not an object")
    path, fid, size, mode = f.get("path"), f.get("id"), f.get("size"), f.get("mode", FILE_MODE)
    if not isinstance(path, str):
        raise _fail(f"files[{i}].path is not a string")
    check_path_text(path)
    where = f"'{path}'"
    if not isinstance(fid, str) or not _HEX64.match(fid):
        raise _fail(f"{where}: id is not 64 lowercase hex digits")
    if f.get("sha256", fid) != fid:
        raise _fail(f"{where}: sha256 differs from id")
    if type(size) is not int or not 0 <= size < 1 << 63:
        raise _fail(f"{where}: size must be a non-negative integer")
    if type(mode) is not int or mode not in ENTRY_MODES:
        raise _fail(f"{where}: mode {mode!r} is not one ws writes (0o644, 0o755, 0o120000 for a symbolic link)")
    if mode == LINK_MODE and not 1 <= size <= MAX_LINK_TARGET:
        raise _fail(f"{where}: a symbolic link's target is 1 to {MAX_LINK_TARGET} bytes, not {size}")
    chunks = f.get("chunks", [])
    if not isinstance(chunks, list) or not all(isinstance(c, str) and _HEX64.match(c) for c in chunks):
        raise _fail(f"{where}: chunks must be a list of 64-hex ids")
    _check_chunks(where, fid, size, chunks)
    return rq.ReleaseFileRecord(path, fid, size, mode)


def _check_one_kind(files: list[rq.ReleaseFileRecord]) -> None:
    """Each name is one thing: no path twice, and no file that is also the folder of another path."""
    paths: set[str] = set()
    for f in files:
        if f.path in paths:
            raise _fail(f"'{f.path}' appears twice")
        paths.add(f.path)
    folders: set[str] = set()
    for f in files:
        parent = f.path.rpartition("/")[0]
        while parent and parent not in folders:
            if parent in paths:
                raise _fail(f"'{parent}' is both a file and a folder (of '{f.path}')")
            folders.add(parent)
            parent = parent.rpartition("/")[0]


def _check_in_workspace(files: list[rq.ReleaseFileRecord], root) -> None:
    """safe_join's file-system rule: no path below a folder that is a symlink (once per folder)."""
    checked: set[str] = set()
    for f in files:
        parent = f.path.rpartition("/")[0]
        if parent not in checked:
            safe_join(root, f.path)  # PathOutsideWorkspace (exit 5)
            checked.add(parent)


def check_record(record: Any) -> tuple[dict, list[rq.ReleaseFileRecord]]:
    """Check a release record by itself (no file system): the rules pull and ``fsck --remote`` share.

    Returns the ``releases`` row values and the file rows. Raises
    InvalidReleaseRecord (exit 6) or PathOutsideWorkspace (exit 5).
    """
    if not isinstance(record, dict):
        raise _fail("not a JSON object")
    if record.get("format") != RECORD_FORMAT:
        raise _fail(f"format {record.get('format')!r} is not {RECORD_FORMAT}; upgrade ws")
    title, version = record.get("title"), record.get("version")
    if not isinstance(title, str) or not TITLE_RE.match(title):
        raise _fail(f"title {title!r} is not a release name")
    if not isinstance(version, str) or not is_version(version):
        raise _fail(f"version {version!r} is not a normalized semantic version")
    raw = record.get("files")
    if not isinstance(raw, list) or not raw:
        raise _fail("'files' must be a non-empty list")
    files = [_check_record_file(i, f) for i, f in enumerate(raw)]
    _check_one_kind(files)
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


def validate_record(record: Any, root) -> tuple[dict, list[rq.ReleaseFileRecord]]:
    """Check a record before any byte of it is fetched or written: :func:`check_record`, then this workspace.

    No path may lie below a folder of ``root`` that is a symlink (exit 5),
    and a record holding symbolic links is refused where they cannot be made.
    """
    rec, files = check_record(record)
    _check_in_workspace(files, root)
    links = [f.path for f in files if f.mode == LINK_MODE]
    if links:
        require_symlinks(f"release {rec['title']}@{rec['version']}", links)
    return rec, files
