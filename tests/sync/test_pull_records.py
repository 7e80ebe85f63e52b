"""Pull records every pack it stores, even those the writer's I/O thread seals mid-loop.

With 1 MiB packs a pull of a few MB seals a pack every few chunks, on the
writer's I/O thread, while the pulling thread records what was sealed so far:
any pack sealed between "what is new" and "remember how far I got" must not
be lost (its chunks would have no catalog row, and fsck would say so).
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import write
from workspace.api import Workspace
from workspace.objects import packs


@pytest.fixture
def remote_with_release(ws, tmp_path):
    """ds@1.0.0: one small file plus ~6 MB in 24 files, pushed in big (32 MiB) packs."""
    write(ws.root, "first.bin", os.urandom(100_000))
    for i in range(24):
        write(ws.root, f"data/f{i:02}.bin", os.urandom(250_000))
    ws.commit("data")
    ws.releases.create("ds", version="1.0.0")
    ws.add_remote("origin", str(tmp_path / "remote"))
    ws.push()
    return ws, tmp_path / "remote"


def test_twenty_pulls_with_small_packs_all_fsck_clean(remote_with_release, tmp_path, monkeypatch):
    source, remote = remote_with_release
    first = (source.root / "first.bin").read_bytes()
    monkeypatch.setattr(packs, "TARGET_PACK_SIZE", 1 << 20)  # the puller seals a pack every ~4 files
    for i in range(20):
        target = Workspace.init(tmp_path / f"t{i}")
        try:
            # one file already here: the remote pack is not needed whole, so chunks come as
            # range GETs and go through the local writer (the path that rolls packs)
            write(target.root, "first.bin", first)
            target.commit("first")
            target.add_remote("origin", str(remote))
            result = target.pull("origin", "ds", workers=4)
            assert result.chunks_fetched >= 24
            report = target.fsck()
            assert report.ok, (i, report.problems[:3])
            assert len(target.store.list_pack_files()) >= 6
            assert target.status().clean
        finally:
            target.close()
