"""ws fsck verifies every byte of a pack, not only its chunks: header, entry headers, index and trailer."""

from __future__ import annotations

import os

from tests.conftest import data_packs, write
from workspace.objects import packs


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def _outside_payloads(path: str) -> list[int]:
    """Every offset of the pack that no chunk's payload covers."""
    covered = set()
    for e in packs.read_index(path):
        covered.update(range(e.offset, e.offset + e.length))
    return [i for i in range(os.path.getsize(path)) if i not in covered]


def test_fsck_fails_for_a_flipped_byte_anywhere_outside_the_chunks(ws, run_ws):
    for i in range(3):
        write(ws.root, f"f{i}.bin", os.urandom(3000 + i))
    ws.commit("three files")
    [pack] = data_packs(ws.store)
    ws.close()
    offsets = _outside_payloads(pack)
    assert len(offsets) > 3 * packs.ENTRY.size + 3 * packs.INDEX.size  # header, entry headers, index, trailer
    missed = []
    for off in offsets:
        _flip(pack, off)
        try:
            if ws.fsck().ok:
                missed.append(off)
        finally:
            _flip(pack, off)
    assert not missed, f"fsck said ok with these bytes of a {os.path.getsize(pack)}-byte pack flipped: {missed}"
    assert ws.fsck().ok
    # the command exits 6 (damaged), for the last byte of the trailer and a byte of the index alike
    index_byte = os.path.getsize(pack) - packs.TRAILER.size - 1
    for off in (index_byte, os.path.getsize(pack) - 1):
        _flip(pack, off)
        proc = run_ws(ws.root, "fsck")
        _flip(pack, off)
        assert proc.returncode == 6, (off, proc.stdout, proc.stderr)
