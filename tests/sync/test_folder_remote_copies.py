"""Folder remotes are a second copy: packs are copied (reflink, copy_file_range or plain), never shared.

A hard link would make the remote's pack and the local one the same inode, so
damage on either side would be damage on both and the "remote" no backup at
all. Hard links stay available as an explicit opt-in (``-o link=true``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import data_packs, write
from workspace.api import Workspace


def release(ws, files: dict, version: str, name: str = "ds"):
    for path, data in files.items():
        write(ws.root, path, data)
    ws.commit(f"for {name}@{version}")
    return ws.releases.create(name, version=version)


def _inodes(paths) -> set[int]:
    return {os.stat(p).st_ino for p in paths}


def _remote_packs(remote: Path) -> list[Path]:
    return sorted(p for p in (remote / "packs").rglob("*") if p.is_file())


def test_a_folder_remote_holds_copies_so_damage_there_does_not_reach_the_local_store(ws, tmp_path):
    release(ws, {"a.bin": os.urandom(200_000), "b.txt": "b"}, "1.0.0")
    remote = tmp_path / "remote"
    ws.add_remote("origin", str(remote))
    ws.push()
    local = ws.store.list_pack_files()
    assert _inodes(local).isdisjoint(_inodes(_remote_packs(remote)))
    assert all(os.stat(p).st_nlink == 1 for p in local + _remote_packs(remote))
    copy = Workspace.clone(str(remote), "ds", tmp_path / "copy")
    try:
        assert _inodes(copy.store.list_pack_files()).isdisjoint(_inodes(_remote_packs(remote)))
        for pack in _remote_packs(remote):  # the remote rots
            os.chmod(pack, 0o644)
            data = bytearray(pack.read_bytes())
            data[len(data) // 2] ^= 0xFF
            pack.write_bytes(bytes(data))
        assert ws.fsck().ok and copy.fsck().ok
        assert not ws.fsck_remote("origin", read_data=True).ok
    finally:
        copy.close()


def test_hard_links_are_an_opt_in(ws, tmp_path, run_ws):
    release(ws, {"a.bin": os.urandom(200_000)}, "1.0.0")
    remote = tmp_path / "remote"
    run_ws(ws.root, "remote", "add", "origin", remote, "-o", "link=true", check=True)
    run_ws(ws.root, "push", check=True)
    # the data pack is the remote's pack (a commit's history objects stay in a pack of their own)
    assert _inodes(data_packs(ws.store)) == _inodes(_remote_packs(remote))



@pytest.mark.parametrize("reflink,kernel", [(True, True), (False, True), (False, False)],
                         ids=["as-available", "no-reflink", "plain-copy"])
def test_copy_file_gives_an_independent_copy_whatever_the_kernel_offers(tmp_path, monkeypatch, reflink, kernel):
    from sync.storage import fsspec_backend

    if not reflink:
        monkeypatch.setattr(fsspec_backend, "_reflink", lambda src, dst: False)
    if not kernel:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    src = tmp_path / "src"
    data = os.urandom(3 * 1024 * 1024 + 17)
    src.write_bytes(data)
    fsspec_backend.copy_file(str(src), str(tmp_path / "dst"), durable=True)
    assert (tmp_path / "dst").read_bytes() == data
    assert os.stat(tmp_path / "dst").st_ino != os.stat(src).st_ino and os.stat(src).st_nlink == 1
