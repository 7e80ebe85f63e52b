"""Queries about stored content: packs, chunks and files."""

from __future__ import annotations

from typing import Iterable, NamedTuple

from catalog.db import Catalog

_BATCH = 500  # stay well below SQLite's host-parameter limit


class ChunkLocation(NamedTuple):
    """Where one chunk's stored bytes are."""

    id: str
    pack_id: str
    offset: int
    length: int
    raw_length: int
    codec: int
    kind: int = 0  # 0 a data chunk; 1 file, 2 tree, 3 commit: history objects (workspace.objects.packs)


class FileInfo(NamedTuple):
    """A file's size and ordered chunk ids (hex)."""

    id: str
    size: int
    chunk_ids: list[str]


def _batches(items: list, n: int = _BATCH):
    for i in range(0, len(items), n):
        yield items[i : i + n]


def pack_chunk_ids(ids: Iterable[str]) -> bytes:
    """Encode hex chunk ids as concatenated 32-byte digests."""
    return b"".join(bytes.fromhex(i) for i in ids)


def unpack_chunk_ids(blob: bytes) -> list[str]:
    """Decode concatenated 32-byte digests into hex ids."""
    return [blob[i : i + 32].hex() for i in range(0, len(blob), 32)]


def add_pack(cat: Catalog, pack_id: str, size: int, chunks: list[ChunkLocation], created_ns: int) -> None:
    """Record a pack and the chunks it holds (chunks already known keep their first location)."""
    with cat.write() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO packs(id, size, chunk_count, created_ns) VALUES (?,?,?,?)",
            (pack_id, size, len(chunks), created_ns),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO chunks(id, pack_id, offset, length, raw_length, codec, kind) "
            "VALUES (?,?,?,?,?,?,?)",
            chunks,
        )


def add_files(cat: Catalog, files: Iterable[FileInfo]) -> None:
    """Record file contents (idempotent)."""
    rows = [(f.id, f.size, pack_chunk_ids(f.chunk_ids)) for f in files]
    with cat.write() as conn:
        conn.executemany("INSERT OR IGNORE INTO files(id, size, chunk_ids) VALUES (?,?,?)", rows)


def _existing(cat: Catalog, table: str, ids: Iterable[str]) -> set[str]:
    ids = list(set(ids))
    found: set[str] = set()
    for batch in _batches(ids):
        marks = ",".join("?" * len(batch))
        found.update(r[0] for r in cat.query(f"SELECT id FROM {table} WHERE id IN ({marks})", tuple(batch)))
    return found


def known_files(cat: Catalog, ids: Iterable[str]) -> set[str]:
    """The subset of ``ids`` whose content is recorded in the catalog."""
    return _existing(cat, "files", ids)


def known_chunks(cat: Catalog, ids: Iterable[str]) -> set[str]:
    """The subset of ``ids`` stored in some local pack."""
    return _existing(cat, "chunks", ids)


def chunk_ids_if_few(cat: Catalog, limit: int) -> set[str] | None:
    """Every stored chunk id when there are at most ``limit`` of them, else None.

    Counted first, inside SQLite and stopping past ``limit`` (a full ``count(*)``
    would walk every row of a big catalog): over the limit no id is read.
    """
    n = cat.conn.execute("SELECT count(*) FROM (SELECT 1 FROM chunks LIMIT ?)", (limit + 1,)).fetchone()[0]
    if n > limit:
        return None
    return {r[0] for r in cat.conn.execute("SELECT id FROM chunks")}


def has_chunk(cat: Catalog, chunk_id: str) -> bool:
    """Whether one chunk is stored locally (the hot path of dedup)."""
    return cat.conn.execute("SELECT 1 FROM chunks WHERE id=?", (chunk_id,)).fetchone() is not None


def get_file(cat: Catalog, file_id: str) -> FileInfo | None:
    """A file's size and chunk list, or None when unknown."""
    row = cat.query_one("SELECT id, size, chunk_ids FROM files WHERE id=?", (file_id,))
    if row is None:
        return None
    return FileInfo(row[0], row[1], unpack_chunk_ids(row[2]))


