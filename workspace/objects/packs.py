"""The pack format, shared by the local store and remotes (docs/format.md).

A pack is a header, a run of self-describing entries, and a footer index::

    header   b"WSPACK01"
    entry    b"WC" codec:u8 kind:u8 raw_len:u64 stored_len:u64 object_id:32B payload
    footer   index entries (object_id:32B offset:u64 stored_len:u64 raw_len:u64 codec|kind<<4:u8)
             index_offset:u64 count:u64 b"WSIDX001"

``offset`` is where an entry's payload starts. Because every entry carries its
own header, the index of a pack whose footer was lost can be rebuilt by reading
the entries in order. The pack id is the SHA-256 of the footer's index bytes.

An entry holds a data chunk (kind 0) or a history object: a file's chunk list
(1), a tree (2) or a commit (3) (see :mod:`workspace.objects.history`). Every
object's id is the SHA-256 of its raw bytes, so one verifier covers them all.
Data packs are byte-for-byte what they were before kinds existed (kind 0 is
the old reserved zero byte), and remotes only ever hold kind 0.
"""

from __future__ import annotations

import hashlib
import os
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import zstandard

from workspace.errors import DamagedObjectError, reporting_no_space
from workspace.objects.durable import fsync_dir  # noqa: F401  (re-exported: packs' callers use it)

MAGIC = b"WSPACK01"
ENTRY = struct.Struct("<2sBBQQ32s")  # b"WC", codec, reserved, raw_len, stored_len, id
INDEX = struct.Struct("<32sQQQB")
TRAILER = struct.Struct("<QQ8s")
TRAILER_MAGIC = b"WSIDX001"
ENTRY_MAGIC = b"WC"

CODEC_RAW = 0
CODEC_ZSTD = 1

KIND_CHUNK = 0  # a run of a file's bytes
KIND_FILE = 1  # a file's ordered chunk list
KIND_TREE = 2  # one directory of a commit
KIND_COMMIT = 3  # a commit
KINDS = (KIND_CHUNK, KIND_FILE, KIND_TREE, KIND_COMMIT)

TARGET_PACK_SIZE = 32 * 1024 * 1024
ZSTD_LEVEL = 1  # fast; most of the saving of level 3 on tables, at about twice the speed
_SAMPLE = 32 * 1024
_WORTH = 0.92  # keep compressed bytes only when they save at least 8%


class PackError(DamagedObjectError):
    """A pack is damaged or not a pack (exit 6)."""


@dataclass(frozen=True)
class PackEntry:
    """One object (a chunk, or a history object) inside a pack."""

    id: str
    offset: int  # of the payload
    length: int  # stored bytes
    raw_length: int
    codec: int
    kind: int = KIND_CHUNK


def index_record(e: PackEntry) -> bytes:
    """One entry's 57-byte footer index record (kind in the codec byte's high nibble)."""
    return INDEX.pack(bytes.fromhex(e.id), e.offset, e.length, e.raw_length, e.codec | (e.kind << 4))


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
        # the length in an entry header is not trusted with an allocation (a damaged or hostile pack
        # could claim terabytes): the frame's own size must agree, else the output grows as it decodes
        try:
            size = zstandard.frame_content_size(payload)
            if size >= 0:
                if size != raw_length:
                    raise PackError(f"chunk decodes to {size} bytes, its header says {raw_length}")
                return zstandard.ZstdDecompressor().decompress(payload)
            out = bytearray()
            with zstandard.ZstdDecompressor().stream_reader(bytes(payload)) as reader:
                while len(out) <= raw_length:
                    piece = reader.read(min(1 << 20, raw_length + 1 - len(out)))
                    if not piece:
                        break
                    out += piece
            return bytes(out)
        except zstandard.ZstdError as exc:
            raise PackError(f"cannot decompress chunk: {exc}") from exc
        except MemoryError as exc:  # header and frame agree on a size no memory holds: damage, not a crash
            raise PackError(f"chunk claims {raw_length} bytes, more than can be decoded") from exc
    raise PackError(f"unknown codec {codec}")


