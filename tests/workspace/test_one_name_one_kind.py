"""One name, one kind: no commit may hold a path that is both a file and the folder of another path.

Such a tree could never be checked out (restore crashed on one a hostile
record brought in). Remote records are refused before anything is fetched
(tests/sync/test_hostile_remote.py); the history layer refuses such a tree
whatever builds it, so a transaction fails before its commit and leaves the
working tree as it was.
"""

from __future__ import annotations

import os

import pytest


def test_a_transaction_cannot_make_one_name_both_a_file_and_a_folder(ws):
    from workspace.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="'a' cannot be both a file and a folder"):
        with ws.transaction("both") as t:
            t.put_bytes("a", b"1")
            t.put_bytes("a/b", b"2")
    assert ws.head()[1] is None  # no commit recorded
    assert sorted(os.listdir(ws.root)) == [".ws"]  # and the tree as it was: nothing staged is left


def test_pull_force_replaces_a_tracked_folder_by_the_file_a_release_has(tmp_path):
    from tests.conftest import write
    from workspace.api import Workspace
    from workspace.errors import UncommittedChanges

    src = Workspace.init(tmp_path / "src")
    write(src.root, "a", "file a")
    src.commit("a")
    src.releases.create("ds", version="1.0.0")
    src.add_remote("origin", str(tmp_path / "remote"))
    src.push()
    t = Workspace.init(tmp_path / "t")
    try:
        write(t.root, "a/b", "b")
        t.commit("a is a folder here")
        t.add_remote("origin", str(tmp_path / "remote"))
        with pytest.raises(UncommittedChanges):
            t.pull("origin", "ds")
        t.pull("origin", "ds", force=True)
        assert [e.path for e in t.ls()] == ["a"] and (t.root / "a").read_text() == "file a"
        assert t.status().clean
        (t.root / "a").unlink()
        t.restore([str(t.root / "a")])
        assert (t.root / "a").read_text() == "file a"
        assert [e.path for e in t.ls("HEAD~1")] == ["a/b"]  # history keeps the folder
    finally:
        t.close()
        src.close()
