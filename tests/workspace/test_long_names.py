"""A name as long as a file system allows (255 bytes) goes through every write: checkout, restore,
transactions, pull. Temporary names ('.ws-tmp-<pid>-<thread>-<name>') are shortened to fit, so a name
that a record or a commit may hold never ends in 'File name too long'."""

from __future__ import annotations

import os

from tests.conftest import write
from workspace.api import Workspace

LONG = "é" * 100 + "x" * 55  # 255 bytes in UTF-8
LONG2 = "é" * 100 + "x" * 54 + "y"  # the same first 254 bytes: their temporary names must still differ


def test_a_255_byte_name_is_restored_checked_out_deleted_and_pulled(ws, tmp_path):
    assert len(LONG.encode()) == 255
    write(ws.root, f"d/{LONG}", "one")
    write(ws.root, f"d/{LONG2}", "two")
    ws.commit("long")
    first = ws.head()[1]
    os.unlink(ws.root / "d" / LONG)
    ws.restore([str(ws.root / "d" / LONG)])
    assert (ws.root / "d" / LONG).read_text() == "one"
    with ws.transaction("drop one") as t:
        t.delete(f"d/{LONG}")
        t.put_bytes(f"d/{LONG2}", b"three")
    assert not (ws.root / "d" / LONG).exists() and (ws.root / "d" / LONG2).read_text() == "three"
    ws.checkout(first)
    assert (ws.root / "d" / LONG).read_text() == "one" and (ws.root / "d" / LONG2).read_text() == "two"
    ws.checkout("main")
    assert sorted(os.listdir(ws.root / "d")) == [LONG2]
    ws.releases.create("ds", version="1.0.0")
    ws.add_remote("origin", str(tmp_path / "remote"))
    ws.push()
    copy = Workspace.clone(str(tmp_path / "remote"), "ds", tmp_path / "copy")
    try:
        assert (copy.root / "d" / LONG2).read_text() == "three" and copy.status().clean
    finally:
        copy.close()
