"""How a clone writes working files: raw chunks copied from the pack by the kernel, still verified.

A file whose one chunk is stored raw is copied from the local pack with
``os.copy_file_range`` (its bytes never pass through Python); that chunk was
verified as its pack entered the store, so a flipped byte on the remote stops
the clone before any working file exists. The files are made durable by one
``syncfs`` before the catalog records them: a clone killed after the files
are in place but before that is finished by running it again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import workspace.objects.store as store_mod
from sync.errors import DamagedRemote
from tests.conftest import write
from workspace.api import Workspace
from workspace.objects import packs


@pytest.fixture
def remote(tmp_path) -> tuple[Path, dict[str, bytes]]:
    """A folder remote holding ds@1.0.0: incompressible one-chunk files, a many-chunk one and text."""
    files = {f"raw/r{i}.bin": os.urandom(90_000 + i) for i in range(6)}
    files["big/signal.bin"] = os.urandom(1_500_000)
    files["tables/t.csv"] = b"a,b,c\n" * 20_000
    src = Workspace.init(tmp_path / "src")
    try:
        for path, data in files.items():
            write(src.root, path, data)
        src.commit("data")
        src.releases.create("ds", version="1.0.0")
        src.add_remote("origin", str(tmp_path / "remote"))
        src.push()
    finally:
        src.close()
    return tmp_path / "remote", files


def _entry_of(remote: Path, chunk_id: str) -> tuple[Path, packs.PackEntry]:
    for pack in sorted(p for p in (remote / "packs").rglob("*") if p.is_file()):
        for e in packs.read_index(str(pack)):
            if e.id == chunk_id:
                return pack, e
    raise AssertionError(f"chunk {chunk_id[:12]} is in no remote pack")


def _working_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".ws" not in p.relative_to(root).parts}


def test_raw_one_chunk_files_are_copied_in_the_kernel_and_the_rest_written(remote, tmp_path, monkeypatch):
    url, files = remote
    by_file: dict[str, int] = {}
    real = os.copy_file_range

    def counting(src, dst, count, offset_src=None, offset_dst=None):
        n = real(src, dst, count, offset_src, offset_dst)
        name = os.readlink(f"/proc/self/fd/{dst}")
        if not os.path.basename(name).startswith("tmp-"):  # not a pack download
            # the kernel may copy fewer bytes than asked (the product loops), so count what it copied per file
            by_file[name] = by_file.get(name, 0) + n
        return n

    monkeypatch.setattr(os, "copy_file_range", counting)
    copy = Workspace.clone(str(url), "ds", tmp_path / "copy")
    try:
        assert _working_files(copy.root) == files
        raw_one_chunk = [len(d) for p, d in files.items() if p.startswith("raw/")]
        assert sorted(by_file.values()) == sorted(raw_one_chunk)  # the compressible and many-chunk files were not
    finally:
        copy.close()


def test_a_flipped_byte_in_a_raw_chunk_of_a_remote_pack_stops_the_clone(remote, tmp_path, run_ws):
    import hashlib

    url, files = remote
    chunk = hashlib.sha256(files["raw/r3.bin"]).hexdigest()  # its one chunk, stored raw
    pack, entry = _entry_of(url, chunk)
    assert entry.codec == packs.CODEC_RAW and entry.length == len(files["raw/r3.bin"])
    os.chmod(pack, 0o644)
    with open(pack, "r+b") as f:
        f.seek(entry.offset + 4321)
        b = f.read(1)
        f.seek(entry.offset + 4321)
        f.write(bytes([b[0] ^ 0x40]))
    proc = run_ws(tmp_path, "clone", url, "ds@1.0.0", "copy")
    assert proc.returncode == DamagedRemote.exit_code, proc.stderr
    assert pack.name[:12] in proc.stderr
    assert not (tmp_path / "copy").exists()  # a failed clone leaves nothing behind


def test_a_clone_killed_after_writing_its_files_before_the_sync_resumes(remote, tmp_path, run_ws):
    url, files = remote
    killed = run_ws(tmp_path, "clone", url, "ds@1.0.0", "copy", env={"WS_CRASH_AT": "pull:written"})
    assert killed.returncode == -9, killed.stderr
    copy = tmp_path / "copy"
    assert (copy / ".ws" / "clone.json").exists()
    assert _working_files(copy) == files  # every file in place, none of it recorded yet

    again = run_ws(tmp_path, "clone", url, "ds@1.0.0", "copy", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["chunks_fetched"] == 0  # every pack was recorded by the killed run
    assert _working_files(copy) == files
    assert not (copy / ".ws" / "clone.json").exists()
    run_ws(copy, "fsck", check=True)
    st = json.loads(run_ws(copy, "status", "--json", check=True).stdout)
    assert st["added"] == st["modified"] == st["deleted"] == []


def test_without_copy_file_range_the_same_files_are_written(remote, tmp_path, monkeypatch):
    """Where the kernel refuses the copy (another file system, an old kernel) the bytes are read and written."""
    import errno

    url, files = remote

    def refusing(*args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refusing)
    monkeypatch.setattr(store_mod, "_COPY_RANGE", True)
    copy = Workspace.clone(str(url), "ds", tmp_path / "copy")
    try:
        assert _working_files(copy.root) == files
        assert store_mod._COPY_RANGE is False  # asked once, then not again
    finally:
        copy.close()


def test_a_clone_killed_while_staging_files_during_the_download_resumes_without_leftovers(remote, tmp_path, run_ws):
    """Files are staged while packs still arrive; a kill there leaves temporary files the next run removes."""
    url, files = remote
    killed = run_ws(tmp_path, "clone", url, "ds@1.0.0", "copy", env={"WS_CRASH_AT": "pull:staged"})
    assert killed.returncode == -9, killed.stderr
    copy = tmp_path / "copy"
    assert [p for p in copy.rglob(".ws-tmp-*")], "the kill came after a file was staged"

    again = run_ws(tmp_path, "clone", url, "ds@1.0.0", "copy")
    assert again.returncode == 0, again.stderr
    assert _working_files(copy) == files
    assert not [p for p in copy.rglob(".ws-tmp-*")]
    st = json.loads(run_ws(copy, "status", "--json", check=True).stdout)
    assert st["added"] == st["modified"] == st["deleted"] == []


def test_the_files_are_synced_after_they_are_in_place_and_before_the_catalog_records_them(remote, tmp_path,
                                                                                           monkeypatch):
    import sqlite3

    import workspace.releases.exchange as exchange

    url, files = remote
    seen: list[tuple[dict, int, int]] = []
    real = exchange.sync_file_system

    def spy(path: str) -> None:
        root = Path(path)
        with sqlite3.connect(f"file:{root / '.ws' / 'catalog.db'}?mode=ro", uri=True) as conn:
            releases = conn.execute("SELECT count(*) FROM releases").fetchone()[0]
            cached = conn.execute("SELECT count(*) FROM stat_cache").fetchone()[0]
        seen.append((_working_files(root), releases, cached))
        real(path)

    monkeypatch.setattr(exchange, "sync_file_system", spy)
    copy = Workspace.clone(str(url), "ds", tmp_path / "copy")
    try:
        [(in_place, releases, cached)] = seen  # one sync per clone
        assert in_place == files  # every file under its real name...
        assert releases == 0 and cached == 0  # ...and nothing recorded yet
        assert [r.version for r in copy.releases.list()] == ["1.0.0"]
    finally:
        copy.close()


def _failing_syncfs(monkeypatch, err: int) -> list[int]:
    """libc's syncfs as the module calls it, failing with ``err``; the list counts os.sync() fallbacks."""
    import ctypes

    from workspace.objects import durable

    def syncfs(fd: int) -> int:
        ctypes.set_errno(err)
        return -1

    synced: list[int] = []
    monkeypatch.setattr(durable, "_libc_syncfs", syncfs)
    monkeypatch.setattr(durable.os, "sync", lambda: synced.append(1))
    return synced


