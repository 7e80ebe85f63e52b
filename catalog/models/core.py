"""Core tables: objects (packs, chunks, files), history (trees, commits, refs),
and the working-tree caches that make ``ws status`` cheap.

Ids are lowercase hex SHA-256. Times are integer nanoseconds since the epoch.
"""

from typing import Optional

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, SQLModel


class MetaRow(SQLModel, table=True):
    """Small key/value facts: HEAD, the commit the head manifest reflects."""

    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str


class RefRow(SQLModel, table=True):
    """A branch: name -> commit id."""

    __tablename__ = "refs"
    name: str = Field(primary_key=True)
    commit_id: str
    updated_ns: int


class PackRow(SQLModel, table=True):
    """A pack file in the local store (``.ws/objects/packs/<aa>/<id>.pack``)."""

    __tablename__ = "packs"
    id: str = Field(primary_key=True)
    size: int
    chunk_count: int
    created_ns: int


class ChunkRow(SQLModel, table=True):
    """Where a pack entry lives: pack, byte offset of its stored bytes, lengths, codec, kind."""

    __tablename__ = "chunks"
    id: str = Field(primary_key=True)
    pack_id: str = Field(index=True)
    offset: int
    length: int
    raw_length: int
    codec: int  # 0 raw, 1 zstd
    kind: int = 0  # 0 data chunk; history objects: 1 file chunk list, 2 tree, 3 commit


class FileRow(SQLModel, table=True):
    """A file's content: size and the ordered chunk ids (32-byte digests, concatenated)."""

    __tablename__ = "files"
    id: str = Field(primary_key=True)
    size: int
    chunk_ids: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class TreeRow(SQLModel, table=True):
    """One directory of a commit: its serialized entries (see workspace.trees)."""

    __tablename__ = "trees"
    id: str = Field(primary_key=True)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CommitRow(SQLModel, table=True):
    """A commit: root tree, parents (JSON list), branch, message, author, time, provenance (JSON)."""

    __tablename__ = "commits"
    id: str = Field(primary_key=True)
    tree_id: str
    parents: str
    branch: Optional[str] = None
    message: str
    author: str
    time_ns: int = Field(index=True)
    provenance: Optional[str] = None


class StatCacheRow(SQLModel, table=True):
    """What a working file looked like when it was last hashed."""

    __tablename__ = "stat_cache"
    path: str = Field(primary_key=True)
    size: int
    mtime_ns: int
    ino: int
    file_id: str
    recorded_ns: int


class HeadManifestRow(SQLModel, table=True):
    """HEAD's tree flattened (path -> file id), rebuilt whenever HEAD moves."""

    __tablename__ = "head_manifest"
    path: str = Field(primary_key=True)
    file_id: str
    size: int
    mode: int


class StatusSnapshotRow(SQLModel, table=True):
    """A compact copy of what ``ws status`` last proved clean (a marshal blob).

    Derived from stat_cache and head_manifest; valid only while ``generation``
    equals meta ``statgen``, which every write to those tables bumps.
    """

    __tablename__ = "status_snapshot"
    id: int = Field(primary_key=True)
    generation: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
