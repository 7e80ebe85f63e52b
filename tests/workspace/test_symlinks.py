"""Symbolic links are recorded as links, as git does: the target text is the content, mode 0o120000.

A link is never followed: not when walking, hashing or committing (its target
text is its content), and not when writing (checkout, restore, transactions
and pull recreate the link with os.symlink under a temporary name and rename
it into place). A link pointing outside the workspace is recorded and
recreated as text; what it points to is never read or written.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from tests.conftest import write
from workspace.api import Workspace

LINK = 0o120000


def link_id(target: str) -> str:
    return hashlib.sha256(os.fsencode(target)).hexdigest()


@pytest.fixture
def outside(tmp_path) -> Path:
    """A file outside the workspace that nothing may read into the store or write to."""
    p = tmp_path / "outside.txt"
    p.write_text("secret outside")
    return p


def test_commit_records_a_symlink_as_its_target_text(ws, outside):
    write(ws.root, "data/a.csv", "a\n")
    os.symlink("data/a.csv", ws.root / "latest")
    os.symlink(outside, ws.root / "ext")
    os.symlink("data", ws.root / "dirlink")  # a link to a folder is a link, never a folder to walk
    assert ws.status().added == ["data/a.csv", "dirlink", "ext", "latest"]
    ws.commit("links")
    entries = {e.path: e for e in ws.ls()}
    assert set(entries) == {"data/a.csv", "dirlink", "ext", "latest"}
    assert (entries["latest"].mode, entries["latest"].id, entries["latest"].size) == (LINK, link_id("data/a.csv"), 10)
    assert entries["ext"].id == link_id(str(outside))
    assert ws.read("HEAD", "ext") == os.fsencode(str(outside))  # its content is the text, not the secret
    assert b"secret outside" not in b"".join(Path(p).read_bytes() for p in ws.store.list_pack_files())
    assert ws.status().clean
    assert ws.fsck().ok


def test_status_sees_a_changed_link_target_through_its_fast_path(ws, run_ws):
    write(ws.root, "d/a.txt", "a")
    write(ws.root, "d/b.txt", "b")
    os.symlink("a.txt", ws.root / "d" / "cur")
    ws.commit("links")
    for _ in range(2):  # the second run answers from the snapshot of clean folders
        assert json.loads(run_ws(ws.root, "status", "--json", check=True).stdout)["modified"] == []
    os.unlink(ws.root / "d" / "cur")
    os.symlink("b.txt", ws.root / "d" / "cur")
    st = json.loads(run_ws(ws.root, "status", "--json", check=True).stdout)
    assert st["modified"] == ["d/cur"], st
    d = ws.diff()
    assert [(e.path, e.change, e.old_mode, e.new_mode) for e in d.entries] == [("d/cur", "modified", LINK, LINK)]
    assert "".join(ws.diff_lines(d, d.entries[0])).count("+b.txt") == 1
    os.unlink(ws.root / "d" / "cur")
    st = json.loads(run_ws(ws.root, "status", "--json", check=True).stdout)
    assert st["deleted"] == ["d/cur"], st


def test_a_file_replaced_by_a_link_with_the_same_text_is_modified(ws):
    write(ws.root, "x", "a.txt")
    ws.commit("file")
    os.unlink(ws.root / "x")
    os.symlink("a.txt", ws.root / "x")
    assert ws.status().modified == ["x"]
    ws.commit("now a link")
    assert ws.ls()[0].mode == LINK


def test_checkout_and_restore_recreate_links_never_their_targets(ws, outside):
    write(ws.root, "f", "plain")
    ws.commit("file")
    first = ws.head()[1]
    os.unlink(ws.root / "f")
    os.symlink(outside, ws.root / "f")  # the same name, now a link pointing outside
    os.symlink("f", ws.root / "g")
    ws.commit("links")
    ws.checkout(first)
    assert not (ws.root / "f").is_symlink() and (ws.root / "f").read_text() == "plain"
    assert not os.path.lexists(ws.root / "g")
    assert outside.read_text() == "secret outside"  # the file was written, not written through
    ws.checkout("main")
    assert os.readlink(ws.root / "f") == str(outside) and os.readlink(ws.root / "g") == "f"
    assert ws.status().clean
    os.unlink(ws.root / "g")
    os.unlink(ws.root / "f")
    ws.restore([str(ws.root / "f"), str(ws.root / "g")])
    assert os.readlink(ws.root / "f") == str(outside) and os.readlink(ws.root / "g") == "f"
    assert outside.read_text() == "secret outside" and ws.status().clean


def test_checkout_between_a_link_and_a_folder_of_the_same_name(ws, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, ws.root / "a")
    ws.commit("a is a link")
    link_commit = ws.head()[1]
    os.unlink(ws.root / "a")
    write(ws.root, "a/b.txt", "b")
    ws.commit("a is a folder")
    ws.checkout(link_commit)
    assert os.readlink(ws.root / "a") == str(elsewhere)
    ws.checkout("main")
    assert not (ws.root / "a").is_symlink() and (ws.root / "a" / "b.txt").read_text() == "b"
    assert list(elsewhere.iterdir()) == []  # nothing was written through the link
    assert ws.status().clean


def test_commit_of_a_path_below_a_symlinked_folder_is_refused(ws, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "x.txt", "x")
    os.symlink(elsewhere, ws.root / "lnk")
    from workspace.errors import PathOutsideWorkspace

    with pytest.raises(PathOutsideWorkspace):
        ws.commit("through", paths=[str(ws.root / "lnk" / "x.txt")])
    ws.commit("the link", paths=[str(ws.root / "lnk")])
    assert [(e.path, e.mode) for e in ws.ls()] == [("lnk", LINK)]


def test_transactions_put_copy_and_delete_links(ws, outside):
    with ws.transaction("links") as t:
        t.put_bytes("a.txt", b"a")
        t.put_symlink("l", str(outside))
    assert os.readlink(ws.root / "l") == str(outside)
    with ws.transaction("copy") as t:
        t.copy("HEAD", "l", "sub/l2")
    assert os.readlink(ws.root / "sub" / "l2") == str(outside)
    assert {e.path: e.mode for e in ws.ls()} == {"a.txt": 0o644, "l": LINK, "sub/l2": LINK}
    with ws.transaction("delete") as t:
        t.delete("l")
    assert not os.path.lexists(ws.root / "l") and outside.read_text() == "secret outside"
    assert ws.status().clean
    from workspace.errors import InvalidArgument

    for bad in (0o4755, 0o777, LINK):
        with pytest.raises(InvalidArgument), ws.transaction("bad mode") as t:
            t.put_bytes("x", b"x", mode=bad)


def test_push_clone_and_pull_keep_links_as_links(ws, tmp_path, outside, run_ws):
    write(ws.root, "data/a.csv", "a\n")
    os.symlink("data/a.csv", ws.root / "latest")
    os.symlink(outside, ws.root / "ext")
    ws.commit("links")
    ws.releases.create("ds", version="1.0.0")
    remote = tmp_path / "remote"
    ws.add_remote("origin", str(remote))
    ws.push()
    record = json.loads((remote / "releases" / "ds" / "1.0.0.json").read_text())
    assert {f["path"]: f["mode"] for f in record["files"]} == {"data/a.csv": 0o644, "latest": LINK, "ext": LINK}
    run_ws(tmp_path, "clone", remote, "ds", tmp_path / "copy", check=True)
    copy = Workspace.open(tmp_path / "copy")
    try:
        assert os.readlink(copy.root / "latest") == "data/a.csv"
        assert os.readlink(copy.root / "ext") == str(outside)
        assert copy.status().clean and outside.read_text() == "secret outside"
        os.unlink(ws.root / "latest")
        os.symlink("data", ws.root / "latest")  # a new target text in a new version
        ws.commit("retarget")
        ws.releases.create("ds", version="1.1.0")
        ws.push()
        run_ws(copy.root, "pull", "ds", check=True)
        assert os.readlink(copy.root / "latest") == "data"
        assert copy.status().clean
    finally:
        copy.close()


def test_record_link_entries_are_validated(ws, tmp_path, run_ws):
    write(ws.root, "t", "x")
    os.symlink("t", ws.root / "l")
    ws.commit("l")
    ws.releases.create("ds", version="1.0.0")
    remote = tmp_path / "remote"
    ws.add_remote("origin", str(remote))
    ws.push()
    record = json.loads((remote / "releases" / "ds" / "1.0.0.json").read_text())
    target = Workspace.init(tmp_path / "target")
    try:
        target.add_remote("origin", str(remote))
        for version, change in (("1.0.1", {"size": 5000}), ("1.0.2", {"size": 0})):
            forged = json.loads(json.dumps(record))
            forged["version"] = version
            next(f for f in forged["files"] if f["path"] == "l").update(change)
            (remote / "releases" / "ds" / f"{version}.json").write_text(json.dumps(forged))
            proc = run_ws(target.root, "pull", f"ds@{version}")
            assert proc.returncode == 6 and proc.stderr.count("\n") == 1 and "'l'" in proc.stderr, proc.stderr
        # a link whose target text would hold a NUL: refused when its content is staged, nothing written
        with ws.transaction("nul") as t:
            t.put_bytes("n", b"a\x00b")
        ws.releases.create("nul", version="1.0.0")
        ws.push()
        rec = json.loads((remote / "releases" / "nul" / "1.0.0.json").read_text())
        next(f for f in rec["files"] if f["path"] == "n")["mode"] = LINK
        (remote / "releases" / "nul" / "1.0.0.json").write_text(json.dumps(rec))
        proc = run_ws(target.root, "pull", "nul")
        assert proc.returncode == 6 and proc.stderr.count("\n") == 1 and "'n'" in proc.stderr, proc.stderr
        assert not os.path.lexists(target.root / "n") and not os.path.lexists(target.root / "t")
    finally:
        target.close()


def test_a_system_without_symlinks_refuses_a_release_with_links_in_one_line(ws, tmp_path, monkeypatch):
    os.symlink("x", ws.root / "l")
    write(ws.root, "x", "x")
    ws.commit("l")
    ws.releases.create("ds", version="1.0.0")
    ws.add_remote("origin", str(tmp_path / "remote"))
    ws.push()
    import workspace.objects.names as names

    monkeypatch.setattr(names, "symlinks_supported", lambda: False)
    from workspace.errors import WorkspaceError

    with pytest.raises(WorkspaceError) as exc:
        Workspace.clone(str(tmp_path / "remote"), "ds", tmp_path / "copy")
    assert "symbolic link" in str(exc.value) and "'l'" in str(exc.value)
    assert not (tmp_path / "copy").exists()


def test_the_stat_cache_holds_the_link_not_its_target(ws, outside):
    os.symlink(outside, ws.root / "ext")
    ws.commit("ext")
    row = ws.catalog.query_one("SELECT size, ino, file_id FROM stat_cache WHERE path='ext'")
    st = os.lstat(ws.root / "ext")
    assert row == (st.st_size, st.st_ino, link_id(str(outside)))
    assert stat.S_ISLNK(st.st_mode)


def test_a_tracked_folder_replaced_by_a_link_is_not_read_through(ws, tmp_path):
    write(ws.root, "d/x.txt", "mine")
    ws.commit("d")
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "x.txt", "secret elsewhere")  # the same name, behind the link
    (ws.root / "d" / "x.txt").unlink()
    (ws.root / "d").rmdir()
    os.symlink(elsewhere, ws.root / "d")
    st = ws.status()
    assert (st.added, st.modified, st.deleted) == (["d"], [], ["d/x.txt"])
    ws.commit("d is a link now")
    assert [(e.path, e.mode) for e in ws.ls()] == [("d", LINK)]
    assert b"secret elsewhere" not in b"".join(Path(p).read_bytes() for p in ws.store.list_pack_files())

