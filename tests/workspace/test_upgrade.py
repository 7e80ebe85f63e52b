"""A workspace made by an earlier ws (tests/fixtures/legacy_v1.tar.gz) upgrades in place and keeps everything."""

from __future__ import annotations

import json
import sqlite3
import tarfile
from pathlib import Path

import pytest

from catalog.versions import APPLICATION_ID, SCHEMA_VERSION

FIXTURE = Path(__file__).parent.parent / "fixtures" / "legacy_v1.tar.gz"


@pytest.fixture
def legacy(tmp_path):
    """The extracted legacy workspace (its remote re-pointed at the extracted copy) and what it printed then."""
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    root = tmp_path / "proj"
    config = root / ".ws" / "config.toml"
    config.write_text(config.read_text().replace("/tmp/legacy/remote", str(tmp_path / "remote")))
    expected = json.loads((tmp_path / "expected.json").read_text())
    return root, expected


def _counts(root: Path) -> dict:
    conn = sqlite3.connect(root / ".ws" / "catalog.db")
    tables = ("commits", "trees", "files", "chunks", "packs", "refs", "releases", "release_files", "jobs",
              "job_events", "workflows", "remote_releases", "remote_packs", "remote_chunks")
    out = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    conn.close()
    return out


def _json(run_ws, root, *args):
    proc = run_ws(root, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_legacy_workspace_upgrades_and_keeps_every_row(legacy, run_ws):
    root, expected = legacy
    before = _counts(root)
    assert sqlite3.connect(root / ".ws" / "catalog.db").execute("PRAGMA user_version").fetchone()[0] == 1010102
    assert _json(run_ws, root, "log") == expected["log_main"]
    conn = sqlite3.connect(root / ".ws" / "catalog.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()
    after = _counts(root)
    for table, n in before.items():  # history, releases and jobs are all kept (caches may only grow)
        assert after[table] >= n, table
    for table in ("commits", "releases", "release_files", "jobs", "job_events", "workflows", "refs"):
        assert after[table] == before[table], table
    assert _json(run_ws, root, "log", "--ref", "exp") == expected["log_exp"]
    assert _json(run_ws, root, "branch") == expected["branches"]
    assert _json(run_ws, root, "release", "list") == expected["releases"]
    assert _json(run_ws, root, "release", "show", "raw@1.0.0") == expected["release_show"]
    # catalog migration 3 gave every listed job its labels (none, for jobs of that time)
    assert _json(run_ws, root, "jobs") == [{**j, "labels": {}} for j in expected["jobs"]]
    for commit, listing in expected["ls"].items():
        assert _json(run_ws, root, "ls", commit) == listing
    status = _json(run_ws, root, "status")
    expected["status"]["remotes"][0]["url"] = str(root.parent / "remote")
    assert status == expected["status"]
    fsck = run_ws(root, "fsck")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_upgraded_workspace_keeps_working(legacy, run_ws):
    root, _ = legacy
    (root / "data" / "new.csv").write_text("a,b\n1,2\n")
    assert run_ws(root, "commit", "-m", "after the upgrade").returncode == 0
    assert run_ws(root, "release", "create", "raw", "--version", "1.1.0").returncode == 0
    push = run_ws(root, "push", "origin")
    assert push.returncode == 0, push.stderr
    clone = run_ws(root.parent, "clone", str(root.parent / "remote"), "raw@1.1.0", "copy")
    assert clone.returncode == 0, clone.stderr
    assert (root.parent / "copy" / "data" / "new.csv").read_text() == "a,b\n1,2\n"
    assert run_ws(root, "fsck").returncode == 0
