"""A full disk and a read-only catalog: one line and its own exit code, nothing half-written, usable again.

Everything runs the real ``ws`` on a real small tmpfs (``small_disk``): the
disk is filled around a command, the command fails with exit 13 (no space)
or 12 (read-only) and one line, then space comes back (or the mount becomes
writable again), the same command succeeds and ``ws fsck`` is clean.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import one_error_line, write
from workspace.api import Workspace

MB = 1_000_000


def half_written(root: Path) -> list[str]:
    """Unfinished packs and staged working files: what a failed command must not leave behind."""
    packs = sorted((root / ".ws/objects/packs").glob("tmp-*.pack"))
    staged = sorted(p for p in root.rglob(".ws-tmp-*"))
    return [str(p.relative_to(root)) for p in packs + staged]


def log(run_ws, root: Path) -> list[str]:
    proc = run_ws(root, "log", "--json", check=True)
    return [c["message"] for c in json.loads(proc.stdout)]


def new_workspace(disk, run_ws, name: str = "w") -> Path:
    run_ws(disk.path, "init", name, check=True)
    root = disk.path / name
    write(root, "a.txt", "a\n")
    run_ws(root, "commit", "-m", "one", check=True)
    return root


def assert_no_space(proc) -> None:
    assert proc.returncode == 13, (proc.returncode, proc.stderr)
    assert "no space" in one_error_line(proc).lower()


def test_commit_on_a_full_disk_exits_13_and_commits_once_space_is_back(small_disk, run_ws):
    disk = small_disk("8m")
    root = new_workspace(disk, run_ws)
    write(root, "big.bin", os.urandom(3 * MB))
    disk.fill(leave=1 * MB)  # the pack writer meets the full disk
    assert_no_space(run_ws(root, "commit", "-m", "big"))
    assert half_written(root) == []
    disk.free()
    assert log(run_ws, root) == ["one"]
    run_ws(root, "commit", "-m", "big", check=True)
    assert log(run_ws, root) == ["big", "one"]
    run_ws(root, "fsck", check=True)


def test_commit_whose_catalog_transaction_finds_the_disk_full_exits_13(small_disk, run_ws):
    """Thousands of empty files: no pack bytes, but the commit's one transaction needs about 1 MB of WAL."""
    disk = small_disk("8m")
    root = new_workspace(disk, run_ws)
    for i in range(3000):
        write(root, f"d{i % 30:02d}/an-empty-file-with-a-rather-long-name-{i:05d}.txt", b"")
    disk.fill(leave=256 * 1024)  # room for SQLite's shared-memory file, not for the transaction
    assert_no_space(run_ws(root, "commit", "-m", "many"))
    assert half_written(root) == []
    disk.free()
    assert log(run_ws, root) == ["one"]
    run_ws(root, "commit", "-m", "many", check=True)
    assert log(run_ws, root) == ["many", "one"]
    run_ws(root, "fsck", check=True)


