"""One verified read path: what push, pull, gc and both fscks check, and how often.

A pack is judged by one verifier everywhere (header, every entry header, every
chunk's SHA-256, the footer index against the entries, the pack id against the
index), so a pack one command accepts is never one another calls damaged. Pull
hashes each chunk once, when it enters the local store.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from sync.errors import DamagedRemote, SyncError
from sync.storage import registry
from sync.storage.fsspec_backend import FsspecBackend
from tests.conftest import data_packs, write
from workspace.api import Workspace
from workspace.errors import DamagedObjectError
from workspace.releases.records import InvalidReleaseRecord
from workspace.objects import packs


def _release(ws, files: dict, version: str = "1.0.0"):
    for path, data in files.items():
        write(ws.root, path, data)
    ws.commit(f"for {version}")
    return ws.releases.create("ds", version=version)


def _flip(path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def _remote_packs(remote):
    return sorted(p for p in (remote / "packs").rglob("*") if p.is_file())


def _entry_header_id_byte(pack_path) -> int:
    """An offset inside the first entry header's chunk id: payload and footer stay intact."""
    first = packs.read_index(str(pack_path))[0]
    return first.offset - 10


@pytest.fixture
def pushed(ws, tmp_path):
    _release(ws, {"a.bin": os.urandom(50_000), "b.bin": os.urandom(60_000), "big.bin": os.urandom(3_000_000)})
    ws.add_remote("origin", str(tmp_path / "remote"))
    ws.push()
    return ws, tmp_path / "remote"


def _no_working_files(root) -> bool:
    return not [p for p in root.rglob("*") if p.is_file() and ".ws" not in p.relative_to(root).parts]


def test_remote_pack_with_a_damaged_entry_header_is_refused_by_pull_and_remote_fsck(pushed, tmp_path, cli):
    ws, remote = pushed
    [pack] = _remote_packs(remote)
    os.chmod(pack, 0o644)
    _flip(pack, _entry_header_id_byte(pack))  # the footer index and every payload are intact
    target = Workspace.init(tmp_path / "target")
    target.add_remote("origin", str(remote))
    with pytest.raises(DamagedRemote) as exc:
        target.pull("origin", "ds")
    assert pack.name[:12] in str(exc.value) or pack.name in str(exc.value)
    assert _no_working_files(target.root)
    assert target.store.list_pack_files() == []  # nothing of it was stored
    report = ws.fsck_remote("origin", read_data=True)
    assert not report.ok and any(pack.name in p for p in report.problems)
    res = cli(ws.root, "fsck", "--remote", "origin", "--read-data")
    assert res.exit_code == 6
    target.close()


def test_push_refuses_a_local_pack_with_a_damaged_entry_header(ws, tmp_path, cli):
    _release(ws, {"a.bin": os.urandom(50_000), "b.bin": os.urandom(60_000)})
    [pack] = data_packs(ws.store)
    _flip(pack, _entry_header_id_byte(pack))
    ws.add_remote("origin", str(tmp_path / "remote"))
    res = cli(ws.root, "push")
    assert res.exit_code == 6, res.output
    assert "damaged" in res.output
    remote = tmp_path / "remote"
    assert not (remote / "packs").exists() or _remote_packs(remote) == []


def test_gc_verifies_every_chunk_it_copies_and_keeps_a_pack_it_cannot_copy(ws):
    keep = os.urandom(1000)
    with ws.transaction("both") as t:
        t.put_bytes("keep.bin", keep)
        t.put_bytes("drop.bin", os.urandom(200_000))
    with ws.transaction("only keep") as t:
        t.delete("drop.bin")
    ws.catalog.conn.execute("DELETE FROM commits WHERE message='both'")  # drop.bin becomes garbage
    head = ws.head()[1]
    ws.catalog.conn.execute("UPDATE commits SET parents='[]' WHERE id=?", (head,))
    [pack] = data_packs(ws.store)
    entry = next(e for e in packs.read_index(pack) if e.raw_length == 1000)
    _flip(pack, entry.offset + 500)  # keep.bin's only chunk: gc must not copy it as if it were sound
    report = ws.gc()
    assert os.path.exists(pack)  # the old pack is kept: its live chunk could not be copied
    assert report.packs_rewritten == 0 and any(os.path.basename(pack)[:12] in k for k in report.kept)
    fsck = ws.fsck()
    assert any("keep.bin" in p for p in fsck.damaged_paths)


def test_gc_copies_verified_chunks_then_fsck_is_clean(ws):
    keep = os.urandom(1000)
    with ws.transaction("both") as t:
        t.put_bytes("keep.bin", keep)
        t.put_bytes("drop.bin", os.urandom(200_000))
    with ws.transaction("only keep") as t:
        t.delete("drop.bin")
    ws.catalog.conn.execute("DELETE FROM commits WHERE message='both'")
    head = ws.head()[1]
    ws.catalog.conn.execute("UPDATE commits SET parents='[]' WHERE id=?", (head,))
    [old] = data_packs(ws.store)
    report = ws.gc()
    assert report.packs_rewritten == 1 and not os.path.exists(old)
    assert ws.read("HEAD", "keep.bin") == keep and ws.fsck().ok


class _CountingSha256:
    """hashlib's sha256, counting the bytes it is fed (every chunk and file check goes through it)."""

    total = 0

    def __init__(self, data=b""):
        self._h = hashlib.sha256()
        self.update(data)

    def update(self, data) -> None:
        _CountingSha256.total += len(data)
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()

    def digest(self) -> bytes:
        return self._h.digest()


