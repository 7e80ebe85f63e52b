"""fsck finds damage and names files; gc reclaims space and keeps what commits need."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import data_packs, write
from workspace.errors import DamagedObjectError


def _packs(ws):
    return data_packs(ws.store)


def test_fsck_clean(ws):
    write(ws.root, "a.txt", "hello")
    ws.commit("one")
    report = ws.fsck()
    assert report.ok and report.packs == 2 and report.files == 1 and report.commits == 1  # data + history


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


# -- every byte of a pack is checked --------------------------------------------------
def _flip(path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


@pytest.mark.parametrize("where", ["index", "entry header"])
def test_fsck_finds_a_flipped_byte_outside_every_chunk(ws, where):
    from workspace.objects import packs

    write(ws.root, "a.bin", os.urandom(3000))
    write(ws.root, "b.bin", os.urandom(3000))
    ws.commit("one")
    [pack] = _packs(ws)
    entries = packs.read_index(pack)
    index_at = entries[-1].offset + entries[-1].length
    # a byte of the index (the second record's stored length), or the reserved byte of an entry header
    _flip(pack, index_at + packs.INDEX.size + 40 if where == "index" else entries[1].offset - packs.ENTRY.size + 3)
    ws.store.close()
    report = ws.fsck()
    assert not report.ok, report
    assert any(os.path.basename(pack) in p for p in report.problems)


# -- gc and packs the catalog does not know -----------------------------------------------
def _replace_catalog_with_an_empty_one(ws, tmp_path):
    """What a damaged or re-created catalog looks like: the schema, no commits, no files."""
    import shutil

    from workspace.api import Workspace

    fresh = Workspace.init(tmp_path / "fresh")
    fresh.close()
    ws.close()
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(str(ws.layout.catalog) + suffix)
        except FileNotFoundError:
            pass
    shutil.copy(fresh.layout.catalog, ws.layout.catalog)


def test_gc_with_an_empty_catalog_deletes_nothing(ws, tmp_path, run_ws):
    """A re-created empty catalog is caught up from the ref files and packs before gc looks at anything."""
    for i in range(3):
        write(ws.root, f"f{i}.bin", os.urandom(20_000))
        ws.commit(f"commit {i}")
    log = [c.id for c in ws.log()]
    before = sorted(ws.store.list_pack_files())
    assert len(before) == 6  # a data pack and a history pack per commit
    _replace_catalog_with_an_empty_one(ws, tmp_path)
    proc = run_ws(ws.root, "gc")
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert sorted(ws.store.list_pack_files()) == before
    assert [c["id"] for c in json.loads(run_ws(ws.root, "log", "--json", check=True).stdout)] == log
    assert run_ws(ws.root, "fsck").returncode == 0


def test_gc_with_an_empty_catalog_and_no_ref_files_deletes_nothing(ws, tmp_path, run_ws):
    """Nothing left to catch up from: gc refuses instead of taking every pack for garbage."""
    for i in range(2):
        write(ws.root, f"f{i}.bin", os.urandom(20_000))
        ws.commit(f"commit {i}")
    before = sorted(ws.store.list_pack_files())
    _replace_catalog_with_an_empty_one(ws, tmp_path)
    import shutil

    (ws.root / ".ws" / "HEAD").unlink()
    shutil.rmtree(ws.root / ".ws" / "refs")
    proc = run_ws(ws.root, "gc")
    assert proc.returncode == 6, (proc.returncode, proc.stderr)
    assert proc.stderr.strip().count("\n") == 0 and "ws fsck --rebuild-catalog" in proc.stderr
    assert sorted(ws.store.list_pack_files()) == before


def test_gc_keeps_an_unknown_pack_whose_chunks_files_need(ws):
    """The catalog lost a pack's record and chunk rows, but still has files needing its chunks."""
    write(ws.root, "old.bin", os.urandom(20_000))
    ws.commit("old")
    [old_pack] = _packs(ws)
    write(ws.root, "new.bin", os.urandom(20_000))
    ws.commit("new")
    pack_id = os.path.basename(old_pack)[:-5]
    with ws.catalog.write() as conn:
        conn.execute("DELETE FROM chunks WHERE pack_id=?", (pack_id,))
        conn.execute("DELETE FROM packs WHERE id=?", (pack_id,))
    report = ws.gc()
    assert os.path.exists(old_pack)
    assert any(pack_id in k for k in report.kept)


def test_gc_keeps_an_unreadable_unknown_pack_and_fsck_reports_it(ws):
    write(ws.root, "a.txt", "a")
    ws.commit("one")
    junk = os.path.join(ws.store.packs_dir, "ab", "ab" + "0" * 62 + ".pack")
    os.makedirs(os.path.dirname(junk), exist_ok=True)
    with open(junk, "wb") as f:
        f.write(b"WSPACK01 but not really a pack")
    report = ws.gc()
    assert os.path.exists(junk) and any("ab" + "0" * 10 in k for k in report.kept)
    fsck = ws.fsck()
    assert not fsck.ok and any("not in the catalog" in p and junk in p for p in fsck.problems)


def test_a_leftover_of_a_killed_commit_is_reported_by_fsck_and_reclaimed_by_gc(ws, run_ws):
    write(ws.root, "base.txt", "base")
    ws.commit("base")
    [base_pack] = _packs(ws)
    for i in range(3):
        write(ws.root, f"data/f{i}.bin", os.urandom(100_000))
    proc = run_ws(ws.root, "commit", "-m", "killed", env={"WS_CRASH_AT": "commit:sealed"})
    assert proc.returncode == -9
    assert len(_packs(ws)) == 2
    report = ws.fsck()
    assert report.ok  # a leftover of an interrupted commit is normal
    # its data pack and its history pack (the commit object never reached a ref)
    assert len(report.unknown_packs) == 2 and "(not in the catalog)" in report.unknown_packs[0]
    gc = ws.gc()
    assert gc.packs_deleted == 2 and gc.kept == []
    assert _packs(ws) == [base_pack]
    assert ws.fsck().ok


def test_a_leftover_whose_chunks_a_later_commit_stored_again_is_reclaimed(ws, run_ws):
    write(ws.root, "base.txt", "base")
    ws.commit("base")
    for i in range(3):
        write(ws.root, f"data/f{i}.bin", os.urandom(100_000))
    assert run_ws(ws.root, "commit", "-m", "killed", env={"WS_CRASH_AT": "commit:sealed"}).returncode == -9
    write(ws.root, "data/more.bin", os.urandom(1000))  # (the same chunks alone would make the same pack id)
    run_ws(ws.root, "commit", "-m", "again", check=True)  # the same chunks, now in a recorded pack
    assert len(_packs(ws)) == 3
    gc = ws.gc()
    assert gc.packs_deleted == 2 and gc.kept == []  # the leftover's data pack and history pack
    assert len(_packs(ws)) == 2 and ws.fsck().ok
    assert ws.read("HEAD", "data/f1.bin") == (ws.root / "data/f1.bin").read_bytes()
