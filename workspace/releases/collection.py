"""The releases of one workspace (``ws.releases``): create, list, get, resolve, import.

Which files a new release takes is decided by the release mapping
(:mod:`workspace.releases.mapping`); the record format is
:mod:`workspace.releases.records`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime, timezone

from catalog import objects as q
from catalog import releases as rq
from workspace.config import author
from workspace.errors import DamagedObjectError, InvalidArgument, UnknownRef, WorkspaceError
from workspace.history import refs
from workspace.history.manifest import get_commit, manifest as commit_manifest
from workspace.releases.mapping import InvalidReleaseMapping, load_mapping
from workspace.releases.records import (Release, ReleaseConflict, ReleaseFile, VersionNotIncreasing, check_title,
                                        file_digest, split_spec, validate_record)
from workspace.releases.versions import (NoMatchingVersion, UnknownRelease, bump as bump_version, highest,
                                         parse_version, select)
from workspace.objects.durable import write_atomic
from workspace.repo import Repo


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


class Releases:
    """The releases of one workspace (``ws.releases``)."""

    def __init__(self, repo: Repo):
        self._repo = repo
        self._cat = repo.catalog

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

    def resolve_spec(self, spec: str) -> Release:
        """The release ``NAME[@EXPR]`` picks (``ws release show``); the expression defaults to ``latest``."""
        name, expr = split_spec(spec)
        return self.resolve(name, expr)

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
            # the record file before the transaction commits: the catalog is never its only copy
            write_record_file(self._repo, self.get(name, version).to_record())
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
            commit_id = refs.resolve(self._cat, from_ref)
        except UnknownRef:
            if from_ref == "HEAD" and refs.read_head(self._cat)[1] is None:
                raise UnknownRef("nothing is committed yet; run 'ws commit' before 'ws release create'") from None
            raise
        manifest = commit_manifest(self._cat, from_ref)
        mapping = load_mapping(self._repo.root, name)
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
        prov = get_commit(self._cat, commit_id).provenance or {}
        job = prov.get("job") if isinstance(prov, dict) else None
        return json.dumps(job) if job else None

    def _author(self) -> str:
        return author(self._repo.config)

    def import_record(self, record: dict, checked: tuple | None = None) -> Release:
        """Record a release fetched from a remote; a no-op when the same content is already here.

        The file contents (chunks and file rows) must already be stored. Raises
        InvalidReleaseRecord for a malformed record, PathOutsideWorkspace for an
        unsafe path and ReleaseConflict when title@version exists with other files.
        ``checked`` is what ``validate_record(record, root)`` returned, when the
        caller (a pull) already ran it on this very record.
        """
        rec, files = checked if checked is not None else validate_record(record, self._repo.root)
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
            write_record_file(self._repo, record)
            rq.insert_release(self._cat, rec, files)
        return self.get(rec["title"], rec["version"])

    # -- the record files under .ws/releases/ ------------------------------------
    def export_files(self) -> int:
        """Write the record file of every release that has none (a workspace from before they existed)."""
        written = 0
        for release in self.list():
            if not record_path(self._repo, release.title, release.version).exists():
                write_record_file(self._repo, release.to_record())
                written += 1
        return written

    def restore_from_files(self) -> tuple[int, list[str]]:
        """Index every record file under ``.ws/releases/`` the catalog lacks (``ws fsck --rebuild-catalog``).

        Returns (releases restored, problems). A record whose files are not
        stored is a problem, not a release.
        """
        from sync.remote import decode_record

        restored, problems = 0, []
        for path in sorted(self._repo.layout.releases_dir.glob("*/*.json")):
            try:
                record = decode_record(path.read_bytes())
                rec, files = validate_record(record, self._repo.root)
                if rq.get_release(self._cat, rec["title"], rec["version"]) is not None:
                    continue
                q.add_files(self._cat, [q.FileInfo(f["id"], f["size"], f["chunks"]) for f in record["files"]
                                        if f.get("chunks") and set(f["chunks"]) <= q.known_chunks(
                                            self._cat, f["chunks"])])
                self.import_record(record)
                restored += 1
            except (ValueError, WorkspaceError) as exc:
                problems.append(f"{path}: {exc}")
        return restored, problems


def record_path(repo: Repo, title: str, version: str):
    """Where a local release record lives: ``.ws/releases/<title>/<version>.json``."""
    return repo.layout.releases_dir / title / f"{version}.json"


def write_record_file(repo: Repo, record: dict) -> None:
    """Write a release record (the remote format) atomically; releases are immutable, so an existing one stays."""
    from sync.remote import encode_record

    path = record_path(repo, record["title"], record["version"])
    if not path.exists():
        write_atomic(path, encode_record(record))
