"""History lives in .ws/ as objects and small files; the catalog is an index that can be rebuilt from them."""

from __future__ import annotations

import json
import os
import sqlite3
import tarfile
from pathlib import Path

import pytest

from tests.conftest import write

FIXTURE = Path(__file__).parent.parent / "fixtures" / "legacy_v1.tar.gz"


def _json(run_ws, root, *args):
    proc = run_ws(root, *args, "--json")
    assert proc.returncode == 0, (args, proc.stderr)
    return json.loads(proc.stdout)


def _snapshot(run_ws, root) -> dict:
    """What a user sees of history, releases and jobs (the things a rebuild must give back)."""
    snap = {"branches": _json(run_ws, root, "branch"), "releases": _json(run_ws, root, "release", "list")}
    commits: set[str] = set()
    for name in (b["name"] for b in snap["branches"]):
        snap[f"log {name}"] = _json(run_ws, root, "log", "--ref", name)
        commits |= {c["id"] for c in snap[f"log {name}"]}
    snap["ls"] = {c: _json(run_ws, root, "ls", c) for c in sorted(commits)}
    snap["jobs"] = [{k: j[k] for k in ("id", "name", "state", "params", "output_commit")}
                    for j in _json(run_ws, root, "jobs")]
    return snap


def _drop_catalog(root: Path, how: str = "delete") -> None:
    db = root / ".ws" / "catalog.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    if how == "delete":
        db.unlink()
    else:
        db.write_bytes(b"")


@pytest.fixture
def rich(tmp_path, run_ws):
    """A workspace with two branches, a multi-chunk file, an empty file, an executable, a release and jobs."""
    run_ws(tmp_path, "init", "p", check=True)
    root = tmp_path / "p"
    write(root, "data/big.bin", os.urandom(900_000))
    write(root, "data/empty.txt", "")
    (write(root, "bin/run.sh", "#!/bin/sh\necho hi\n")).chmod(0o755)
    run_ws(root, "commit", "-m", "first", check=True)
    run_ws(root, "switch", "-c", "exp", check=True)
    write(root, "notes/exp.txt", "only on exp")
    run_ws(root, "commit", "-m", "on exp", check=True)
    run_ws(root, "switch", "main", check=True)
    write(root, "jobs/count.yaml", 'name: count\ncommand: "mkdir -p out && wc -c data/big.bin > out/{x}.txt"\n'
                                   'outputs: ["out/{x}.txt"]\nparams: {x: [a, b]}\n')
    run_ws(root, "commit", "-m", "spec", check=True)
    run_ws(root, "run", "count", "--wait", check=True)
    run_ws(root, "release", "create", "ds", "--version", "1.0.0", check=True)
    return root


@pytest.mark.parametrize("how", ["delete", "empty"])
def test_a_lost_catalog_is_rebuilt_from_ws_alone(rich, run_ws, how):
    before = _snapshot(run_ws, rich)
    _drop_catalog(rich, how)
    assert run_ws(rich, "log").returncode == 6
    proc = run_ws(rich, "fsck", "--rebuild-catalog")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rebuilt the catalog" in proc.stdout and proc.stdout.strip().endswith("ok")
    aside = list((rich / ".ws").glob("catalog.db.broken-*"))
    assert bool(aside) == (how == "empty")  # the old file is kept aside, never overwritten
    after = _snapshot(run_ws, rich)
    assert after == before
    assert run_ws(rich, "status", "--json", check=True) and _json(run_ws, rich, "status")["added"] == []


def test_a_crash_after_the_ref_moved_is_caught_up(rich, run_ws):
    write(rich, "data/late.txt", "written just before the crash")
    proc = run_ws(rich, "commit", "-m", "crashed", env={"WS_CRASH_AT": "commit:ref-written"})
    assert proc.returncode == -9
    log = _json(run_ws, rich, "log")
    assert log[0]["message"] == "crashed"  # the ref file is the truth; the catalog caught up
    assert _json(run_ws, rich, "status")["added"] == []
    assert run_ws(rich, "fsck").returncode == 0
    write(rich, "data/next.txt", "and life goes on")
    run_ws(rich, "commit", "-m", "next", check=True)
    assert [c["message"] for c in _json(run_ws, rich, "log")][:2] == ["next", "crashed"]


