"""Tables for remotes: what each configured remote is known to hold.

Filled by push (what it uploaded) and by reading a remote's ``index/`` files
(what it found there), so that status can say offline which releases are not
on a remote yet and push can skip chunks without asking again. Rows are keyed
by the remote's name; they are a cache of the remote, dropped when the remote
is removed or re-added.
"""

from sqlmodel import Field, SQLModel


class RemoteReleaseRow(SQLModel, table=True):
    """A release a remote holds: pushed from here, or seen in its listing."""

    __tablename__ = "remote_releases"
    remote: str = Field(primary_key=True)
    title: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    digest: str  # the release's file-listing digest (see catalog.models.releases)
    state: str  # "pushed" | "seen"
    recorded_ns: int


class RemotePackRow(SQLModel, table=True):
    """A pack whose index was read from (or written to) a remote."""

    __tablename__ = "remote_packs"
    remote: str = Field(primary_key=True)
    pack_id: str = Field(primary_key=True)
    size: int
    chunk_count: int
    learned_ns: int


class RemoteChunkRow(SQLModel, table=True):
    """Where a chunk lives on a remote: pack, payload offset, stored and raw lengths, codec."""

    __tablename__ = "remote_chunks"
    remote: str = Field(primary_key=True)
    chunk_id: str = Field(primary_key=True)
    pack_id: str = Field(index=True)
    offset: int
    length: int
    raw_length: int
    codec: int