class _HashlibShim:
    sha256 = _CountingSha256


def test_pull_hashes_each_single_chunk_file_once(ws, tmp_path, monkeypatch):
    files = {f"data/f{i}.bin": os.urandom(100_000) for i in range(20)}  # one chunk each: chunk id == file id
    _release(ws, files)
    ws.add_remote("origin", str(tmp_path / "remote"))
    ws.push()
    import workspace.objects.store as store_mod

    monkeypatch.setattr(packs, "hashlib", _HashlibShim)
    monkeypatch.setattr(store_mod, "hashlib", _HashlibShim)
    _CountingSha256.total = 0
    copy = Workspace.clone(str(tmp_path / "remote"), "ds", tmp_path / "copy")
    data_bytes = sum(len(d) for d in files.values())
    index_bytes = 25 * packs.INDEX.size
    assert data_bytes <= _CountingSha256.total <= data_bytes + index_bytes + 10_000, _CountingSha256.total
    assert (copy.root / "data/f7.bin").read_bytes() == files["data/f7.bin"]
    copy.close()


def _hostile_copy(ws, remote_name: str, version: str, mutate) -> None:
    """Write ds@VERSION to the remote: the record of ds@1.0.0 with its files changed by ``mutate``."""
    from workspace.releases.exchange import open_remote

    rem = open_remote(ws, remote_name)
    record = rem.read_release("ds", "1.0.0")
    record["version"] = version
    mutate({f["path"]: f for f in record["files"]})
    rem.write_release(record)


@pytest.mark.parametrize("mutate", [
    # a one-chunk file whose only chunk is another file's
    lambda files: files["a.bin"].update(chunks=files["b.bin"]["chunks"], size=files["b.bin"]["size"]),
    # a many-chunk file whose chunks are each sound but in the wrong order
    lambda files: files["big.bin"].update(chunks=files["big.bin"]["chunks"][::-1]),
], ids=["single-chunk", "many-chunks"])
def test_a_record_pairing_a_file_with_wrong_chunks_is_refused(pushed, tmp_path, mutate):
    ws, remote = pushed
    big = next(f for f in ws.releases.get("ds", "1.0.0").to_record()["files"] if f["path"] == "big.bin")
    assert len(big["chunks"]) > 1
    _hostile_copy(ws, "origin", "1.0.1", mutate)
    target = Workspace.init(tmp_path / "target")
    target.add_remote("origin", str(remote))
    # a one-chunk file whose chunk is not the file is refused from the record alone, before any download
    with pytest.raises((DamagedObjectError, InvalidReleaseRecord)) as exc:
        target.pull("origin", "ds@1.0.1")
    assert exc.value.exit_code == 6
    assert _no_working_files(target.root)
    assert target.releases.list() == []
    target.close()


def test_an_adopted_pack_is_durable_before_it_is_recorded(pushed, tmp_path, monkeypatch):
    """The folder of a pack pull adopted whole is fsynced after the rename (docs/local-format.md)."""
    import sync.pull as pull_mod

    ws, remote = pushed
    synced: list[str] = []
    real = packs.fsync_dir

    def spy(path: str) -> None:
        synced.append(path)
        real(path)

    monkeypatch.setattr(packs, "fsync_dir", spy)
    monkeypatch.setattr(pull_mod, "fsync_dir", spy, raising=False)
    copy = Workspace.clone(str(remote), "ds", tmp_path / "copy")
    [local] = data_packs(copy.store)
    assert os.path.dirname(local) in synced
    copy.close()


class _FailingUploads(FsspecBackend):
    """A folder remote that refuses every pack upload after the first."""

    uploads = 0

    def put(self, key, data, exclusive=False):
        if key.startswith("packs/"):
            _FailingUploads.uploads += 1
            if _FailingUploads.uploads > 1:
                raise SyncError(f"remote {self.label}: upload refused")
        return super().put(key, data, exclusive)


def _open_files() -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return out


def test_a_failed_push_leaves_no_temporary_pack_open_or_on_disk(ws, tmp_path, monkeypatch):
    import gc as pygc

    for i in range(6):
        write(ws.root, f"f{i}.bin", os.urandom(400_000))
    ws.commit("six")
    os.remove(ws.root / "f0.bin")  # the release needs part of the local pack: the rest is repacked
    ws.commit("five")
    ws.releases.create("ds", version="1.0.0")
    ws.add_remote("origin", str(tmp_path / "remote"))
    monkeypatch.setattr(packs, "TARGET_PACK_SIZE", 1 << 20)
    monkeypatch.setattr(_FailingUploads, "uploads", 0)
    monkeypatch.setitem(registry._FACTORIES, "file", lambda url, options, label: _FailingUploads(url, options, label))
    monkeypatch.setattr("sync.storage.retry.time.sleep", lambda s: None)
    pygc.disable()  # cleanup must not depend on the garbage collector finding the pack writer
    try:
        with pytest.raises(SyncError):
            ws.push(workers=1)
        tmp = ws.layout.ws_dir / "tmp"
        assert not [p for p in tmp.rglob("*") if p.is_file()] if tmp.exists() else True
        assert not [f for f in _open_files() if str(tmp) in f]
    finally:
        pygc.enable()