def verified_chunk(chunk_id: str, codec: int, payload, raw_length: int):
    """The raw chunk from its stored bytes, checked: the one place a chunk is verified.

    Decodes the payload, checks that it is exactly ``raw_length`` bytes and
    that its SHA-256 is ``chunk_id``; raises PackError saying what is wrong.
    A raw payload is returned as given (no copy).
    """
    raw = payload if codec == CODEC_RAW else decode(codec, payload, raw_length)
    if len(raw) != raw_length:
        raise PackError(f"chunk {chunk_id[:12]} has {len(raw)} bytes, its header says {raw_length}")
    if hashlib.sha256(raw).hexdigest() != chunk_id:
        raise PackError(f"chunk {chunk_id[:12]} fails its SHA-256 check")
    return raw


class PackWriter:
    """Appends entries to a new pack under a temporary name.

    ``finish()`` writes the footer, fsyncs, and renames the file to its final
    name; only then may an index or catalog refer to it. A write that fails
    (a full disk) spoils the pack: ``finish()`` then refuses and deletes it,
    so a pack under its final name is always whole. A full disk or quota is
    raised as :class:`workspace.errors.NoSpace`.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = os.fspath(directory)
        self.tmp_path = os.path.join(self.directory, f"tmp-{uuid.uuid4().hex}.pack")
        self._f: BinaryIO | None = None
        self._spoiled = False
        self.size = len(MAGIC)
        self.entries: list[PackEntry] = []
        with reporting_no_space(self.directory):
            os.makedirs(self.directory, exist_ok=True)
            self._f = open(self.tmp_path, "wb")
            try:
                self._f.write(MAGIC)
            except BaseException:
                self.abort()
                raise

    def add(self, chunk_id: str, raw_length: int, codec: int, payload, kind: int = KIND_CHUNK) -> PackEntry:
        """Append one object's stored bytes."""
        entry = self.reserve(chunk_id, raw_length, codec, len(payload), kind)
        self.write_entry(chunk_id, raw_length, codec, payload, kind)
        return entry

    def reserve(self, chunk_id: str, raw_length: int, codec: int, stored_length: int,
                kind: int = KIND_CHUNK) -> PackEntry:
        """Account for the next entry (its offset) before its bytes are written.

        Split from :meth:`write_entry` so another thread can do the writing;
        entries must be written in the order they were reserved.
        """
        entry = PackEntry(chunk_id, self.size + ENTRY.size, stored_length, raw_length, codec, kind)
        self.size += ENTRY.size + stored_length
        self.entries.append(entry)
        return entry

    def write_entry(self, chunk_id: str, raw_length: int, codec: int, payload, kind: int = KIND_CHUNK) -> None:
        """Write one reserved entry's header and payload."""
        if self._spoiled:
            raise PackError(f"pack {self.tmp_path} was not written whole")
        try:
            with reporting_no_space(self.directory):
                self._f.write(ENTRY.pack(ENTRY_MAGIC, codec, kind, raw_length, len(payload),
                                         bytes.fromhex(chunk_id)))
                self._f.write(payload)
        except BaseException:
            self._spoiled = True  # some of the entry may be written: no later offset can be trusted
            raise

    def finish(self, final_path_for) -> tuple[str, str, list[PackEntry]]:
        """Seal the pack; returns (pack id, final path, entries).

        ``final_path_for(pack_id)`` names the final location. On any failure
        the unfinished file is deleted.
        """
        try:
            with reporting_no_space(self.directory):
                if self._spoiled:
                    raise PackError(f"pack {self.tmp_path} was not written whole")
                index = b"".join(index_record(e) for e in self.entries)
                pack_id = hashlib.sha256(index).hexdigest()
                self._f.write(index)
                self._f.write(TRAILER.pack(self.size, len(self.entries), TRAILER_MAGIC))
                self.size += len(index) + TRAILER.size
                self._f.flush()
                if self._f.tell() != self.size:
                    raise PackError(f"pack {self.tmp_path} has {self._f.tell()} bytes, expected {self.size}")
                os.fsync(self._f.fileno())
                self._f.close()
                final = final_path_for(pack_id)
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.replace(self.tmp_path, final)
        except BaseException:
            self.abort()
            raise
        fsync_dir(os.path.dirname(final))
        return pack_id, final, self.entries

    def abort(self) -> None:
        """Drop the unfinished pack (safe to call more than once, and after a failed write)."""
        try:
            if self._f is not None:
                self._f.close()
        except OSError:
            pass  # flushing what is being thrown away failed (a full disk): it does not matter
        finally:
            Path(self.tmp_path).unlink(missing_ok=True)


