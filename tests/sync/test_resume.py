"""Interrupted push and pull: kill -9 of a real ws process, and a dropped connection.

Neither leaves a partial release visible, and the next run sends or fetches
only what is missing. Packs are made small (1 MiB) so that a few MB of data
spread over several packs and the interruption lands in the middle.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sync.errors import TransientError
from sync.storage import registry
from sync.storage.fsspec_backend import FsspecBackend
from tests.conftest import write
from workspace.api import Workspace
from workspace.objects import packs

# Runs `ws ARGS...` in a process whose folder remotes kill it (SIGKILL) on the Nth pack upload or
# download: a crash in the middle of a transfer, exactly as kill -9 from outside would be.
CRASHING_WS = textwrap.dedent("""
    import os, signal, sys
    from sync.storage import registry
    from sync.storage.fsspec_backend import FsspecBackend
    from workspace.objects import packs
    packs.TARGET_PACK_SIZE = 1 << 20
    op, limit = sys.argv[1], int(sys.argv[2])
    seen = [0]
    class Crashing(FsspecBackend):
        def put(self, key, data, exclusive=False):
            self._tick("put", key)
            return super().put(key, data, exclusive)
        def get(self, key, start=None, end=None):
            self._tick("get", key)
            return super().get(key, start, end)
        def get_file(self, key, local_path):
            self._tick("get", key)
            return super().get_file(key, local_path)
        def _tick(self, what, key):
            if what == op and key.startswith("packs/"):
                seen[0] += 1
                if seen[0] > limit:
                    os.kill(os.getpid(), signal.SIGKILL)
    registry.register("file", lambda url, options, label: Crashing(url, options, label))
    sys.argv = ["ws"] + sys.argv[3:]
    from workspace.cli import main
    main()
""")


def run_crashing(cwd: Path, op: str, limit: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CRASHING_WS, op, str(limit), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def small_packs(monkeypatch):
    monkeypatch.setattr(packs, "TARGET_PACK_SIZE", 1 << 20)


@pytest.fixture
def source(ws, tmp_path, small_packs):
    """ds@1.0.0 of ~8 MB (several 1 MiB packs) in a workspace with a folder remote 'origin'."""
    for i in range(4):
        write(ws.root, f"data/part{i}.bin", os.urandom(2_000_000))
    write(ws.root, "data/small.csv", "a,b\n1,2\n")
    ws.commit("data")
    ws.releases.create("ds", version="1.0.0")
    ws.add_remote("origin", str(tmp_path / "remote"))
    return ws, tmp_path / "remote"


def _indexed_chunks(remote: Path) -> int:
    """Chunks in the remote's complete packs (index files; '.tmp-*' are unfinished writes a crash left)."""
    index_dir = remote / "index"
    if not index_dir.exists():
        return 0
    return sum(len(p.read_bytes()) // packs.INDEX.size for p in index_dir.iterdir() if not p.name.startswith("."))


def _all_chunks(ws) -> int:
    return len({c for f in ws.releases.get("ds", "1.0.0").to_record()["files"] for c in f["chunks"]})


def test_push_killed_mid_upload_resumes_without_resending(source, tmp_path):
    ws, remote = source
    proc = run_crashing(ws.root, "put", 2, "push", "-q", "-j", "1")  # one upload at a time: 2 packs land
    assert proc.returncode == -9, proc.stderr
    assert not (remote / "releases").exists() or not any((remote / "releases").rglob("*.json"))
    assert len(list((remote / "packs").rglob("*"))) > 0  # something was uploaded before the crash
    with pytest.raises(Exception) as exc:
        Workspace.clone(str(remote), "ds", tmp_path / "early")
    assert getattr(exc.value, "exit_code", None) == 4  # no partial release is visible
    total = _all_chunks(ws)
    done_before = _indexed_chunks(remote)
    assert 0 < done_before < total
    result = ws.push()
    assert result.pushed == ["ds@1.0.0"]
    assert result.chunks_uploaded == total - done_before  # chunks already there were not sent again
    clone = Workspace.clone(str(remote), "ds", tmp_path / "copy")
    try:
        for p in ("data/part0.bin", "data/part3.bin", "data/small.csv"):
            assert (clone.root / p).read_bytes() == (ws.root / p).read_bytes()
    finally:
        clone.close()


def test_pull_killed_mid_download_resumes_with_only_the_rest(source, tmp_path):
    ws, remote = source
    ws.push()
    target = Workspace.init(tmp_path / "target")
    target.add_remote("origin", str(remote))
    remote_packs = [p for p in (remote / "packs").rglob("*") if p.is_file()]
    assert len(remote_packs) >= 4
    # one download at a time, crashing on the last one: the packs before it were verified and stored
    proc = run_crashing(target.root, "get", len(remote_packs) - 1, "pull", "-q", "-j", "1", "ds")
    assert proc.returncode == -9, proc.stderr
    assert target.releases.list() == []  # no partial release
    assert not any(p.is_file() for p in (target.root / "data").rglob("*")) if (target.root / "data").exists() else True
    total = _all_chunks(ws)
    result = target.pull("origin", "ds")
    assert 0 < result.chunks_fetched < total  # the packs verified before the crash were kept
    assert (target.root / "data/part2.bin").read_bytes() == (ws.root / "data/part2.bin").read_bytes()
    assert target.status().clean
    target.close()


class _Dropping(FsspecBackend):
    """A folder remote whose connection drops for good after a few pack uploads."""

    budget = 2

    def put(self, key, data, exclusive=False):
        if key.startswith("packs/"):
            if _Dropping.budget <= 0:
                raise TransientError(f"remote {self.label}: connection failed: reset by peer")
            _Dropping.budget -= 1
        return super().put(key, data, exclusive)


def test_dropped_connection_fails_cleanly_then_resumes(source, monkeypatch, cli):
    ws, remote = source
    monkeypatch.setitem(registry._FACTORIES, "file", lambda url, options, label: _Dropping(url, options, label))
    monkeypatch.setattr("sync.storage.retry.time.sleep", lambda s: None)  # retries need no real waiting here
    res = cli(ws.root, "push", "-q")
    assert res.exit_code == 10, res.output
    assert res.output.strip().startswith("ws: error:") and "connection failed" in res.output
    assert res.output.count("\n") == 1
    assert ws.status().remotes[0]["releases_not_pushed"] == ["ds@1.0.0"]
    done_before = _indexed_chunks(remote)
    assert done_before < _all_chunks(ws)
    monkeypatch.setattr(_Dropping, "budget", 10_000)
    result = ws.push()
    assert result.pushed == ["ds@1.0.0"]
    assert result.chunks_uploaded == _all_chunks(ws) - done_before
