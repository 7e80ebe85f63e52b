"""``ws gc --prune[=AGE]`` and ``ws squash``: space that can be reclaimed, never what a branch, release or job needs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import write


def _json(run_ws, root, *args):
    proc = run_ws(root, *args, "--json")
    assert proc.returncode == 0, (args, proc.stderr)
    return json.loads(proc.stdout)


def _commit(run_ws, root, rel: str, size: int, message: str) -> str:
    write(root, rel, os.urandom(size))
    run_ws(root, "commit", "-m", message, check=True)
    return _json(run_ws, root, "log")[0]["id"]


def _readable(root: Path, commit: str, path: str) -> bool:
    """``ws cat COMMIT:PATH`` succeeds (binary output, so not through run_ws's text mode)."""
    from tests.conftest import ws_exe

    proc = subprocess.run([*ws_exe(), "cat", f"{commit}:{path}"], cwd=root, capture_output=True)
    return proc.returncode == 0 and len(proc.stdout) > 0


def _exists(run_ws, root, commit: str) -> bool:
    return run_ws(root, "show", commit).returncode == 0


def _rebuild(run_ws, root: Path) -> None:
    db = root / ".ws" / "catalog.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.unlink()
    run_ws(root, "fsck", "--rebuild-catalog", check=True)


def _store_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / ".ws" / "objects").rglob("*.pack"))


@pytest.fixture
def proj(tmp_path, run_ws):
    run_ws(tmp_path, "init", "p", check=True)
    root = tmp_path / "p"
    _commit(run_ws, root, "data/base.bin", 50_000, "base")
    return root


def test_prune_drops_a_deleted_branch_and_stays_dropped(proj, run_ws):
    run_ws(proj, "switch", "-c", "exp", check=True)
    gone = _commit(run_ws, proj, "data/exp.bin", 600_000, "on exp")
    run_ws(proj, "switch", "main", check=True)
    run_ws(proj, "branch", "-d", "exp", check=True)
    assert _json(run_ws, proj, "gc")["bytes_freed"] == 0  # plain gc keeps every commit
    young = _json(run_ws, proj, "gc", "--prune", "--dry-run")  # default age 2.weeks: too young to go
    assert young["commits_dropped"] == 0 and young["dry_run"] is True
    before = _store_bytes(proj)
    plan = _json(run_ws, proj, "gc", "--prune=now", "--dry-run")
    assert plan["commits_dropped"] == 1 and plan["files_dropped"] == 1 and plan["bytes_freed"] >= 600_000
    assert _store_bytes(proj) == before and _exists(run_ws, proj, gone)  # a dry run changes nothing
    human = run_ws(proj, "gc", "--prune=now", "--dry-run", check=True).stdout
    assert "would drop 1 commit(s)" in human and "dry run" in human
    done = _json(run_ws, proj, "gc", "--prune=now")
    assert done["commits_dropped"] == 1 and done["bytes_freed"] >= 600_000
    assert _store_bytes(proj) <= before - 600_000
    assert not _exists(run_ws, proj, gone)
    assert run_ws(proj, "fsck").returncode == 0
    _rebuild(run_ws, proj)
    assert not _exists(run_ws, proj, gone) and run_ws(proj, "fsck").returncode == 0
    assert [c["message"] for c in _json(run_ws, proj, "log")] == ["base"]


def test_prune_keeps_what_releases_and_jobs_reach(proj, run_ws):
    run_ws(proj, "switch", "-c", "rel", check=True)
    released = _commit(run_ws, proj, "data/r.bin", 300_000, "released")
    run_ws(proj, "release", "create", "ds", "--version", "1.0.0", check=True)
    run_ws(proj, "switch", "-c", "jobs", check=True)
    write(proj, "jobs/mk.yaml", 'name: mk\ncommand: "mkdir -p out && head -c 1000 /dev/urandom > out/{i}.bin"\n'
                                'outputs: ["out/{i}.bin"]\nparams: {i: [a, b]}\n')
    run_ws(proj, "commit", "-m", "spec", check=True)
    # one job after the other: b's output commit is a child of a's
    jobs = {i: _json(run_ws, proj, "run", "mk", "-p", f"i={i}", "--wait")["jobs"][0] for i in "ab"}
    a_out, b_out = jobs["a"]["output_commit"], jobs["b"]["output_commit"]
    assert _json(run_ws, proj, "log")[0]["id"] == b_out and a_out in _ancestry(run_ws, proj, b_out)
    run_ws(proj, "switch", "main", check=True)
    run_ws(proj, "branch", "-d", "rel", check=True)
    run_ws(proj, "branch", "-d", "jobs", check=True)
    assert _json(run_ws, proj, "gc", "--prune=now")["commits_dropped"] == 0
    assert _exists(run_ws, proj, released)  # a release reaches it
    assert _readable(proj, released, "data/r.bin")
    assert _exists(run_ws, proj, a_out) and _exists(run_ws, proj, b_out)  # job records reach them
    # a job deleted keeping its outputs (the default) still keeps them; one deleted without does not
    _json(run_ws, proj, "jobs", "delete", jobs["a"]["id"])
    _json(run_ws, proj, "jobs", "delete", jobs["b"]["id"], "--no-keep-outputs")
    assert _json(run_ws, proj, "gc", "--prune=now")["commits_dropped"] == 1
    assert _exists(run_ws, proj, a_out) and not _exists(run_ws, proj, b_out)
    assert run_ws(proj, "fsck").returncode == 0
    _rebuild(run_ws, proj)
    assert run_ws(proj, "fsck").returncode == 0 and _exists(run_ws, proj, released)
    assert _readable(proj, released, "data/r.bin")
    assert _exists(run_ws, proj, a_out) and not _exists(run_ws, proj, b_out)
    assert _json(run_ws, proj, "gc", "--prune=now")["commits_dropped"] == 0  # the kept ones still kept