def read_index(data_or_file) -> list[PackEntry]:
    """Read a pack's footer index from a path or a bytes object (not verified: see :func:`check_pack`)."""
    if isinstance(data_or_file, (bytes, bytearray, memoryview)):
        import io

        return _read_footer(io.BytesIO(bytes(data_or_file)))[0]
    with open(data_or_file, "rb") as f:
        return _read_footer(f)[0]


def _read_footer(f: BinaryIO) -> tuple[list[PackEntry], bytes]:
    """(index entries, index bytes) of a pack; PackError when the header or footer is damaged."""
    f.seek(0, os.SEEK_END)
    total = f.tell()
    if total < len(MAGIC) + TRAILER.size:
        raise PackError("pack is truncated")
    f.seek(0)
    if f.read(len(MAGIC)) != MAGIC:
        raise PackError("not a ws pack (bad header)")
    idx_off = _index_offset(f, total)
    if idx_off is None:
        raise PackError("pack footer is damaged")
    count = (total - TRAILER.size - idx_off) // INDEX.size
    f.seek(idx_off)
    raw = f.read(count * INDEX.size)
    return parse_index(raw, count), raw


def _index_offset(f: BinaryIO, total: int) -> int | None:
    """Where the footer index starts when the trailer is sound, else None."""
    if total < len(MAGIC) + TRAILER.size:
        return None
    f.seek(total - TRAILER.size)
    idx_off, count, magic = TRAILER.unpack(f.read(TRAILER.size))
    if magic != TRAILER_MAGIC or idx_off < len(MAGIC) or idx_off + count * INDEX.size + TRAILER.size != total:
        return None
    return idx_off


def parse_index(raw: bytes, count: int) -> list[PackEntry]:
    """The entries of an index (``count`` records of :data:`INDEX`), as a pack footer or a remote stores them."""
    out = []
    for i in range(count):
        cid, off, ln, raw_len, codec = INDEX.unpack_from(raw, i * INDEX.size)
        out.append(PackEntry(cid.hex(), off, ln, raw_len, codec & 0x0F, codec >> 4))
    return out


def _entry_at(head: bytes, pos: int, limit: int) -> PackEntry:
    """The entry whose header ``head`` starts at ``pos``; PackError unless it is well formed and ends by ``limit``."""
    if len(head) < ENTRY.size:
        raise PackError(f"entry header at offset {pos} is truncated")
    magic, codec, kind, raw_len, stored, cid = ENTRY.unpack(head)
    if magic != ENTRY_MAGIC or kind not in KINDS or codec not in (CODEC_RAW, CODEC_ZSTD):
        raise PackError(f"entry header at offset {pos} is damaged")
    if pos + ENTRY.size + stored > limit:
        raise PackError(f"entry at offset {pos} runs past the end of the entries")
    return PackEntry(cid.hex(), pos + ENTRY.size, stored, raw_len, codec, kind)


def scan_entries(f: BinaryIO) -> Iterator[tuple[PackEntry, bytes]]:
    """Walk a pack's entries from the start, yielding (entry, payload), unverified.

    Rebuilds an index from the pack alone. Raises PackError when the file does
    not start like a pack, when an entry's payload is cut short, or (the footer
    being sound) when an entry header is damaged. When the footer is damaged it
    stops at the first bytes that are not an entry header, so callers must
    compare what they got with what they expected.
    """
    f.seek(0, os.SEEK_END)
    total = f.tell()
    idx_off = _index_offset(f, total)
    limit = total if idx_off is None else idx_off
    f.seek(0)
    if f.read(len(MAGIC)) != MAGIC:
        raise PackError("not a ws pack (bad header)")
    pos = len(MAGIC)
    while pos < limit:
        head = f.read(ENTRY.size)
        if idx_off is None and (len(head) < ENTRY.size or head[:2] != ENTRY_MAGIC):
            return  # the (damaged) footer, or a truncated tail, is reached
        entry = _entry_at(head, pos, limit)
        payload = f.read(entry.length)
        yield entry, payload
        pos = entry.offset + entry.length


