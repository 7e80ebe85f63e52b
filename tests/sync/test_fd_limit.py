"""A restore touching more packs than the process may hold open descriptors for.

The store keeps pack descriptors open between reads (a restore reads many
chunks of each pack); the cache must be bounded, or a tree spread over
thousands of packs dies with EMFILE. The real ``ws clone`` runs here with a
soft ``RLIMIT_NOFILE`` lower than the number of packs.
"""

from __future__ import annotations

import os
import resource
import subprocess

import pytest

from tests.conftest import write, ws_exe
from workspace.api import Workspace
from workspace.objects import packs

FD_LIMIT = 64
N_FILES = 3 * FD_LIMIT


def _low_fd_limit() -> None:
    """In the child, before exec: a soft limit of FD_LIMIT open files."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, hard))


@pytest.fixture
def many_packs(ws, tmp_path, monkeypatch):
    """ds@1.0.0 whose N_FILES files each sit in a pack of their own, pushed to a folder remote."""
    monkeypatch.setattr(packs, "TARGET_PACK_SIZE", 1)  # every chunk seals its own pack
    for i in range(N_FILES):
        write(ws.root, f"data/{i // 50}/f{i:04}.bin", os.urandom(2000))
    ws.commit("many packs")
    assert len(ws.store.list_pack_files()) >= N_FILES
    ws.releases.create("ds", version="1.0.0")
    ws.add_remote("origin", str(tmp_path / "remote"))
    ws.push()
    return ws, tmp_path / "remote"


def test_clone_of_a_tree_over_more_packs_than_the_fd_limit(many_packs, tmp_path):
    source, remote = many_packs
    target = tmp_path / "copy"
    proc = subprocess.run([*ws_exe(), "clone", str(remote), "ds", str(target)], capture_output=True, text=True,
                          timeout=120, preexec_fn=_low_fd_limit)
    assert proc.returncode == 0, proc.stderr[-2000:]
    clone = Workspace.open(target)
    try:
        assert len(clone.store.list_pack_files()) > FD_LIMIT
        for i in (0, N_FILES // 2, N_FILES - 1):
            rel = f"data/{i // 50}/f{i:04}.bin"
            assert (target / rel).read_bytes() == (source.root / rel).read_bytes()
        assert clone.status().clean
    finally:
        clone.close()
    # restoring every file from the store (not from fresh downloads) under the same limit
    for p in (target / "data").rglob("*.bin"):
        p.unlink()
    proc = subprocess.run([*ws_exe(), "restore", "data"], cwd=target, capture_output=True, text=True,
                          timeout=120, preexec_fn=_low_fd_limit)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list((target / "data").rglob("*.bin"))) == N_FILES