def test_status_on_a_full_disk_is_one_line_or_an_answer(small_disk, run_ws):
    disk = small_disk("8m")
    root = new_workspace(disk, run_ws)
    write(root, "b.txt", "b\n")
    disk.fill(leave=0)  # not even SQLite's 32 KiB shared-memory file fits
    assert_no_space(run_ws(root, "status"))
    disk.fill(leave=64 * 1024)  # the shared-memory file fits: status answers (its cache writes may be skipped)
    proc = run_ws(root, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["added"] == ["b.txt"]


# -- pull and clone -------------------------------------------------------------------------
@pytest.fixture
def remote(tmp_path):
    """A folder remote (on the ordinary disk) with ds@1.0.0 (small) and ds@2.0.0 (adds 2 MB)."""
    src = Workspace.init(tmp_path / "src")
    try:
        write(src.root, "small.txt", "small\n")
        src.commit("small")
        src.releases.create("ds", version="1.0.0")
        write(src.root, "big.bin", os.urandom(2 * MB))
        src.commit("big")
        src.releases.create("ds", version="2.0.0")
        src.add_remote("origin", str(tmp_path / "remote"))
        src.push()
    finally:
        src.close()
    return tmp_path / "remote"


@pytest.mark.parametrize("leave", [1 * MB, 3 * MB], ids=["while-downloading", "while-writing-files"])
def test_pull_on_a_full_disk_exits_13_and_pulls_once_space_is_back(small_disk, run_ws, remote, leave):
    disk = small_disk("8m")
    run_ws(disk.path, "clone", remote, "ds@1.0.0", "w", check=True)
    root = disk.path / "w"
    disk.fill(leave=leave)
    assert_no_space(run_ws(root, "pull", "ds@2.0.0"))
    assert half_written(root) == []
    assert not (root / "big.bin").exists()
    disk.free()
    assert log(run_ws, root) == ["pull ds@1.0.0 from origin"]
    run_ws(root, "pull", "ds@2.0.0", check=True)
    assert len((root / "big.bin").read_bytes()) == 2 * MB
    run_ws(root, "fsck", check=True)
    assert json.loads(run_ws(root, "status", "--json", check=True).stdout)["modified"] == []


def test_clone_on_a_full_disk_exits_13_leaves_nothing_and_clones_once_space_is_back(small_disk, run_ws, remote):
    disk = small_disk("8m")
    disk.fill(leave=1 * MB)
    assert_no_space(run_ws(disk.path, "clone", remote, "ds@2.0.0", "c"))
    assert not (disk.path / "c").exists()
    disk.free()
    run_ws(disk.path, "clone", remote, "ds@2.0.0", "c", check=True)
    run_ws(disk.path / "c", "fsck", check=True)


# -- read-only catalogs -------------------------------------------------------------------------
def test_a_read_only_mount_answers_reads_and_refuses_writes_with_exit_12(small_disk, run_ws):
    """No -wal or -shm file (every ws closed cleanly): SQLite could not open the catalog at all."""
    disk = small_disk("8m")
    root = new_workspace(disk, run_ws)
    write(root, "a.txt", "changed\n")
    assert not (root / ".ws/catalog.db-shm").exists()
    disk.remount(read_only=True)
    try:
        st = run_ws(root, "status", "--json")
        assert st.returncode == 0, st.stderr
        assert json.loads(st.stdout)["modified"] == ["a.txt"]
        assert log(run_ws, root) == ["one"]
        for args in (["commit", "-m", "two"], ["branch", "other"], ["release", "create", "ds", "--version", "1.0.0"]):
            proc = run_ws(root, *args)
            assert proc.returncode == 12, (args, proc.stderr)
            assert "read-only" in one_error_line(proc)
    finally:
        disk.remount(read_only=False)
    run_ws(root, "commit", "-m", "two", check=True)
    run_ws(root, "fsck", check=True)


def test_a_read_only_mount_reads_a_write_ahead_log_left_by_a_killed_commit(small_disk, run_ws):
    """The last commit lives only in catalog.db-wal: it must be read, not skipped (immutable=1 would)."""
    disk = small_disk("8m")
    root = new_workspace(disk, run_ws)
    write(root, "b.txt", "b\n")
    proc = run_ws(root, "commit", "-m", "two", env={"WS_CRASH_AT": "commit:recorded"})
    assert proc.returncode == -9
    assert (root / ".ws/catalog.db-wal").stat().st_size > 0
    disk.remount(read_only=True)
    try:
        assert log(run_ws, root) == ["two", "one"]
    finally:
        disk.remount(read_only=False)
    (root / ".ws/catalog.db-shm").unlink()  # the WAL cannot be read on a read-only mount without it
    disk.remount(read_only=True)
    try:
        proc = run_ws(root, "log")
        assert proc.returncode == 12, proc.stderr
        assert "catalog.db-wal" in one_error_line(proc)
    finally:
        disk.remount(read_only=False)
    assert log(run_ws, root) == ["two", "one"]
    run_ws(root, "fsck", check=True)


@pytest.fixture
def immutable_catalog(tmp_path, run_ws):
    """A workspace with two commits whose catalog file is immutable (chattr +i) during the test."""
    root = tmp_path / "w"
    run_ws(tmp_path, "init", "w", check=True)
    write(root, "a.txt", "one\n")
    run_ws(root, "commit", "-m", "one", check=True)
    write(root, "a.txt", "two\n")
    run_ws(root, "commit", "-m", "two", check=True)
    db = root / ".ws/catalog.db"
    proc = subprocess.run(["chattr", "+i", str(db)], capture_output=True, text=True)
    if proc.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"chattr +i failed: {proc.stderr.strip()}")
        pytest.skip(f"cannot make a file immutable here (chattr +i: {proc.stderr.strip()})")
    yield root
    subprocess.run(["chattr", "-i", str(db)], check=True)


