"""Refs, branches, checkout, switch, restore and diff."""

from __future__ import annotations

import os

import pytest

from tests.conftest import write
from workspace.errors import InvalidArgument, UncommittedChanges, UnknownRef


@pytest.fixture
def two_commits(ws):
    write(ws.root, "a.txt", "v1\n")
    write(ws.root, "old.txt", "old")
    c1 = ws.commit("one").commit
    write(ws.root, "a.txt", "v2\n")
    os.remove(ws.root / "old.txt")
    write(ws.root, "dir/new.txt", "new")
    c2 = ws.commit("two").commit
    return ws, c1, c2


def test_checkout_commit_detaches_and_restores_files(two_commits):
    ws, c1, c2 = two_commits
    ws.checkout(c1.id[:10])
    assert ws.head() == (None, c1.id)
    assert (ws.root / "a.txt").read_text() == "v1\n"
    assert (ws.root / "old.txt").exists()
    assert not (ws.root / "dir").exists()  # emptied folders go away
    assert ws.status().clean
    ws.checkout("main")
    assert ws.head() == ("main", c2.id)
    assert (ws.root / "dir/new.txt").read_text() == "new"
    assert not (ws.root / "old.txt").exists()


def test_checkout_refuses_to_overwrite_changes(two_commits):
    ws, c1, _ = two_commits
    write(ws.root, "a.txt", "local edit\n")
    with pytest.raises(UncommittedChanges, match="a.txt"):
        ws.checkout("HEAD~1")
    assert (ws.root / "a.txt").read_text() == "local edit\n"
    ws.checkout("HEAD~1", force=True)
    assert (ws.root / "a.txt").read_text() == "v1\n"


def test_checkout_refuses_to_clobber_untracked(two_commits):
    ws, c1, _ = two_commits
    write(ws.root, "old.txt", "my untracked notes")
    with pytest.raises(UncommittedChanges):
        ws.checkout(c1.id)
    assert (ws.root / "old.txt").read_text() == "my untracked notes"


def test_local_change_to_unaffected_file_is_carried(two_commits):
    ws, c1, _ = two_commits
    write(ws.root, "dir/new.txt", "edited")
    ws.create_branch("other")
    ws.switch("other")
    assert (ws.root / "dir/new.txt").read_text() == "edited"


def test_branches_and_switch(two_commits):
    ws, c1, c2 = two_commits
    ws.create_branch("exp", "HEAD~1")
    assert ("exp", c1.id, False) in ws.branches()
    ws.switch("exp")
    assert ws.head() == ("exp", c1.id)
    write(ws.root, "e.txt", "e")
    c3 = ws.commit("on exp").commit
    assert c3.branch == "exp" and c3.parents == [c1.id]
    ws.switch("main")
    assert not (ws.root / "e.txt").exists()
    with pytest.raises(UnknownRef):
        ws.switch("nope")
    with pytest.raises(InvalidArgument):
        ws.create_branch("exp")
    with pytest.raises(InvalidArgument):
        ws.create_branch("bad..name")
    with pytest.raises(InvalidArgument):
        ws.delete_branch("main")
    ws.delete_branch("exp")
    assert [b[0] for b in ws.branches()] == ["main"]


def test_switch_create(ws):
    write(ws.root, "a", "1")
    ws.commit("one")
    ws.switch("feature", create=True)
    assert ws.head()[0] == "feature"


def test_restore_from_source(two_commits):
    ws, c1, _ = two_commits
    write(ws.root, "a.txt", "scribble")
    assert ws.restore(["a.txt"], cwd=ws.root) == ["a.txt"]
    assert (ws.root / "a.txt").read_text() == "v2\n"
    ws.restore(["a.txt"], source="HEAD~1", cwd=ws.root)
    assert (ws.root / "a.txt").read_text() == "v1\n"
    assert ws.status().modified == ["a.txt"]
    with pytest.raises(UnknownRef):
        ws.restore(["nothing"], cwd=ws.root)