def _ancestry(run_ws, root, commit: str) -> set[str]:
    return {c["id"] for c in _json(run_ws, root, "log", "--ref", commit)}


def test_prune_age_parsing(proj, run_ws):
    for bad in ("soon", "2.fortnights", "-3d"):
        proc = run_ws(proj, "gc", f"--prune={bad}")
        assert proc.returncode == 2 and proc.stderr.startswith("ws: error: --prune="), proc.stderr
    for good in ("2.weeks", "3d", "12.hours.ago", "1y", "now", "never", "2026-01-31"):
        assert _json(run_ws, proj, "gc", f"--prune={good}", "--dry-run")["dry_run"] is True


def test_squash_rewrites_old_history_into_one_commit(proj, run_ws):
    for i in range(4):  # each commit replaces the big file: only the newest content is in HEAD
        _commit(run_ws, proj, "data/big.bin", 400_000, f"big {i}")
    old = _json(run_ws, proj, "log")
    head_ls = _json(run_ws, proj, "ls", "HEAD")
    plan = _json(run_ws, proj, "squash", "main", "--keep", "1", "--dry-run")
    assert plan["commits_squashed"] == 4 and plan["commits_kept"] == 1 and plan["dry_run"] is True
    assert plan["bytes_freed"] >= 2 * 400_000  # big 0 and big 1; big 2 is the squash commit's content and plan["commits_dropped"] == 5
    assert _json(run_ws, proj, "log") == old  # nothing changed
    before = _store_bytes(proj)
    res = _json(run_ws, proj, "squash", "main", "--keep", "1")
    assert res["new_tip"] == plan["new_tip"] and res["commits_dropped"] == 5
    log = _json(run_ws, proj, "log")
    assert len(log) == 2 and log[0]["message"] == "big 3" and log[1]["message"].startswith("squashed 4 commits")
    assert _json(run_ws, proj, "ls", "HEAD") == head_ls
    assert _json(run_ws, proj, "status")["modified"] == []
    assert _store_bytes(proj) <= before - 2 * 400_000
    assert run_ws(proj, "fsck").returncode == 0
    _rebuild(run_ws, proj)
    assert [c["id"] for c in _json(run_ws, proj, "log")] == [c["id"] for c in log]
    assert run_ws(proj, "fsck").returncode == 0
    again = _json(run_ws, proj, "squash", "main", "--keep", "1")
    assert again["commits_squashed"] == 0


def test_squash_never_drops_what_a_release_or_another_branch_needs(proj, run_ws):
    first = _commit(run_ws, proj, "data/big.bin", 300_000, "v1")
    run_ws(proj, "release", "create", "ds", "--version", "1.0.0", check=True)
    side = _commit(run_ws, proj, "data/big.bin", 300_000, "v2")
    run_ws(proj, "branch", "side", check=True)
    _commit(run_ws, proj, "data/big.bin", 300_000, "v3")
    res = _json(run_ws, proj, "squash", "main")
    assert res["commits_squashed"] == 4 and len(_json(run_ws, proj, "log")) == 1
    assert _exists(run_ws, proj, first) and _exists(run_ws, proj, side)  # the release's and side's history
    assert _readable(proj, first, "data/big.bin")
    assert run_ws(proj, "fsck").returncode == 0
    unknown = run_ws(proj, "squash", "nope")
    assert unknown.returncode == 4 and unknown.stderr.startswith("ws: error: ")