@pytest.mark.parametrize("args", [["checkout", "HEAD~1"], ["restore", "a.txt"]])
def test_commands_that_move_the_tree_leave_it_alone_when_the_catalog_is_immutable(immutable_catalog, run_ws,
                                                                                  args):
    root = immutable_catalog
    if args[0] == "restore":
        write(root, "a.txt", "local change\n")
    before = (root / "a.txt").read_bytes()
    proc = run_ws(root, *args)
    assert proc.returncode == 12, proc.stderr
    assert "read-only" in one_error_line(proc)
    assert (root / "a.txt").read_bytes() == before
    assert half_written(root) == []


def test_a_catalog_whose_commit_fails_for_space_rolls_back_and_says_so(small_disk):
    """The failing COMMIT's error is the one reported (not 'cannot rollback'), and the catalog goes on."""
    from catalog.db import Catalog
    from catalog.errors import CatalogFull

    disk = small_disk("8m")
    cat = Catalog(disk.path / "c.db")
    cat.ensure_schema(create=True)
    cat.query("SELECT 1")  # the -wal and -shm files exist before the disk fills
    disk.fill(leave=256 * 1024)
    with pytest.raises(CatalogFull, match="full"):
        with cat.write() as conn:  # fits SQLite's page cache: written at COMMIT
            conn.execute("INSERT INTO meta (key, value) VALUES ('big', ?)", ("x" * 1_000_000,))
    assert not cat.conn.in_transaction
    disk.free()
    with cat.write() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('small', 'y')")
    assert cat.query("SELECT key FROM meta WHERE key IN ('big', 'small')") == [("small",)]
    cat.close()
    assert sqlite3.connect(disk.path / "c.db").execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_init_on_a_full_disk_exits_13_and_leaves_no_half_made_workspace(small_disk, run_ws):
    disk = small_disk("8m")
    (disk.path / "w").mkdir()
    disk.fill(leave=0)
    assert_no_space(run_ws(disk.path, "init", "w"))
    assert list((disk.path / "w").iterdir()) == []
    disk.free()
    run_ws(disk.path, "init", "w", check=True)
    run_ws(disk.path / "w", "fsck", check=True)


def test_checkout_on_a_full_disk_exits_13_and_finishes_once_space_is_back(small_disk, run_ws):
    """Files are written one by one: what a full disk interrupted is finished by the same checkout, no --force."""
    disk = small_disk("16m")
    run_ws(disk.path, "init", "w", check=True)
    root = disk.path / "w"
    for i in range(3):
        write(root, f"s{i}.txt", f"small {i}\n")
    write(root, "gone.txt", "only in the first commit\n")
    run_ws(root, "commit", "-m", "small", check=True)
    (root / "gone.txt").unlink()
    for i in range(3):
        write(root, f"s{i}.txt", os.urandom(MB + MB // 2))
    run_ws(root, "commit", "-m", "big", check=True)
    run_ws(root, "checkout", "HEAD~1", check=True)
    disk.fill(leave=2 * MB)  # room for the first big file, not for the second
    assert_no_space(run_ws(root, "checkout", "main"))
    assert half_written(root) == []
    disk.free()
    run_ws(root, "checkout", "main", check=True)
    st = json.loads(run_ws(root, "status", "--json", check=True).stdout)
    assert (st["branch"], st["added"], st["modified"], st["deleted"]) == ("main", [], [], [])
    assert not (root / "gone.txt").exists()
    run_ws(root, "fsck", check=True)
