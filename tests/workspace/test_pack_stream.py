"""packs.PackStream, the in-flight verifier the ws server runs on uploads, agrees with check_pack on every pack:
sound ones in pieces of any size, and every flipped byte, cut, extension and wrong id."""

from __future__ import annotations

import hashlib
import io
import random

import pytest

from workspace.objects import packs


def make_pack(tmp_path, payloads: list[bytes]) -> tuple[str, bytes]:
    """(pack id, bytes) of a pack holding ``payloads`` (compressible ones stored zstd)."""
    writer = packs.PackWriter(tmp_path / "tmp")
    for data in payloads:
        codec, stored = packs.encode(data)
        writer.add(hashlib.sha256(data).hexdigest(), len(data), codec, stored)
    pack_id, path, _ = writer.finish(lambda pid: str(tmp_path / pid))
    with open(path, "rb") as f:
        return pack_id, f.read()


def streamed(data: bytes, pack_id: str, rnd: random.Random | None = None) -> packs.PackStream:
    stream = packs.PackStream(len(data), pack_id)
    pos = 0
    while pos < len(data):
        step = rnd.randint(1, 70_000) if rnd else len(data)
        stream.feed(data[pos:pos + step])
        pos += step
    return stream


def reference(data: bytes, pack_id: str) -> packs.PackCheck:
    return packs.check_pack(io.BytesIO(data), pack_id)


SAMPLES = {
    "raw and zstd": lambda r: [r.randbytes(200_000), b"a,b,c\n" * 20_000, r.randbytes(3), b"x" * 5000],
    "one chunk": lambda r: [r.randbytes(1000)],
    "an empty chunk": lambda r: [b"", r.randbytes(100)],
    "no chunks": lambda r: [],
}


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_a_sound_pack_passes_in_pieces_of_any_size(tmp_path, sample):
    rnd = random.Random(sample)
    pack_id, data = make_pack(tmp_path, SAMPLES[sample](rnd))
    for seed in range(5):
        stream = streamed(data, pack_id, random.Random(seed))
        assert stream.finish() and stream.entries == reference(data, pack_id).entries
    one_byte = packs.PackStream(len(data), pack_id)
    for i in range(len(data) if len(data) < 5000 else 0):
        one_byte.feed(data[i:i + 1])
    if len(data) < 5000:
        assert one_byte.finish()


def test_it_agrees_with_check_pack_on_every_flipped_byte(tmp_path):
    rnd = random.Random(1)
    pack_id, data = make_pack(tmp_path, [rnd.randbytes(300), b"t,u\n" * 200, b"", rnd.randbytes(64)])
    for i in range(len(data)):
        for bit in (0x01, 0x80):
            bad = bytearray(data)
            bad[i] ^= bit
            bad = bytes(bad)
            assert not reference(bad, pack_id).ok
            assert not streamed(bad, pack_id, random.Random(i)).finish(), f"byte {i} bit {bit:#x}"


def test_it_refuses_cut_extended_and_misnamed_packs(tmp_path):
    rnd = random.Random(2)
    pack_id, data = make_pack(tmp_path, [rnd.randbytes(5000), b"q" * 3000, rnd.randbytes(10)])
    for cut in range(0, len(data)):
        assert not streamed(data[:cut], pack_id).finish()
    assert not streamed(data + b"\0", pack_id).finish()
    stream = packs.PackStream(len(data), pack_id)  # announced size right, more bytes fed
    stream.feed(data + b"more")
    assert not stream.finish()
    assert not streamed(data, "0" * 64).finish()
    other_id, other = make_pack(tmp_path, [b"something else"])
    assert not streamed(other, pack_id).finish() and streamed(other, other_id).finish()
    # a damaged trailer that check_pack reads past: both refuse
    bad = data[:-8] + b"WSIDX00X"
    assert not reference(bad, pack_id).ok and not streamed(bad, pack_id).finish()


def test_a_zstd_chunk_whose_header_and_frame_both_claim_40_gib_is_damage_not_a_memory_error(tmp_path):
    import struct

    claimed = 40 << 30  # a hostile remote: the frame agrees with the entry header, the bytes are not there
    frame = b"\x28\xb5\x2f\xfd\xe0" + struct.pack("<Q", claimed) + b"\x01\x00\x00"  # one empty raw block
    writer = packs.PackWriter(tmp_path / "tmp")
    writer.add("ab" * 32, claimed, packs.CODEC_ZSTD, frame)
    pack_id, path, _ = writer.finish(lambda pid: str(tmp_path / pid))
    data = open(path, "rb").read()
    check = reference(data, pack_id)
    assert not check.ok and [e.raw_length for e in check.damaged] == [claimed]
    assert not streamed(data, pack_id).finish()
