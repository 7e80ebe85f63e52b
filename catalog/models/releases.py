"""Tables for releases: one row per title@version and one per file it holds.

Releases are immutable: rows are inserted once and never updated. ``digest``
is the SHA-256 of the release's canonical file listing, so two records of the
same title@version can be compared without reading every file row.
"""

from typing import Optional

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class ReleaseRow(SQLModel, table=True):
    """A release: title, semver version, where it came from, and its metadata (JSON)."""

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("title", "version"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    title: str = Field(index=True)
    version: str
    description: str = ""
    metadata_json: str = "{}"
    commit_id: Optional[str] = None
    job: Optional[str] = None  # JSON of the creating job, when a job made it
    author: str
    created_at: str  # ISO 8601 with timezone, as in the remote record
    created_ns: int
    digest: str
    file_count: int
    total_size: int


class ReleaseFileRow(SQLModel, table=True):
    """One file of a release: path -> content id (the file's SHA-256), size, mode."""

    __tablename__ = "release_files"
    release_id: int = Field(primary_key=True)
    path: str = Field(primary_key=True)
    file_id: str = Field(index=True)
    size: int
    mode: int