def get_files(cat: Catalog, ids: Iterable[str]) -> dict[str, FileInfo]:
    """Many files at once, keyed by id (unknown ids are absent)."""
    ids = list(set(ids))
    out: dict[str, FileInfo] = {}
    for batch in _batches(ids):
        marks = ",".join("?" * len(batch))
        for row in cat.query(f"SELECT id, size, chunk_ids FROM files WHERE id IN ({marks})", tuple(batch)):
            out[row[0]] = FileInfo(row[0], row[1], unpack_chunk_ids(row[2]))
    return out


def chunk_locations(cat: Catalog, ids: Iterable[str]) -> dict[str, ChunkLocation]:
    """Locations of the given chunks (missing ones are absent)."""
    ids = list(set(ids))
    out: dict[str, ChunkLocation] = {}
    for batch in _batches(ids):
        marks = ",".join("?" * len(batch))
        for row in cat.query(
            f"SELECT id, pack_id, offset, length, raw_length, codec, kind FROM chunks WHERE id IN ({marks})",
            tuple(batch),
        ):
            out[row[0]] = ChunkLocation(*row)
    return out


def all_packs(cat: Catalog) -> list[tuple[str, int, int]]:
    """Every recorded pack as (id, size, chunk_count)."""
    return cat.query("SELECT id, size, chunk_count FROM packs ORDER BY id")


def chunks_in_pack(cat: Catalog, pack_id: str) -> list[ChunkLocation]:
    """The chunks the catalog places in one pack, by offset."""
    rows = cat.query(
        "SELECT id, pack_id, offset, length, raw_length, codec, kind FROM chunks WHERE pack_id=? ORDER BY offset",
        (pack_id,),
    )
    return [ChunkLocation(*r) for r in rows]


def all_files(cat: Catalog) -> list[FileInfo]:
    """Every recorded file."""
    return [FileInfo(r[0], r[1], unpack_chunk_ids(r[2])) for r in cat.query("SELECT id, size, chunk_ids FROM files")]


def delete_files(cat: Catalog, ids: Iterable[str]) -> None:
    """Forget file records (gc)."""
    with cat.write() as conn:
        conn.executemany("DELETE FROM files WHERE id=?", [(i,) for i in ids])


def delete_chunks(cat: Catalog, ids: Iterable[str]) -> None:
    """Forget chunk locations (gc)."""
    with cat.write() as conn:
        conn.executemany("DELETE FROM chunks WHERE id=?", [(i,) for i in ids])


def move_chunks(cat: Catalog, moved: list[ChunkLocation]) -> None:
    """Point chunks at new locations (after a repack)."""
    with cat.write() as conn:
        conn.executemany(
            "UPDATE chunks SET pack_id=?, offset=?, length=?, raw_length=?, codec=? WHERE id=?",
            [(c.pack_id, c.offset, c.length, c.raw_length, c.codec, c.id) for c in moved],
        )


def delete_pack(cat: Catalog, pack_id: str) -> None:
    """Forget a pack record."""
    with cat.write() as conn:
        conn.execute("DELETE FROM packs WHERE id=?", (pack_id,))


def all_chunk_ids(cat: Catalog) -> set[str]:
    """The id of every chunk the catalog locates."""
    return {r[0] for r in cat.query("SELECT id FROM chunks")}


def chunk_packs(cat: Catalog) -> dict[str, str]:
    """Chunk id -> the pack the catalog places it in, for every chunk."""
    return dict(cat.query("SELECT id, pack_id FROM chunks"))


def has_files(cat: Catalog) -> bool:
    """Whether the catalog records any file."""
    return cat.query_one("SELECT 1 FROM files LIMIT 1") is not None


def history_object_ids(cat: Catalog) -> set[str]:
    """Ids of the history objects (file chunk lists, trees, commits) the local packs hold."""
    return {r[0] for r in cat.query("SELECT id FROM chunks WHERE kind != 0")}


def recorded_pack_ids(cat: Catalog) -> set[str]:
    """Ids of every pack the catalog records."""
    return {r[0] for r in cat.query("SELECT id FROM packs")}
