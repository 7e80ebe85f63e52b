"""``ws watch``: with the watcher running, ``ws status`` equals a full scan after every kind of change.

The watcher is the real background process (``ws watch --daemon``); status
talks to it over its socket. No sleeps: status itself waits for the watcher's
barrier, so a change made just before it is always seen. Each result is
checked against an oracle that hashes the tree from scratch, and against
status with the watcher's answer ignored (``WS_STATUS_FULL_SCAN=1``).
"""

from __future__ import annotations

import errno
import json
import os
import select
import shutil
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import write
from workspace.objects.hashing import hash_file, hash_link
from workspace.types import EXEC_MODE, FILE_MODE, LINK_MODE

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ws watch needs inotify (Linux)")


def oracle(root: Path, manifest: dict) -> tuple[list, list, list]:
    """(added, modified, deleted) by hashing every file now: no cache, no snapshot, no watcher."""
    found: dict[str, tuple[str, int]] = {}

    def visit(folder: Path, rel: str) -> None:
        for e in os.scandir(folder):
            p = f"{rel}{e.name}"
            if e.is_symlink():
                found[p] = (hash_link(e.path)[0], LINK_MODE)
            elif e.is_dir():
                if e.name not in (".ws", ".git"):
                    visit(Path(e.path), p + "/")
            elif e.is_file() and not e.name.startswith(".ws-tmp-"):
                found[p] = (hash_file(e.path)[0], EXEC_MODE if os.lstat(e.path).st_mode & 0o111 else FILE_MODE)

    visit(root, "")
    added = sorted(p for p in found if p not in manifest)
    deleted = sorted(p for p in manifest if p not in found)
    modified = sorted(p for p, (fid, mode) in found.items()
                      if p in manifest and (manifest[p].file_id != fid or manifest[p].mode != mode))
    return added, modified, deleted


def lists(st) -> tuple[list, list, list]:
    return st.added, st.modified, st.deleted


@pytest.fixture
def tree(ws):
    for i in range(3):
        for j in range(3):
            write(ws.root, f"d{i}/s{j}/f{i}{j}.txt", f"file {i} {j}\n")
        write(ws.root, f"d{i}/top{i}.txt", f"top {i}\n")
    write(ws.root, "root.txt", "root\n")
    os.symlink("root.txt", ws.root / "link")
    ws.commit("base")
    return ws


