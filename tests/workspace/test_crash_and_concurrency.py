"""kill -9 during a commit, two commits at once, a busy workspace: real processes, real SQLite."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import write, ws_exe
from workspace.api import Workspace


def _tree(root, n=8, size=300_000):
    for i in range(n):
        write(root, f"data/f{i}.bin", os.urandom(size))


@pytest.mark.parametrize("point", ["commit:ingest", "commit:sealed", "commit:recorded"])
def test_kill9_during_commit_keeps_previous_state(ws, run_ws, point):
    write(ws.root, "base.txt", "base")
    base = ws.commit("base").commit
    _tree(ws.root)
    proc = run_ws(ws.root, "commit", "-m", "crashing", env={"WS_CRASH_AT": point})
    assert proc.returncode == -9
    w = Workspace.open(ws.root)
    head = w.head()[1]
    if point == "commit:recorded":  # the transaction had committed: the commit is whole
        assert head != base.id and len(w.ls()) == 9
    else:
        assert head == base.id and [e.path for e in w.ls()] == ["base.txt"]
    assert w.fsck().ok
    # the next commit works and gc reclaims whatever the dead one left
    run_ws(ws.root, "commit", "-m", "after", check=True) if point != "commit:recorded" else None
    w.gc()
    assert w.store.list_temp_files() == []
    assert w.fsck().ok
    assert w.read("HEAD", "data/f3.bin") == (ws.root / "data/f3.bin").read_bytes()


def test_two_commits_at_once_both_land(ws):
    write(ws.root, "a/1.bin", os.urandom(2_000_000))
    write(ws.root, "b/2.bin", os.urandom(2_000_000))
    env = dict(os.environ, WS_LOCK_TIMEOUT="60")
    procs = [subprocess.Popen([*ws_exe(), "commit", "-m", f"commit {d}", d], cwd=ws.root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for d in ("a", "b")]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0, 0], results
    w = Workspace.open(ws.root)
    assert sorted(e.path for e in w.ls()) == ["a/1.bin", "b/2.bin"]
    assert len(w.log()) == 2
    assert w.fsck().ok and w.status().clean


def test_busy_workspace_is_a_clear_error(ws, run_ws):
    write(ws.root, "a.txt", "a")
    with ws.lock():
        proc = run_ws(ws.root, "commit", "-m", "x", env={"WS_LOCK_TIMEOUT": "0.3"})
    assert proc.returncode == 7
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "workspace busy" in proc.stderr
    assert ws.head()[1] is None


def test_status_while_another_process_commits(ws, run_ws):
    """Readers never see 'database is locked'."""
    _tree(ws.root, n=4)
    proc = subprocess.Popen([*ws_exe(), "commit", "-m", "x"], cwd=ws.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    outs = [run_ws(ws.root, "status", "--json") for _ in range(5)]
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert all(o.returncode == 0 for o in outs), [o.stderr for o in outs]


def test_gc_waits_for_a_push_reading_packs(ws, run_ws):
    """A push holds the pack guard shared; gc (which deletes packs) needs it exclusive."""
    from workspace.lock import pack_guard

    write(ws.root, "a.txt", "a")
    ws.commit("one")
    with pack_guard(ws.layout.pack_lock, exclusive=False):  # what a running push holds
        proc = run_ws(ws.root, "gc", env={"WS_LOCK_TIMEOUT": "0.3"})
        assert proc.returncode == 7 and "push is reading packs" in proc.stderr
        with pack_guard(ws.layout.pack_lock, exclusive=False):  # two pushes at once are fine
            pass
    assert run_ws(ws.root, "gc").returncode == 0
