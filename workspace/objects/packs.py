"""The pack format, shared by the local store and remotes (docs/format.md).

A pack is a header, a run of self-describing entries, and a footer index::

    header   b"WSPACK01"
    entry    b"WC" codec:u8 0:u8 raw_len:u64 stored_len:u64 chunk_id:32B payload
    footer   index entries (chunk_id:32B offset:u64 stored_len:u64 raw_len:u64 codec:u8)
             index_offset:u64 count:u64 b"WSIDX001"

``offset`` is where an entry's payload starts. Because every entry carries its
own header, the index of a pack whose footer was lost can be rebuilt by reading
the entries in order. The pack id is the SHA-256 of the footer's index bytes.
"""

from __future__ import annotations

import hashlib
import os
import struct
import uuid
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import zstandard

from workspace.errors import DamagedObjectError

MAGIC = b"WSPACK01"
ENTRY = struct.Struct("<2sBBQQ32s")  # b"WC", codec, reserved, raw_len, stored_len, id
INDEX = struct.Struct("<32sQQQB")
TRAILER = struct.Struct("<QQ8s")
TRAILER_MAGIC = b"WSIDX001"
ENTRY_MAGIC = b"WC"

CODEC_RAW = 0
CODEC_ZSTD = 1

TARGET_PACK_SIZE = 32 * 1024 * 1024
ZSTD_LEVEL = 1  # fast; most of the saving of level 3 on tables, at about twice the speed
_SAMPLE = 32 * 1024
_WORTH = 0.92  # keep compressed bytes only when they save at least 8%


class PackError(DamagedObjectError):
    """A pack is damaged or not a pack (exit 6)."""


@dataclass(frozen=True)
class PackEntry:
    """One chunk inside a pack."""

    id: str
    offset: int  # of the payload
    length: int  # stored bytes
    raw_length: int
    codec: int


_local_ctx = {}