def test_a_crash_before_the_ref_moved_loses_only_that_commit_and_gc_reclaims_it(rich, run_ws):
    before = _json(run_ws, rich, "log")
    write(rich, "data/lost.bin", os.urandom(50_000))
    assert run_ws(rich, "commit", "-m", "lost", env={"WS_CRASH_AT": "commit:sealed"}).returncode == -9
    assert _json(run_ws, rich, "log") == before
    run_ws(rich, "gc", check=True)
    assert run_ws(rich, "fsck").returncode == 0
    _drop_catalog(rich)
    run_ws(rich, "fsck", "--rebuild-catalog", check=True)
    assert _json(run_ws, rich, "log") == before  # gc kept every history object


def test_refs_are_files_and_branch_names_cannot_collide(rich, run_ws):
    heads = rich / ".ws" / "refs" / "heads"
    assert (rich / ".ws" / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert sorted(p.name for p in heads.iterdir()) == ["exp", "main"]
    run_ws(rich, "branch", "team/alice", check=True)
    assert (heads / "team" / "alice").read_text().strip() == _json(run_ws, rich, "log")[0]["id"]
    proc = run_ws(rich, "branch", "team")
    assert proc.returncode == 2 and "team/" in proc.stderr
    run_ws(rich, "branch", "-d", "team/alice", check=True)
    assert not (heads / "team").exists()
    head = _json(run_ws, rich, "log")[1]["id"]
    run_ws(rich, "checkout", head, check=True)
    assert (rich / ".ws" / "HEAD").read_text().strip() == head


def test_a_legacy_workspace_upgrades_to_objects_and_can_then_be_rebuilt(tmp_path, run_ws):
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    root = tmp_path / "proj"
    config = root / ".ws" / "config.toml"
    config.write_text(config.read_text().replace("/tmp/legacy/remote", str(tmp_path / "remote")))
    expected = json.loads((tmp_path / "expected.json").read_text())
    assert not (root / ".ws" / "HEAD").exists()
    assert _json(run_ws, root, "log") == expected["log_main"]  # opening upgrades it
    assert (root / ".ws" / "HEAD").exists() and (root / ".ws" / "refs" / "heads" / "exp").exists()
    assert (root / ".ws" / "releases" / "raw" / "1.0.0.json").exists()
    assert 'format = 2' in config.read_text()
    _drop_catalog(root)
    run_ws(root, "fsck", "--rebuild-catalog", check=True)
    assert _json(run_ws, root, "log") == expected["log_main"]
    assert _json(run_ws, root, "log", "--ref", "exp") == expected["log_exp"]
    assert _json(run_ws, root, "release", "list") == expected["releases"]
    for commit, listing in expected["ls"].items():
        assert _json(run_ws, root, "ls", commit) == listing
    jobs = _json(run_ws, root, "jobs")
    assert [(j["id"], j["state"], j["output_commit"]) for j in jobs] == \
        [(j["id"], j["state"], j["output_commit"]) for j in expected["jobs"]]
    assert run_ws(root, "fsck").returncode == 0


def test_history_objects_never_reach_a_remote(rich, run_ws, tmp_path):
    run_ws(rich, "remote", "add", "origin", str(tmp_path / "remote"), check=True)
    run_ws(rich, "push", "origin", check=True)
    from workspace.objects import packs

    for pack in (tmp_path / "remote" / "packs").rglob("*"):
        if pack.is_file():
            assert all(e.kind == packs.KIND_CHUNK for e in packs.read_index(str(pack)))
    # and the remote's indexes say the same
    for index in (tmp_path / "remote" / "index").iterdir():
        raw = index.read_bytes()
        assert all(raw[i + packs.INDEX.size - 1] >> 4 == 0 for i in range(0, len(raw), packs.INDEX.size))


def test_catalog_rows_match_what_the_objects_hold(rich):
    """Every commit, tree and multi-chunk file of the catalog has its object in a local pack."""
    from workspace.objects import history as ho

    db = sqlite3.connect(rich / ".ws" / "catalog.db")
    stored = {r[0] for r in db.execute("SELECT id FROM chunks WHERE kind != 0")}
    assert {r[0] for r in db.execute("SELECT id FROM commits")} <= stored
    assert {r[0] for r in db.execute("SELECT id FROM trees")} <= stored
    for fid, size, blob in db.execute("SELECT id, size, chunk_ids FROM files"):
        chunks = [blob[i:i + 32].hex() for i in range(0, len(blob), 32)]
        if ho.needs_file_object(fid, chunks):
            assert ho.object_id(ho.encode_file(ho.FileObject(fid, size, chunks))) in stored
