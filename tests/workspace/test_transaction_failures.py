"""A transaction whose working-tree writes fail records nothing and leaves the tree as it was.

Never a recorded commit with half-written files: content is staged under
temporary names first, then the commit is recorded, then files are renamed
into place.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import write
from workspace.errors import UncommittedChanges


def _leftovers(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".ws-tmp-*"))


@pytest.fixture
def base(ws):
    write(ws.root, "keep.txt", "keep")
    write(ws.root, "gone.txt", "gone")
    write(ws.root, "locked/old.txt", "old")
    ws.commit("base")
    return ws


@pytest.fixture
def immutable_folder(base):
    """``locked/`` made immutable (chattr +i): no file can be created in it, not even by root."""
    folder = base.root / "locked"
    proc = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot make a folder immutable here (chattr +i: {proc.stderr.strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_write_failing_midway_records_nothing(base, immutable_folder):
    head = base.head()[1]
    with pytest.raises(PermissionError):
        with base.transaction("cannot land") as t:
            t.put_bytes("a.txt", b"written before the failure in the old order")
            t.put_bytes("locked/new.txt", b"cannot be created")
            t.put_bytes("z.txt", b"after")
            t.delete("gone.txt")
    assert base.head()[1] == head and t.commit is None
    assert not (base.root / "a.txt").exists() and not (base.root / "z.txt").exists()
    assert (base.root / "gone.txt").read_text() == "gone"  # put back
    assert _leftovers(base.root) == []
    assert base.status().clean


def test_blocked_destination_records_nothing(base):
    write(base.root, "b/untracked.txt", "mine")  # a folder where the transaction puts a file
    head = base.head()[1]
    with pytest.raises(UncommittedChanges, match="b/untracked.txt"):
        with base.transaction("blocked") as t:
            t.put_bytes("a.txt", b"a")
            t.put_bytes("b", b"a file where a folder is")
            t.put_bytes("c.txt", b"c")
    assert base.head()[1] == head
    assert not (base.root / "a.txt").exists() and not (base.root / "c.txt").exists()
    assert (base.root / "b/untracked.txt").read_text() == "mine"
    assert _leftovers(base.root) == []


def test_untracked_file_in_the_way_of_a_folder_records_nothing(base):
    write(base.root, "d", "an untracked file where a folder must go")
    head = base.head()[1]
    with pytest.raises(UncommittedChanges, match="'d'"):
        with base.transaction("blocked") as t:
            t.put_bytes("d/inner.txt", b"x")
    assert base.head()[1] == head
    assert (base.root / "d").read_text() == "an untracked file where a folder must go"
    assert _leftovers(base.root) == []


def test_file_replaced_by_folder_and_folder_by_file(base):
    with base.transaction("swap kinds") as t:
        t.delete("gone.txt")
        t.put_bytes("gone.txt/inside.txt", b"now a folder")
        t.delete("locked")
        t.put_bytes("locked", b"now a file")
    assert (base.root / "gone.txt/inside.txt").read_bytes() == b"now a folder"
    assert (base.root / "locked").read_bytes() == b"now a file"
    assert sorted(e.path for e in base.ls()) == ["gone.txt/inside.txt", "keep.txt", "locked"]
    assert _leftovers(base.root) == []
    assert base.status().clean


def test_failed_record_leaves_the_tree_as_it_was(base):
    """The catalog refuses the commit (read-only): staged files are dropped, removed ones put back."""
    head = base.head()[1]
    base.close()
    db = base.root / ".ws/catalog.db"
    proc = subprocess.run(["chattr", "+i", str(db)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot make a file immutable here (chattr +i: {proc.stderr.strip()})")
    try:
        from catalog.errors import CatalogReadOnly

        with pytest.raises(CatalogReadOnly):
            with base.transaction("refused") as t:
                t.put_bytes("a.txt", b"a")
                t.delete("gone.txt")
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    assert base.head()[1] == head
    assert not (base.root / "a.txt").exists() and (base.root / "gone.txt").read_text() == "gone"
    assert _leftovers(base.root) == []
    assert os.listdir(base.root / "locked") == ["old.txt"]