@pytest.fixture
def watching(tree, run_ws):
    proc = run_ws(tree.root, "watch", "--daemon", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["running"] and info["folders_watched"] >= 13
    yield tree
    run_ws(tree.root, "watch", "--stop", check=True)


def full_scan(ws, monkeypatch):
    monkeypatch.setenv("WS_STATUS_FULL_SCAN", "1")
    try:
        st = ws.status()
    finally:
        monkeypatch.delenv("WS_STATUS_FULL_SCAN")
    assert st.scan == "full"
    return st


def _editor_save(root: Path) -> None:
    target = root / "d0/s0/f00.txt"
    tmp = target.with_name(".f00.txt.swp")
    tmp.write_text("saved by an editor\n")
    os.replace(tmp, target)


def _replace_file_by_folder(root: Path) -> None:
    (root / "d1/top1.txt").unlink()
    write(root, "d1/top1.txt/inside.txt", "now a folder\n")


def _folder_back_to_file(root: Path) -> None:
    if not (root / "d1/top1.txt").is_dir():
        _replace_file_by_folder(root)
    shutil.rmtree(root / "d1/top1.txt")
    write(root, "d1/top1.txt", "top 1\n")


def _move_folder_out_and_back(root: Path) -> None:
    outside = root.parent / "outside"
    os.rename(root / "d2/s1", outside)
    write(outside, "new.txt", "made outside\n")
    (outside / "f21.txt").write_text("edited outside\n")
    os.rename(outside, root / "d0/s1moved")


def _folder_to_symlink(root: Path) -> None:
    shutil.rmtree(root / "d2/s2")
    os.symlink("../d0", root / "d2/s2")  # what is behind a link to a folder is never ours


CHANGES = {
    "edit": lambda r: (r / "d0/s1/f01.txt").write_text("edited\n"),
    "append same size": lambda r: (r / "d0/s1/f01.txt").write_text("file 9 9\n"),
    "new file": lambda r: write(r, "d1/s1/new.txt", "new\n"),
    "delete": lambda r: (r / "d2/s0/f20.txt").unlink(),
    "rename in folder": lambda r: os.rename(r / "d1/s0/f10.txt", r / "d1/s0/renamed.txt"),
    "rename across folders": lambda r: os.rename(r / "d1/s2/f12.txt", r / "d2/s2/moved.txt"),
    "chmod +x": lambda r: os.chmod(r / "d0/top0.txt", 0o755),
    "touch without change": lambda r: os.utime(r / "d2/top2.txt"),
    "editor write-temp-and-rename": _editor_save,
    "file replaced by folder": _replace_file_by_folder,
    "folder replaced by file again": _folder_back_to_file,
    "new nested folders": lambda r: write(r, "n1/n2/n3/n4/deep.txt", "deep\n"),
    "delete a folder tree": lambda r: shutil.rmtree(r / "d1"),
    "move a folder": lambda r: os.rename(r / "d0/s2", r / "d2/s9"),
    "folder moved out, changed, moved back elsewhere": _move_folder_out_and_back,
    "new symlink": lambda r: os.symlink("d0/top0.txt", r / "d1/newlink"),
    "symlink re-pointed": lambda r: (os.unlink(r / "link"), os.symlink("d0/top0.txt", r / "link")),
    "file replaced by symlink": lambda r: ((r / "d0/top0.txt").unlink(), os.symlink("../root.txt", r / "d0/top0.txt")),
    "folder replaced by symlink to a folder": _folder_to_symlink,
    "empty folder made and removed": lambda r: (os.mkdir(r / "gone"), os.rmdir(r / "gone")),
    "file made and removed": lambda r: (write(r, "d0/tmp.txt", "x"), os.unlink(r / "d0/tmp.txt")),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_status_with_watcher_equals_full_scan(watching, monkeypatch, change):
    ws = watching
    assert lists(ws.status()) == ([], [], [])  # the snapshot the watcher's answers start from
    CHANGES[change](ws.root)
    st = ws.status()
    assert st.scan == "watch"
    expected = oracle(ws.root, ws.manifest())
    assert lists(st) == expected
    assert lists(full_scan(ws, monkeypatch)) == expected
    again = ws.status()
    assert again.scan == "watch" and lists(again) == expected


def test_every_change_in_a_row(watching, monkeypatch):
    """One change after another, each status built on the snapshot the previous watched status left."""
    ws = watching
    ws.status()
    for name, change in CHANGES.items():
        try:
            change(ws.root)
        except OSError:
            pass  # an earlier change removed what this one edits: whatever it did do is still checked
        st = ws.status()
        assert st.scan == "watch", name
        assert lists(st) == oracle(ws.root, ws.manifest()), name
    assert lists(full_scan(ws, monkeypatch)) == lists(ws.status())
    ws.commit("everything")
    assert lists(ws.status()) == ([], [], [])
    write(ws.root, "after/commit.txt", "x")
    st = ws.status()
    assert st.scan == "watch" and st.added == ["after/commit.txt"]


def test_without_a_watcher_status_scans_everything(tree):
    write(tree.root, "d0/new.txt", "x")
    st = tree.status()
    assert st.scan == "full" and st.added == ["d0/new.txt"]


def test_changes_while_the_watcher_was_stopped_are_seen(watching, run_ws):
    ws = watching
    ws.status()
    run_ws(ws.root, "watch", "--stop", check=True)
    (ws.root / "d0/s0/f00.txt").write_text("changed while nobody watched\n")
    run_ws(ws.root, "watch", "--daemon", check=True)
    st = ws.status()
    assert st.scan == "full"  # a new watcher (another epoch) cannot vouch for the gap
    assert st.modified == ["d0/s0/f00.txt"]
    (ws.root / "d0/top0.txt").write_text("and one more\n")
    st = ws.status()
    assert st.scan == "watch" and st.modified == ["d0/s0/f00.txt", "d0/top0.txt"]


def test_a_killed_watcher_is_not_trusted(watching, run_ws):
    ws = watching
    ws.status()
    pidfd = os.pidfd_open(ws.watch_info()["pid"])
    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    select.select([pidfd], [], [])  # readable once the process has exited
    os.close(pidfd)
    (ws.root / "d0/top0.txt").write_text("changed after the watcher died\n")
    st = ws.status()
    assert st.scan == "full" and st.modified == ["d0/top0.txt"]
    assert not ws.watch_info()["running"]  # the kernel dropped its flock
    run_ws(ws.root, "watch", "--daemon", check=True)  # and a new one starts over the stale socket


def test_queue_overflow_means_a_full_scan(watching):
    """Stop the watcher, make more events than the kernel queues, let it go on: events were lost."""
    ws = watching
    many = ws.root / "many"
    many.mkdir()
    ws.status()  # its barrier: the watcher watches many/ now
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    pid = ws.watch_info()["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        for i in range(limit // 2 + 100):  # a create and a delete each
            (many / f"f{i}").touch()
            (many / f"f{i}").unlink()
        write(ws.root, "d1/s1/lost.txt", "an event the kernel may have dropped\n")
    finally:
        os.kill(pid, signal.SIGCONT)
    st = ws.status()
    assert st.scan == "full" and st.added == ["d1/s1/lost.txt"]
    info = ws.watch_info()
    assert info["overflows"] == 1
    write(ws.root, "d2/after.txt", "x")
    st = ws.status()
    assert st.scan == "watch" and st.added == ["d1/s1/lost.txt", "d2/after.txt"]


def test_changed_ignore_rules_mean_a_full_scan(watching):
    ws = watching
    write(ws.root, "d0/s0/x.log", "log\n")
    write(ws.root, ".wsignore", "*.log\n")
    ws.commit("ignore logs")
    ws.status()
    (ws.root / ".wsignore").write_text("# nothing ignored now\n")
    st = ws.status()
    assert st.scan == "full" and st.added == ["d0/s0/x.log"]


def test_watch_cli_status_and_one_watcher_per_workspace(watching, run_ws):
    ws = watching
    proc = run_ws(ws.root, "watch", "--daemon")
    assert proc.returncode == 7 and "already runs" in proc.stderr
    info = json.loads(run_ws(ws.root, "watch", "--status", "--json", check=True).stdout)
    assert info["running"] and info["root"] == str(ws.root) and info["pid"] > 0
    assert Path(info["log"]).read_text().count("watching") == 1
    stopped = json.loads(run_ws(ws.root, "watch", "--stop", "--json", check=True).stdout)
    assert stopped["stopped"] == info["pid"]
    assert json.loads(run_ws(ws.root, "watch", "--status", "--json", check=True).stdout)["running"] is False
    assert "no watcher was running" in run_ws(ws.root, "watch", "--stop", check=True).stdout
    run_ws(ws.root, "watch", "--daemon", check=True)  # for the fixture's --stop


def test_long_workspace_path_uses_a_short_socket_name(tmp_path, run_ws):
    from workspace.api import Workspace

    deep = tmp_path / ("x" * 60) / ("y" * 60)
    w = Workspace.init(deep)
    write(w.root, "a.txt", "a")
    w.commit("one")
    run_ws(w.root, "watch", "--daemon", check=True)
    try:
        w.status()
        write(w.root, "b.txt", "b")
        st = w.status()
        assert st.scan == "watch" and st.added == ["b.txt"]
    finally:
        run_ws(w.root, "watch", "--stop", check=True)
        w.close()


def test_changes_racing_with_status_are_never_lost(watching):
    """A writer keeps changing files while statuses run; once it stops, status still equals the oracle."""
    import threading

    ws = watching
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            write(ws.root, f"d{i % 3}/s{i % 3}/race{i % 7}.txt", f"round {i}\n")
            if i % 5 == 0:
                os.replace(ws.root / f"d{i % 3}/s{i % 3}/race{i % 7}.txt", ws.root / f"d{i % 3}/moved{i % 4}.txt")
            if i % 11 == 0:
                shutil.rmtree(ws.root / "churn", ignore_errors=True)
                write(ws.root, f"churn/c{i}/x.txt", "x")

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(15):
            ws.status()
    finally:
        stop.set()
        t.join()
    st = ws.status()
    assert st.scan == "watch"
    assert lists(st) == oracle(ws.root, ws.manifest())


def test_status_with_a_watcher_imports_no_watchdog(watching):
    ws = watching
    write(ws.root, "d0/x.txt", "x")
    code = ("import json, sys\n"
            "from workspace.api import Workspace\n"
            "st = Workspace.open('.').status()\n"
            "print(json.dumps([st.scan, st.added, 'watchdog' in sys.modules]))\n")
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], cwd=ws.root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    scan, added, imported = json.loads(proc.stdout)
    assert added == ["d0/x.txt"] and not imported
    assert scan == "full"  # the fixture's watcher started after the last snapshot; the next one is watched
    proc = subprocess.run([sys.executable, "-c", code], cwd=ws.root, capture_output=True, text=True, timeout=120)
    assert json.loads(proc.stdout) == ["watch", ["d0/x.txt"], False]


def test_hard_links_are_read_again_every_time(watching, tmp_path):
    """A write through one name of a file changes it under its other names, with no event in their folders."""
    ws = watching
    ws.status()
    os.link(ws.root / "d0/top0.txt", ws.root / "d1/hard.txt")
    st = ws.status()
    assert st.scan == "full"  # a file with several links appeared: the watcher starts a new epoch
    assert lists(st) == oracle(ws.root, ws.manifest())
    with open(ws.root / "d1/hard.txt", "a") as f:
        f.write("written through the other name\n")
    st = ws.status()
    assert st.scan == "watch" and st.modified == ["d0/top0.txt"]
    assert lists(st) == oracle(ws.root, ws.manifest())

    outside = tmp_path / "outside.txt"
    outside.write_text("outside\n")
    os.link(outside, ws.root / "d2/from-outside.txt")
    ws.status()
    outside.write_text("changed through the name outside the workspace\n")
    st = ws.status()
    assert st.scan == "watch"
    assert lists(st) == oracle(ws.root, ws.manifest())


def test_watch_limit_reached_at_the_barrier_folder_is_named_and_leaks_nothing(tmp_path, monkeypatch):
    """No watch left for the barrier folder at start: the limit message (not "disk full"), the inotify fd closed."""
    from workspace.errors import WatchUnavailable
    from workspace.tree import watcher as wmod

    def no_watch_left(self, path, mask):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(path))

    monkeypatch.setattr(wmod.Watcher, "_add_watch", no_watch_left)
    (tmp_path / "tree").mkdir()
    fds = set(os.listdir("/proc/self/fd"))
    with pytest.raises(WatchUnavailable, match="inotify watch limit reached"):
        wmod.Watcher(tmp_path / "tree", tmp_path / "barrier")
    assert set(os.listdir("/proc/self/fd")) <= fds, "the inotify instance was left open"


def test_status_without_a_commit_does_not_ask_the_watcher(ws, monkeypatch):
    """Before the first commit everything is added: the watcher's answer would go unused."""
    from workspace.tree import watch_client

    def asked(*args, **kwargs):
        raise AssertionError("status asked the watcher without a head")

    monkeypatch.setattr(watch_client, "changes_since", asked)
    write(ws.root, "a/b.txt", "x")
    assert ws.status().added == ["a/b.txt"]


def test_a_watcher_failing_before_it_arms_releases_its_lock(ws, monkeypatch):
    from workspace.tree import watchd

    def fails(wdir):
        raise OSError(errno.EACCES, "cannot open the watch folder")

    monkeypatch.setattr(watchd, "SocketAddress", fails)
    with pytest.raises(OSError):
        watchd.serve(ws.root)
    os.close(watchd._take_lock(ws.layout.watch_dir))  # WatcherRunning if the failed start kept the lock
