"""A damaged or missing catalog is never re-initialised: every command stops with exit 6 and the way out."""

from __future__ import annotations

import os
import sqlite3

import pytest

from tests.conftest import write

COMMANDS = [
    ("status",), ("status", "--json"), ("log",), ("commit", "-m", "x"), ("gc",), ("fsck",), ("jobs", "--json"),
    ("jobs",), ("release", "list"), ("ls",), ("remote", "list"), ("checkout", "main"),
]


@pytest.fixture
def damaged(tmp_path, run_ws):
    """A workspace with two commits; the test then damages its catalog."""
    root = tmp_path / "proj"
    run_ws(tmp_path, "init", "proj", check=True)
    write(root, "data/a.txt", "a" * 1000)
    run_ws(root, "commit", "-m", "one", check=True)
    write(root, "data/b.txt", os.urandom(300_000))
    run_ws(root, "commit", "-m", "two", check=True)
    return root


def _packs(root):
    return sorted(p.name for p in (root / ".ws" / "objects" / "packs").rglob("*.pack"))


def _damage(root, how: str) -> None:
    db = root / ".ws" / "catalog.db"
    if how == "empty":
        db.write_bytes(b"")
    elif how == "truncated":
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        data = db.read_bytes()
        assert len(data) > 8192
        db.write_bytes(data[:4096])
    elif how == "foreign":
        db.unlink()
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE notes (x TEXT)")
        conn.commit()
        conn.close()
    elif how == "garbage":
        db.write_bytes(b"not a database at all\n" * 500)
    elif how == "deleted":
        db.unlink()
    for leftover in ("catalog.db-wal", "catalog.db-shm"):
        (root / ".ws" / leftover).unlink(missing_ok=True)


@pytest.mark.parametrize("how", ["empty", "truncated", "foreign", "garbage", "deleted"])
def test_every_command_refuses_a_damaged_catalog(damaged, run_ws, how):
    packs = _packs(damaged)
    _damage(damaged, how)
    db = damaged / ".ws" / "catalog.db"
    before = db.read_bytes() if db.exists() else None
    for args in COMMANDS:
        proc = run_ws(damaged, *args)
        assert proc.returncode == 6, (args, proc.returncode, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ws: error: "), (args, proc.stderr)
        assert "ws fsck --rebuild-catalog" in lines[0], (args, lines[0])
    assert (db.read_bytes() if db.exists() else None) == before  # never re-initialised
    assert _packs(damaged) == packs  # and gc deleted nothing


@pytest.mark.parametrize("how", ["empty", "deleted"])
def test_init_over_a_damaged_workspace_gives_the_way_out(damaged, run_ws, how):
    _damage(damaged, how)
    proc = run_ws(damaged, "init", ".")
    assert proc.returncode == 8
    assert "already a ws workspace" in proc.stderr and "ws fsck --rebuild-catalog" in proc.stderr
    assert not (damaged / ".ws" / "catalog.db").exists() or how != "deleted"


def test_a_subfolder_of_a_workspace_without_catalog_is_not_taken_for_no_workspace(damaged, run_ws):
    _damage(damaged, "deleted")
    proc = run_ws(damaged / "data", "status")
    assert proc.returncode == 6 and "is missing" in proc.stderr
