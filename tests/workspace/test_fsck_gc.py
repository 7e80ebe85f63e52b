"""fsck finds damage and names files; gc reclaims space and keeps what commits need."""

from __future__ import annotations

import os

import pytest

from tests.conftest import write
from workspace.errors import DamagedObjectError


def _packs(ws):
    return ws.store.list_pack_files()


def test_fsck_clean(ws):
    write(ws.root, "a.txt", "hello")
    ws.commit("one")
    report = ws.fsck()
    assert report.ok and report.packs == 1 and report.files == 1 and report.commits == 1


def test_fsck_detects_flipped_byte_and_names_file(ws):
    write(ws.root, "data/x.bin", os.urandom(5000))
    write(ws.root, "ok.txt", "fine")
    ws.commit("one")
    ws.close()
    [pack] = _packs(ws)
    entries = __import__("workspace.objects.packs", fromlist=["read_index"]).read_index(pack)
    import hashlib

    target = next(e for e in entries if e.raw_length == 5000)
    with open(pack, "r+b") as f:
        f.seek(target.offset + 100)
        b = f.read(1)
        f.seek(target.offset + 100)
        f.write(bytes([b[0] ^ 0xFF]))
    report = ws.fsck()
    assert not report.ok
    assert any("data/x.bin" in p for p in report.damaged_paths)
    assert not any("ok.txt" in p for p in report.damaged_paths)
    del hashlib
    # reading the damaged file fails loudly, and nothing is written under its name
    with pytest.raises(DamagedObjectError):
        ws.read("HEAD", "data/x.bin")
    os.remove(ws.root / "data/x.bin")
    with pytest.raises(DamagedObjectError):
        ws.restore(["data/x.bin"], cwd=ws.root)
    assert not (ws.root / "data/x.bin").exists()
    assert not [p for p in os.listdir(ws.root / "data") if p.startswith(".ws-tmp")]


def test_fsck_detects_missing_pack(ws):
    write(ws.root, "a.txt", "hello")
    ws.commit("one")
    os.remove(_packs(ws)[0])
    report = ws.fsck()
    assert not report.ok and any("missing" in p for p in report.problems)


def test_gc_removes_leftovers_and_keeps_history(ws):
    write(ws.root, "a.txt", "keep me")
    ws.commit("one")
    # what a killed commit leaves: a temp pack, and a sealed pack no commit refers to
    tmp = os.path.join(ws.store.packs_dir, "tmp-dead.pack")
    with open(tmp, "wb") as f:
        f.write(b"partial")
    with ws.store.writer() as w:
        w.add_bytes(os.urandom(4000))
        w.seal()
    assert len(_packs(ws)) == 2
    report = ws.gc()
    assert report.temp_files_deleted == 1 and report.packs_deleted == 1
    assert len(_packs(ws)) == 1
    assert ws.read("HEAD", "a.txt") == b"keep me"
    assert ws.fsck().ok


def test_gc_rewrites_mostly_dead_pack(ws):
    keep = os.urandom(1000)
    with ws.transaction("both") as t:
        t.put_bytes("keep.bin", keep)
        t.put_bytes("drop.bin", os.urandom(200_000))
    # drop the commit that referenced drop.bin: rewrite history to only keep.bin
    from catalog import history

    with ws.transaction("only keep") as t:
        t.delete("drop.bin")
    ws.catalog.conn.execute("DELETE FROM commits WHERE message='both'")
    head = ws.head()[1]
    rec = history.get_commit(ws.catalog, head)
    ws.catalog.conn.execute("UPDATE commits SET parents='[]' WHERE id=?", (rec.id,))
    before = sum(os.path.getsize(p) for p in _packs(ws))
    report = ws.gc()
    after = sum(os.path.getsize(p) for p in _packs(ws))
    assert report.packs_rewritten == 1 and after < before - 150_000
    assert ws.read("HEAD", "keep.bin") == keep
    assert ws.fsck().ok
