"""Chunking and the pack format."""

from __future__ import annotations

import hashlib
import io
import os
import random

import pytest

from workspace.objects import packs
from workspace.objects.chunking import MAX_SIZE, MIN_SIZE, Chunker, cut_bytes


def _file(tmp_path, data):
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    return p


def test_chunks_are_content_defined(tmp_path):
    data = random.Random(1).randbytes(12 << 20)
    edited = data[: 5 << 20] + b"inserted bytes" + data[5 << 20 :]
    with Chunker() as ch:
        a = ch.digest_file(_file(tmp_path, data), lambda p: None)
        b = ch.digest_file(_file(tmp_path, edited), lambda p: None)
    assert a.id == hashlib.sha256(data).hexdigest() and a.size == len(data)
    shared = set(a.chunk_ids) & set(b.chunk_ids)
    assert len(shared) >= len(a.chunk_ids) - 2  # an insert disturbs at most the chunks around it


def test_streaming_matches_in_memory_cuts(tmp_path):
    data = random.Random(2).randbytes(40 << 20)  # more than two read blocks
    pieces = []
    with Chunker() as ch:
        d = ch.digest_file(_file(tmp_path, data), pieces.append)
    cuts = cut_bytes(data)
    assert [hashlib.sha256(data[o : o + n]).hexdigest() for o, n in cuts] == d.chunk_ids
    assert all(MIN_SIZE <= p.raw_length <= MAX_SIZE for p in pieces[:-1])


def test_small_and_empty_files(tmp_path):
    with Chunker() as ch:
        assert ch.digest_file(_file(tmp_path, b""), lambda p: None).chunk_ids == []
        d = ch.digest_file(_file(tmp_path, b"tiny"), lambda p: None)
    assert d.chunk_ids == [hashlib.sha256(b"tiny").hexdigest()] == [d.id]


def test_pack_roundtrip_and_rebuild_index(tmp_path):
    w = packs.PackWriter(tmp_path)
    chunks = [os.urandom(1000), b"a" * 5000, b""]
    for c in chunks:
        codec, payload = packs.encode(c)
        w.add(hashlib.sha256(c).hexdigest(), len(c), codec, payload)
    pack_id, path, entries = w.finish(lambda pid: str(tmp_path / f"{pid}.pack"))
    assert packs.read_index(path) == entries
    assert entries[1].codec == packs.CODEC_ZSTD and entries[0].codec == packs.CODEC_RAW
    with open(path, "rb") as f:
        scanned = [e for e, _ in packs.scan_entries(f)]
    assert scanned == entries
    # without its footer, the entries still describe the pack
    raw = open(path, "rb").read()
    cut = raw[: entries[-1].offset + entries[-1].length]
    assert [e for e, _ in packs.scan_entries(io.BytesIO(cut))] == entries
    with pytest.raises(packs.PackError):
        packs.read_index(cut)
    for e, c in zip(entries, chunks):
        stored = raw[e.offset : e.offset + e.length]
        assert packs.decode(e.codec, stored, e.raw_length) == c


def _open_fds() -> int:
    """Descriptors this process holds on pack files."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").endswith(".pack")
        except OSError:
            pass
    return n


def test_pack_descriptor_cache_is_bounded_and_safe_across_threads(ws, monkeypatch):
    """Eight threads read chunks of 40 packs through a cache of 3 descriptors: every read is right."""
    from concurrent.futures import ThreadPoolExecutor

    from catalog import objects as q

    monkeypatch.setattr(packs, "TARGET_PACK_SIZE", 1)  # one pack per chunk
    blobs = [os.urandom(3000) for _ in range(40)]
    with ws.store.writer() as w:
        ids = [w.add_bytes(b).chunk_ids[0] for b in blobs]
        w.seal()
        w.record(0)
    locs = q.chunk_locations(ws.catalog, ids)
    assert len({loc.pack_id for loc in locs.values()}) == 40
    ws.store.close()
    ws.store.max_open_packs = 3
    before = _open_fds()  # (other tests' workspaces may still hold some)
    order = [random.Random(i).randrange(40) for i in range(4000)]

    def read(i: int) -> bool:
        return ws.store.read_chunk(locs[ids[i]]) == blobs[i]

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(read, order))
    assert _open_fds() - before <= 3
    ws.store.close()
    assert _open_fds() == before


def _sample_pack(tmp_path):
    """A pack of three chunks (raw, zstd, raw) and its id, path and entries."""
    w = packs.PackWriter(tmp_path)
    for c in (os.urandom(1000), b"z" * 5000, os.urandom(700)):
        codec, payload = packs.encode(c)
        w.add(hashlib.sha256(c).hexdigest(), len(c), codec, payload)
    return w.finish(lambda pid: str(tmp_path / f"{pid}.pack"))


def _flip(path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def test_pack_verifier_accepts_a_sound_pack(tmp_path):
    pack_id, path, entries = _sample_pack(tmp_path)
    with open(path, "rb") as f:
        check = packs.check_pack(f, pack_id)
    assert check.ok and check.entries == entries and check.index == entries
    assert packs.verify_pack(path, pack_id) == entries


# every byte of a pack outside the payloads is covered: header, entry headers, index, trailer
@pytest.mark.parametrize("where", ["magic", "entry magic", "entry codec", "entry reserved", "entry raw length",
                                   "entry stored length", "entry chunk id", "payload", "index id", "index offset",
                                   "index codec", "trailer offset", "trailer count", "trailer magic"])
def test_pack_verifier_finds_any_flipped_byte(tmp_path, where):
    pack_id, path, entries = _sample_pack(tmp_path)
    second = entries[1].offset - packs.ENTRY.size  # where the second entry's header starts
    index_at = entries[-1].offset + entries[-1].length
    size = os.path.getsize(path)
    offset = {"magic": 3, "entry magic": second, "entry codec": second + 2, "entry reserved": second + 3,
              "entry raw length": second + 4, "entry stored length": second + 12, "entry chunk id": second + 30,
              "payload": entries[1].offset + 7, "index id": index_at + packs.INDEX.size + 5,
              "index offset": index_at + 32, "index codec": index_at + packs.INDEX.size - 1,
              "trailer offset": size - 24, "trailer count": size - 16, "trailer magic": size - 3}[where]
    _flip(path, offset)
    with open(path, "rb") as f:
        check = packs.check_pack(f, pack_id)
    assert not check.ok and check.problems
    with pytest.raises(packs.PackError):
        packs.verify_pack(path, pack_id)


def test_pack_verifier_keeps_the_sound_chunks_of_a_damaged_pack(tmp_path):
    pack_id, path, entries = _sample_pack(tmp_path)
    _flip(path, entries[0].offset + 10)  # the first chunk's payload
    with open(path, "rb") as f:
        check = packs.check_pack(f, pack_id)
    assert [e.id for e in check.damaged] == [entries[0].id]
    assert check.entries == entries[1:]  # the others verified
    assert check.index == entries


def test_verified_chunk_is_the_one_chunk_check():
    data = b"hello" * 200
    cid = hashlib.sha256(data).hexdigest()
    codec, payload = packs.encode(data)
    assert bytes(packs.verified_chunk(cid, codec, payload, len(data))) == data
    with pytest.raises(packs.PackError):
        packs.verified_chunk(cid, codec, payload, len(data) + 1)
    with pytest.raises(packs.PackError):
        packs.verified_chunk("0" * 64, codec, payload, len(data))
    with pytest.raises(packs.PackError):
        packs.verified_chunk(cid, 7, payload, len(data))