@dataclass
class PackCheck:
    """What :func:`check_pack` found in one pack."""

    entries: list[PackEntry] = field(default_factory=list)  # entries whose header and chunk verified
    damaged: list[PackEntry] = field(default_factory=list)  # sound headers, chunks failing their check
    index: list[PackEntry] | None = None  # the footer index, when header and trailer are sound
    structure: list[str] = field(default_factory=list)  # what is wrong outside the chunks

    @property
    def problems(self) -> list[str]:
        """Everything wrong, in words: the structure first, then each damaged chunk."""
        return self.structure + [f"damaged chunk {e.id[:12]} at offset {e.offset}" for e in self.damaged]

    @property
    def ok(self) -> bool:
        """Every byte of the pack checked out."""
        return not self.structure and not self.damaged


def check_pack(f: BinaryIO, pack_id: str | None = None, on_chunk=None) -> PackCheck:
    """The one pack verifier: reads a pack once, front to back, and reports every problem.

    Checks the header, every entry header, every chunk (decoded, its length,
    its SHA-256), that the footer index lists exactly the entries walked, and,
    given ``pack_id``, that the SHA-256 of the index bytes is the pack id. So
    every byte of a pack is covered. ``on_chunk(entry, payload)`` is called
    for each chunk that verified. Never raises for damage (only OSError).
    """
    check = PackCheck()
    try:
        check.index, index_raw = _read_footer(f)
    except PackError as exc:
        check.structure.append(str(exc))
        index_raw = None
    f.seek(0)
    if f.read(len(MAGIC)) != MAGIC:
        return check  # not a pack at all: the header problem is recorded
    f.seek(0, os.SEEK_END)
    limit = f.tell() if check.index is None else _index_offset(f, f.tell())
    f.seek(len(MAGIC))
    walked = _check_entries(f, limit, check, on_chunk)
    if check.index is not None and check.index != walked:
        check.structure.append("its index does not match its entries")
    if index_raw is not None and pack_id is not None and hashlib.sha256(index_raw).hexdigest() != pack_id:
        check.structure.append("its index does not match the pack id")
    return check


def _check_entries(f: BinaryIO, limit: int, check: PackCheck, on_chunk) -> list[PackEntry]:
    """Walk and verify the entries up to ``limit``; returns every entry with a sound header."""
    walked: list[PackEntry] = []
    pos = len(MAGIC)
    while pos < limit:
        try:
            entry = _entry_at(f.read(ENTRY.size), pos, limit)
        except PackError as exc:
            check.structure.append(str(exc))  # nothing after a damaged header can be trusted to line up
            break
        payload = f.read(entry.length)
        try:
            verified_chunk(entry.id, entry.codec, payload, entry.raw_length)
        except PackError:
            check.damaged.append(entry)
        else:
            check.entries.append(entry)
            if on_chunk is not None:
                on_chunk(entry, payload)
        walked.append(entry)
        pos = entry.offset + entry.length
    return walked


