"""init, status, commit, log, show, ls, cat through the Python API on real folders."""

from __future__ import annotations

import os

import pytest

from tests.conftest import write
from workspace.api import Workspace
from workspace.errors import (AlreadyAWorkspace, InvalidArgument, NotAWorkspace, NothingToCommit,
                              PathOutsideWorkspace, UnknownRef)


def test_init_creates_layout(tmp_path):
    w = Workspace.init(tmp_path / "p")
    assert (tmp_path / "p/.ws/catalog.db").is_file()
    assert (tmp_path / "p/.ws/objects/packs").is_dir()
    assert (tmp_path / "p/.ws/config.toml").is_file()
    assert w.head() == ("main", None)


def test_reinit_and_nested_init_are_errors(ws):
    with pytest.raises(AlreadyAWorkspace):
        Workspace.init(ws.root)
    with pytest.raises(AlreadyAWorkspace, match="inside the workspace"):
        Workspace.init(ws.root / "sub")


def test_open_finds_root_from_subfolder(ws):
    (ws.root / "a/b").mkdir(parents=True)
    assert Workspace.open(ws.root / "a/b").root == ws.root


def test_open_outside_workspace(tmp_path):
    with pytest.raises(NotAWorkspace):
        Workspace.open(tmp_path)


def test_status_added_modified_deleted(ws):
    write(ws.root, "a.txt", "a")
    write(ws.root, "d/b.txt", "b")
    assert ws.status().added == ["a.txt", "d/b.txt"]
    ws.commit("first")
    assert ws.status().clean
    write(ws.root, "a.txt", "changed")
    os.remove(ws.root / "d/b.txt")
    write(ws.root, "c.txt", "new")
    st = ws.status()
    assert (st.added, st.modified, st.deleted) == (["c.txt"], ["a.txt"], ["d/b.txt"])
    assert st.to_dict()["branch"] == "main"


def test_status_sees_same_size_same_second_rewrite(ws):
    """The racy rule: a rewrite with equal size right after commit is still seen."""
    import time

    p = write(ws.root, "a.txt", "aaaa")
    soon = time.time_ns() + 10**9  # the tick the commit hashes in, as far as the stat can tell
    os.utime(p, ns=(soon, soon))
    ws.commit("first")
    st0 = os.stat(p)
    p.write_text("bbbb")
    os.utime(p, ns=(st0.st_atime_ns, st0.st_mtime_ns))  # same size, same mtime
    assert ws.status().modified == ["a.txt"]


def test_status_sees_mode_change(ws):
    p = write(ws.root, "run.sh", "echo hi")
    ws.commit("first")
    assert ws.status().clean
    os.chmod(p, 0o755)
    assert ws.status().modified == ["run.sh"]


def test_status_fast_path_after_snapshot(ws):
    for i in range(30):
        write(ws.root, f"d{i % 3}/f{i}.txt", str(i))
    ws.commit("first")
    assert ws.status().clean  # builds the snapshot
    assert ws.status().clean  # uses it
    write(ws.root, "d1/f1.txt", "other")
    write(ws.root, "d2/new.txt", "x")
    os.remove(ws.root / "d0/f0.txt")
    st = ws.status()
    assert (st.added, st.modified, st.deleted) == (["d2/new.txt"], ["d1/f1.txt"], ["d0/f0.txt"])
    import shutil

    shutil.rmtree(ws.root / "d2")
    assert ws.status().deleted == sorted(["d0/f0.txt"] + [f"d2/f{i}.txt" for i in range(2, 30, 3)])


def test_wsignore_and_builtin_ignores(ws):
    write(ws.root, ".wsignore", "*.tmp\nbuild/\n")
    write(ws.root, "keep.txt", "k")
    write(ws.root, "x.tmp", "t")
    write(ws.root, "build/out.bin", "o")
    write(ws.root, ".git/HEAD", "ref")
    assert ws.status().added == [".wsignore", "keep.txt"]