def test_a_clone_whose_syncfs_finds_the_disk_full_exits_13_and_leaves_nothing(remote, tmp_path, cli,
                                                                               monkeypatch):
    import errno

    url, _ = remote
    synced = _failing_syncfs(monkeypatch, errno.ENOSPC)  # delayed writes that found no room
    res = cli(tmp_path, "clone", str(url), "ds@1.0.0", "copy")
    assert res.exit_code == 13, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ws: error: ") and "no space" in lines[0].lower(), res.output
    assert not (tmp_path / "copy").exists() and synced == []  # not "synced" by an os.sync() that reports nothing


def test_a_pull_whose_syncfs_fails_records_nothing(remote, tmp_path, cli, monkeypatch):
    import errno

    url, files = remote
    src = Workspace.open(tmp_path / "src")
    try:
        write(src.root, "tables/t.csv", b"a,b,c\n1,2,3\n")
        src.commit("more")
        src.releases.create("ds", version="1.1.0")
        src.push()
    finally:
        src.close()
    copy = Workspace.clone(str(url), "ds@1.0.0", tmp_path / "copy")
    copy.close()
    synced = _failing_syncfs(monkeypatch, errno.EDQUOT)
    res = cli(tmp_path / "copy", "pull", "ds@1.1.0")
    assert res.exit_code == 13, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ws: error: "), res.output
    assert synced == []
    copy = Workspace.open(tmp_path / "copy")
    try:
        assert [r.version for r in copy.releases.list()] == ["1.0.0"]  # the new files are not called clean
    finally:
        copy.close()