class PackStream:
    """:func:`check_pack`'s checks on a pack as its bytes arrive, so a receiver never reads it back.

    ``feed()`` the pieces in order (any sizes), then ``finish()``: True when
    the ``total`` bytes are a sound pack whose id is ``pack_id`` (the header,
    every entry header, every chunk decoded, of its length, with its SHA-256,
    entries up to the footer index, which lists exactly them and hashes to the
    id, and the trailer), with :attr:`entries` its entries. Raw payloads are
    hashed piece by piece; a compressed payload is held whole, as check_pack
    holds every payload, to be checked by :func:`verified_chunk`. False says
    only that something is wrong: run :func:`check_pack` on the stored bytes
    to learn what (it stays the one verifier that explains).

    Where the entries end needs no look ahead: after k entries, the rest of a
    sound pack is its footer exactly when the bytes left are k index records
    and the trailer, which cannot happen before the last entry.
    """

    def __init__(self, total: int, pack_id: str):
        self.total, self.pack_id = total, pack_id
        self.entries: list[PackEntry] = []
        self.pos = 0  # bytes fed so far
        self._buf = bytearray()
        self._need = len(MAGIC)  # bytes the current state wants
        self._state = "magic"  # magic, head, raw, payload, footer, done
        self._entry: PackEntry | None = None
        self._hash = None
        self.sound = total >= len(MAGIC) + TRAILER.size

    def feed(self, data) -> None:
        """The next bytes of the pack."""
        view = memoryview(data)
        while len(view) and self.sound:
            if self._state == "done":
                self.sound = False  # more bytes than the pack's own structure says
                return
            if self._state == "raw":  # hashed as it comes, never held
                take = min(self._need, len(view))
                self._hash.update(view[:take])
                self._need -= take
                self.pos += take
                view = view[take:]
                if not self._need:
                    self._raw_done()
                continue
            take = min(self._need - len(self._buf), len(view))
            self._buf += view[:take]
            self.pos += take
            view = view[take:]
            if len(self._buf) == self._need:
                block = bytes(self._buf)
                self._buf.clear()
                self._complete(block)

    def finish(self) -> bool:
        """Whether the bytes fed are a sound pack of ``total`` bytes with id ``pack_id``."""
        return self.sound and self._state == "done" and self.pos == self.total

    def _complete(self, block: bytes) -> None:
        if self._state == "magic":
            if block != MAGIC:
                self.sound = False
            else:
                self._next()
        elif self._state == "head":
            try:
                entry = _entry_at(block, self.pos - ENTRY.size, self.total - TRAILER.size)
            except PackError:
                self.sound = False
                return
            self._entry = entry
            if entry.codec == CODEC_RAW and entry.length:
                self._state, self._need, self._hash = "raw", entry.length, hashlib.sha256()
                if entry.raw_length != entry.length:
                    self.sound = False
            elif entry.length:
                self._state, self._need = "payload", entry.length
            else:
                self._payload_done(b"")
        elif self._state == "payload":
            self._payload_done(block)
        elif self._state == "footer":
            self._footer(block)

    def _payload_done(self, payload: bytes) -> None:
        e = self._entry
        try:
            verified_chunk(e.id, e.codec, payload, e.raw_length)
        except PackError:
            self.sound = False
            return
        self.entries.append(e)
        self._next()

    def _raw_done(self) -> None:
        if self._hash.hexdigest() != self._entry.id:
            self.sound = False
            return
        self.entries.append(self._entry)
        self._next()

    def _next(self) -> None:
        left = self.total - self.pos
        footer = len(self.entries) * INDEX.size + TRAILER.size
        if left == footer:
            self._state, self._need = "footer", footer
        elif left < footer + ENTRY.size + INDEX.size:  # no room for one more entry and its index record
            self.sound = False
        else:
            self._state, self._need = "head", ENTRY.size

    def _footer(self, block: bytes) -> None:
        raw, trailer = block[:-TRAILER.size], block[-TRAILER.size:]
        idx_off, count, magic = TRAILER.unpack(trailer)
        self._state = "done"
        self.sound = (magic == TRAILER_MAGIC and idx_off == self.total - len(block) and count == len(self.entries)
                      and parse_index(raw, count) == self.entries
                      and hashlib.sha256(raw).hexdigest() == self.pack_id)


def verify_pack(path: str, pack_id: str | None = None) -> list[PackEntry]:
    """A whole pack file, checked by :func:`check_pack`; returns its entries, PackError naming the first problem."""
    with open(path, "rb") as f:
        check = check_pack(f, pack_id)
    if not check.ok:
        raise PackError(check.problems[0] + (f" (and {len(check.problems) - 1} more)" if len(check.problems) > 1
                                             else ""))
    return check.entries