def test_diff_between_commits_and_worktree(two_commits):
    ws, c1, c2 = two_commits
    d = ws.diff(c1.id, c2.id)
    assert [(e.path, e.change) for e in d.entries] == [
        ("a.txt", "modified"), ("dir/new.txt", "added"), ("old.txt", "removed")]
    write(ws.root, "a.txt", "v3\n")
    d = ws.diff()
    assert [(e.path, e.change) for e in d.entries] == [("a.txt", "modified")]
    from workspace.tree.diff import unified

    text = "".join(unified(ws, d, d.entries[0]))
    assert "-v2" in text and "+v3" in text


def test_diff_binary_has_no_text(ws):
    write(ws.root, "b.bin", b"\0\1\2")
    ws.commit("one")
    write(ws.root, "b.bin", b"\0\1\3")
    from workspace.tree.diff import unified

    d = ws.diff()
    assert unified(ws, d, d.entries[0]) is None


def test_unknown_refs(ws):
    with pytest.raises(UnknownRef):
        ws.resolve("HEAD")
    write(ws.root, "a", "1")
    ws.commit("x")
    for bad in ("nope", "HEAD~3", "zzzz", "HEAD^^"):
        with pytest.raises(UnknownRef):
            ws.resolve(bad)


def test_checkout_refuses_folder_in_the_way_before_touching_anything(ws):
    write(ws.root, "a", "file")
    write(ws.root, "keep.txt", "1")
    ws.commit("a is a file")
    ws.create_branch("f")
    os.remove(ws.root / "a")
    write(ws.root, "a/b", "now a folder")
    write(ws.root, "keep.txt", "2")
    ws.commit("a is a folder")
    write(ws.root, "a/untracked.txt", "mine")
    with pytest.raises(UncommittedChanges, match="untracked.txt"):
        ws.checkout("f")
    assert (ws.root / "a/b").read_text() == "now a folder"
    assert (ws.root / "keep.txt").read_text() == "2"
    os.remove(ws.root / "a/untracked.txt")
    ws.checkout("f")
    assert (ws.root / "a").read_text() == "file"


def test_odd_names_and_old_files(ws):
    write(ws.root, "back\\slash.txt", "b")
    write(ws.root, "colon:name.txt", "c")
    old = write(ws.root, "old.txt", "o")
    os.utime(old, (-315619200, -315619200))  # 1960
    os.close(os.open(os.path.join(os.fsencode(ws.root), b"caf\xe9.txt"), os.O_CREAT | os.O_WRONLY))
    st = ws.status()
    assert st.added == ["back\\slash.txt", "colon:name.txt", "old.txt"]  # non-UTF-8 names are skipped
    c1 = ws.commit("odd").commit
    write(ws.root, "colon:name.txt", "changed")
    ws.commit("two")
    ws.checkout(c1.id)
    assert (ws.root / "back\\slash.txt").read_text() == "b"
    assert (ws.root / "colon:name.txt").read_text() == "c"
    assert ws.status().clean


def test_ignored_tracked_file_is_kept_by_commit_and_diff(ws):
    write(ws.root, "data/labels.csv", "1")
    ws.commit("one")
    write(ws.root, ".wsignore", "*.csv\n")
    assert [(e.path, e.change) for e in ws.diff().entries] == [(".wsignore", "added")]
    res = ws.commit("ignore csv from now on")
    assert res.deleted == 0 and [e.path for e in ws.ls()] == [".wsignore", "data/labels.csv"]


def test_mode_change_shows_in_diff(ws):
    p = write(ws.root, "run.sh", "echo")
    ws.commit("one")
    os.chmod(p, 0o755)
    assert [(e.path, e.change) for e in ws.diff().entries] == [("run.sh", "modified")]
    ws.commit("exec")
    assert [e.path for e in ws.diff("HEAD~1", "HEAD").entries] == ["run.sh"]
