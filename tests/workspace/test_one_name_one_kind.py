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
