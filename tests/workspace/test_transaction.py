"""with ws.transaction(msg) as t: ... lands whole or not at all."""

from __future__ import annotations

import pytest

from tests.conftest import write
from workspace.errors import PathOutsideWorkspace, UncommittedChanges, UnknownRef


def test_transaction_lands_whole(ws, tmp_path):
    write(ws.root, "old/a.txt", "a")
    write(ws.root, "gone.txt", "g")
    ws.commit("base")
    local = tmp_path / "local.bin"
    local.write_bytes(b"from disk")
    with ws.transaction("multi") as t:
        t.put_bytes("new/x.txt", b"x")
        t.put_file("new/y.bin", local)
        t.copy("HEAD", "old", "copied")
        t.delete("gone.txt")
    assert t.commit is not None
    assert [e.path for e in ws.ls()] == ["copied/a.txt", "new/x.txt", "new/y.bin", "old/a.txt"]
    # the working tree follows the commit
    assert (ws.root / "new/y.bin").read_bytes() == b"from disk"
    assert (ws.root / "copied/a.txt").read_text() == "a"
    assert not (ws.root / "gone.txt").exists()
    assert ws.status().clean


def test_exception_discards_everything(ws):
    write(ws.root, "a.txt", "a")
    base = ws.commit("base").commit
    with pytest.raises(RuntimeError):
        with ws.transaction("never") as t:
            t.put_bytes("b.txt", b"b")
            raise RuntimeError("boom")
    assert ws.head()[1] == base.id
    assert not (ws.root / "b.txt").exists()
    assert ws.store.list_temp_files() == []


def test_bad_operations_are_refused(ws):
    write(ws.root, "a.txt", "a")
    ws.commit("base")
    with pytest.raises(PathOutsideWorkspace):
        with ws.transaction("x") as t:
            t.put_bytes("../escape.txt", b"x")
    with pytest.raises(UnknownRef):
        with ws.transaction("x") as t:
            t.delete("missing.txt")
    assert len(ws.log()) == 1


def test_refuses_to_overwrite_dirty_path(ws):
    write(ws.root, "a.txt", "a")
    ws.commit("base")
    write(ws.root, "a.txt", "local edit")
    with pytest.raises(UncommittedChanges):
        with ws.transaction("x") as t:
            t.put_bytes("a.txt", b"from transaction")
    assert (ws.root / "a.txt").read_text() == "local edit"
    assert len(ws.log()) == 1


def test_transaction_on_empty_workspace(ws):
    with ws.transaction("first") as t:
        t.put_bytes("hello.txt", b"hi")
    assert ws.read("HEAD", "hello.txt") == b"hi"