def test_tracked_file_stays_tracked_when_ignored_later(ws):
    write(ws.root, "data.csv", "1")
    ws.commit("first")
    write(ws.root, ".wsignore", "*.csv\n")
    st = ws.status()
    assert st.deleted == [] and st.added == [".wsignore"]


def test_commit_nothing_to_commit(ws):
    with pytest.raises(NothingToCommit):
        ws.commit("empty")
    write(ws.root, "a", "1")
    ws.commit("one")
    with pytest.raises(NothingToCommit):
        ws.commit("again")
    assert len(ws.log()) == 1


def test_commit_requires_message(ws):
    write(ws.root, "a", "1")
    with pytest.raises(InvalidArgument):
        ws.commit("  ")


def test_commit_only_given_paths(ws):
    write(ws.root, "a/1.txt", "1")
    write(ws.root, "b/2.txt", "2")
    res = ws.commit("only a", ["a"], cwd=ws.root)
    assert res.added == 1
    assert [e.path for e in ws.ls()] == ["a/1.txt"]
    assert ws.status().added == ["b/2.txt"]


def test_commit_path_outside_and_unknown(ws):
    write(ws.root, "a", "1")
    with pytest.raises(PathOutsideWorkspace):
        ws.commit("x", ["../etc/passwd"], cwd=ws.root)
    with pytest.raises(UnknownRef):
        ws.commit("x", ["nope"], cwd=ws.root)


def test_commit_records_deletions_of_given_path(ws):
    write(ws.root, "a/1.txt", "1")
    write(ws.root, "b/2.txt", "2")
    ws.commit("both")
    os.remove(ws.root / "a/1.txt")
    os.remove(ws.root / "b/2.txt")
    ws.commit("delete a", ["a/1.txt"], cwd=ws.root)
    assert [e.path for e in ws.ls()] == ["b/2.txt"]


def test_log_show_ls_cat(ws):
    write(ws.root, "a.txt", "v1")
    c1 = ws.commit("one").commit
    write(ws.root, "a.txt", "v2")
    write(ws.root, "b.txt", "b")
    c2 = ws.commit("two").commit
    log = ws.log()
    assert [c.id for c in log] == [c2.id, c1.id]
    assert log[0].to_dict()["parent"] == c1.id
    assert [c.id for c in ws.log(n=1)] == [c2.id]
    assert [c.id for c in ws.log(path="b.txt")] == [c2.id]
    assert ws.read("HEAD~1", "a.txt") == b"v1"
    assert ws.read(c2.id[:8], "a.txt") == b"v2"
    assert [e.path for e in ws.ls("HEAD", "b*")] == ["b.txt"]
    with pytest.raises(UnknownRef):
        ws.read("HEAD", "missing.txt")
    with pytest.raises(UnknownRef):
        ws.resolve("HEAD~5")


def test_large_file_roundtrip_multi_chunk(ws):
    data = os.urandom(3 << 20) + b"\0" * (2 << 20) + os.urandom(1 << 20)
    write(ws.root, "big.bin", data)
    res = ws.commit("big")
    assert res.bytes_stored < len(data)  # the zero run compresses
    info = ws.ls()[0]
    import hashlib

    assert info.id == hashlib.sha256(data).hexdigest()  # file id is sha256sum of the file
    assert ws.read("HEAD", "big.bin") == data


def _age(path, seconds=60):
    """Move a file's mtime into the past, as if written a while ago (not racy)."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def test_second_commit_reads_only_changed_files(ws):
    for i in range(20):
        _age(write(ws.root, f"f{i}.bin", os.urandom(10_000)))
    ws.commit("one")
    write(ws.root, "f3.bin", os.urandom(10_000))
    res = ws.commit("two")
    assert res.bytes_read == 10_000 and res.modified == 1


def test_identical_content_stored_once(ws):
    blob = os.urandom(600_000)
    write(ws.root, "a.bin", blob)
    write(ws.root, "b.bin", blob)
    res = ws.commit("dups")
    assert res.bytes_stored <= len(blob) + 1000