def encode(data: memoryview | bytes) -> tuple[int, memoryview | bytes]:
    """Choose how to store a chunk: zstd when it saves space, raw otherwise.

    Compressing three small samples (start, middle, end) first keeps
    incompressible data (most binary data sets) from paying for a full
    compression pass, while a chunk that is only partly compressible still
    gets compressed.
    """
    if len(data) < 512:
        return CODEC_RAW, data
    cctx = _thread_compressor()
    if len(data) > 4 * _SAMPLE:
        n = len(data)
        starts = (0, n // 2 - _SAMPLE // 2, n - _SAMPLE)
        if all(len(cctx.compress(data[s : s + _SAMPLE])) > _WORTH * _SAMPLE for s in starts):
            return CODEC_RAW, data
    packed = cctx.compress(data)
    if len(packed) <= _WORTH * len(data):
        return CODEC_ZSTD, packed
    return CODEC_RAW, data


def _thread_compressor() -> zstandard.ZstdCompressor:
    import threading

    key = threading.get_ident()
    cctx = _local_ctx.get(key)
    if cctx is None:
        cctx = _local_ctx[key] = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return cctx


def decode(codec: int, payload: bytes, raw_length: int) -> bytes:
    """Turn stored bytes back into the raw chunk."""
    if codec == CODEC_RAW:
        return bytes(payload)
    if codec == CODEC_ZSTD:
        try:
            return zstandard.ZstdDecompressor().decompress(payload, max_output_size=raw_length)
        except zstandard.ZstdError as exc:
            raise PackError(f"cannot decompress chunk: {exc}") from exc
    raise PackError(f"unknown codec {codec}")


def verify_chunk(chunk_id: str, raw: bytes) -> bool:
    """Whether ``raw`` hashes to ``chunk_id``."""
    return hashlib.sha256(raw).hexdigest() == chunk_id


class PackWriter:
    """Appends entries to a new pack under a temporary name.

    ``finish()`` writes the footer, fsyncs, and renames the file to its final
    name; only then may an index or catalog refer to it.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = os.fspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.tmp_path = os.path.join(self.directory, f"tmp-{uuid.uuid4().hex}.pack")
        self._f: BinaryIO = open(self.tmp_path, "wb")
        self._f.write(MAGIC)
        self.size = len(MAGIC)
        self.entries: list[PackEntry] = []

    def add(self, chunk_id: str, raw_length: int, codec: int, payload) -> PackEntry:
        """Append one chunk's stored bytes."""
        entry = self.reserve(chunk_id, raw_length, codec, len(payload))
        self.write_entry(chunk_id, raw_length, codec, payload)
        return entry

    def reserve(self, chunk_id: str, raw_length: int, codec: int, stored_length: int) -> PackEntry:
        """Account for the next entry (its offset) before its bytes are written.

        Split from :meth:`write_entry` so another thread can do the writing;
        entries must be written in the order they were reserved.
        """
        entry = PackEntry(chunk_id, self.size + ENTRY.size, stored_length, raw_length, codec)
        self.size += ENTRY.size + stored_length
        self.entries.append(entry)
        return entry

    def write_entry(self, chunk_id: str, raw_length: int, codec: int, payload) -> None:
        """Write one reserved entry's header and payload."""
        self._f.write(ENTRY.pack(ENTRY_MAGIC, codec, 0, raw_length, len(payload), bytes.fromhex(chunk_id)))
        self._f.write(payload)

    def finish(self, final_path_for) -> tuple[str, str, list[PackEntry]]:
        """Seal the pack; returns (pack id, final path, entries).

        ``final_path_for(pack_id)`` names the final location.
        """
        index = b"".join(
            INDEX.pack(bytes.fromhex(e.id), e.offset, e.length, e.raw_length, e.codec) for e in self.entries
        )
        pack_id = hashlib.sha256(index).hexdigest()
        self._f.write(index)
        self._f.write(TRAILER.pack(self.size, len(self.entries), TRAILER_MAGIC))
        self.size += len(index) + TRAILER.size
        self._f.flush()
        if self._f.tell() != self.size:
            raise PackError(f"pack {self.tmp_path} has {self._f.tell()} bytes, expected {self.size}")
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        final = final_path_for(pack_id)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(self.tmp_path, final)
        fsync_dir(os.path.dirname(final))
        return pack_id, final, self.entries

    def abort(self) -> None:
        """Drop the unfinished pack."""
        try:
            self._f.close()
        finally:
            try:
                os.unlink(self.tmp_path)
            except FileNotFoundError:
                pass


def fsync_dir(path: str) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_index(data_or_file) -> list[PackEntry]:
    """Read a pack's footer index from a path or a bytes object."""
    if isinstance(data_or_file, (bytes, bytearray, memoryview)):
        buf = bytes(data_or_file)
        if len(buf) < len(MAGIC) + TRAILER.size or buf[:8] != MAGIC:
            raise PackError("not a ws pack (bad header)")
        idx_off, count, magic = TRAILER.unpack(buf[-TRAILER.size :])
        if magic != TRAILER_MAGIC or idx_off + count * INDEX.size + TRAILER.size != len(buf):
            raise PackError("pack footer is damaged")
        return _parse_index(buf[idx_off : idx_off + count * INDEX.size], count)
    with open(data_or_file, "rb") as f:
        f.seek(0, os.SEEK_END)
        total = f.tell()
        if total < len(MAGIC) + TRAILER.size:
            raise PackError("pack is truncated")
        f.seek(0)
        if f.read(8) != MAGIC:
            raise PackError("not a ws pack (bad header)")
        f.seek(total - TRAILER.size)
        idx_off, count, magic = TRAILER.unpack(f.read(TRAILER.size))
        if magic != TRAILER_MAGIC or idx_off + count * INDEX.size + TRAILER.size != total:
            raise PackError("pack footer is damaged")
        f.seek(idx_off)
        return _parse_index(f.read(count * INDEX.size), count)


def _parse_index(raw: bytes, count: int) -> list[PackEntry]:
    out = []
    for i in range(count):
        cid, off, ln, raw_len, codec = INDEX.unpack_from(raw, i * INDEX.size)
        out.append(PackEntry(cid.hex(), off, ln, raw_len, codec))
    return out


def scan_entries(f: BinaryIO) -> Iterator[tuple[PackEntry, bytes]]:
    """Walk a pack's entries from the start, yielding (entry, payload).

    Used by fsck and to rebuild an index from the pack alone. Raises PackError
    when the file does not start like a pack or an entry's payload is cut
    short. Stops silently at the footer, at the end of the file, and at the
    first bytes that do not look like an entry header: a damaged header ends
    the walk early, so callers must compare what they got with what the
    index lists.
    """
    limit = _entries_end(f)
    f.seek(0)
    if f.read(8) != MAGIC:
        raise PackError("not a ws pack (bad header)")
    pos = 8
    while pos < limit:
        head = f.read(ENTRY.size)
        if len(head) < ENTRY.size or head[:2] != ENTRY_MAGIC:
            return  # footer (or truncated tail) reached
        magic, codec, _, raw_len, stored, cid = ENTRY.unpack(head)
        payload = f.read(stored)
        if len(payload) != stored:
            raise PackError(f"entry at offset {pos} is truncated")
        entry = PackEntry(cid.hex(), pos + ENTRY.size, stored, raw_len, codec)
        yield entry, payload
        pos += ENTRY.size + stored


def _entries_end(f: BinaryIO) -> int:
    """Where the entries stop: the footer's index offset when the footer is sound, else EOF."""
    f.seek(0, os.SEEK_END)
    total = f.tell()
    if total >= len(MAGIC) + TRAILER.size:
        f.seek(total - TRAILER.size)
        idx_off, count, magic = TRAILER.unpack(f.read(TRAILER.size))
        if magic == TRAILER_MAGIC and idx_off + count * INDEX.size + TRAILER.size == total:
            return idx_off
    return total
