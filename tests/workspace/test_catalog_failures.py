"""A catalog that fails: read-only commands skip what they may skip and report everything else.

``ws status`` and ``ws diff`` write caches (stat cache, HEAD's manifest, the
status snapshot). A busy or read-only catalog may make them skip those writes;
a damaged catalog or any other SQLite failure must reach the CLI's error
boundary with its exit code, never be swallowed.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess

import pytest

from tests.conftest import write


@pytest.fixture
def committed(ws):
    """A workspace with one commit, closed so that subprocesses own the catalog."""
    write(ws.root, "data/a.txt", "a\n")
    write(ws.root, "data/b.txt", "b\n")
    ws.commit("one")
    ws.close()
    return ws.root


def _sql(root, *statements) -> None:
    conn = sqlite3.connect(root / ".ws/catalog.db", isolation_level=None)
    try:
        for s in statements:
            conn.execute(s)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
    finally:
        conn.close()


def _corrupt_page_of(root, name: str) -> None:
    """Overwrite the root page of table or index ``name`` with garbage: what a bad disk sector does."""
    db = root / ".ws/catalog.db"
    _sql(root)
    conn = sqlite3.connect(db)
    page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (name,)).fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(db, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(b"\xa5" * size)


def _one_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ws: error: "), proc.stderr
    return lines[0]


def test_status_and_diff_answer_from_a_read_only_catalog(committed, run_ws):
    write(committed, "data/new.txt", "new\n")
    write(committed, "data/a.txt", "changed\n")
    # HEAD's manifest cache is stale: status must rebuild it and cannot store it
    _sql(committed, "UPDATE meta SET value='stale' WHERE key='manifest_commit'")
    db = committed / ".ws/catalog.db"
    proc = subprocess.run(["chattr", "+i", str(db)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot make a file immutable here (chattr +i: {proc.stderr.strip()})")
    try:
        st = run_ws(committed, "status", "--json")
        assert st.returncode == 0, st.stderr
        assert json.loads(st.stdout) == {"branch": "main", "head": json.loads(st.stdout)["head"],
                                         "added": ["data/new.txt"], "modified": ["data/a.txt"], "deleted": []}
        diff = run_ws(committed, "diff", "--stat")
        assert diff.returncode == 0, diff.stderr
        assert "data/new.txt" in diff.stdout and "data/a.txt" in diff.stdout
        commit = run_ws(committed, "commit", "-m", "cannot be recorded")
        assert commit.returncode == 12, commit.stderr
        assert "read-only" in _one_error_line(commit)
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)


def test_status_on_a_damaged_catalog_exits_6(committed, run_ws):
    _corrupt_page_of(committed, "sqlite_autoindex_stat_cache_1")
    write(committed, "data/new.txt", "new\n")  # status will want to cache its hash
    proc = run_ws(committed, "status")
    assert proc.returncode == 6, proc.stderr
    assert "malformed" in _one_error_line(proc)


def test_diff_on_a_damaged_catalog_exits_6(committed, run_ws):
    _corrupt_page_of(committed, "sqlite_autoindex_stat_cache_1")
    write(committed, "data/new.txt", "new\n")
    proc = run_ws(committed, "diff", "--stat")
    assert proc.returncode == 6, proc.stderr
    _one_error_line(proc)


def test_status_reports_a_catalog_that_refuses_writes(committed, run_ws):
    """Any failure other than busy or read-only is an error of the command (exit 10), not skipped."""
    _sql(committed, "CREATE TRIGGER refuse BEFORE INSERT ON stat_cache "
                    "BEGIN SELECT RAISE(ABORT, 'stat cache refused by the test'); END")
    write(committed, "data/new.txt", "new\n")
    proc = run_ws(committed, "status")
    assert proc.returncode == 10, proc.stderr
    assert "refused by the test" in _one_error_line(proc)
