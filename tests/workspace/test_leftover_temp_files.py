"""Temporary files a killed ws left in the working tree are removed by the next pull, checkout or gc.

A pull killed while it writes files (kill -9 at a crash point in its staging
loop) leaves ``.ws-tmp-*`` files that status hides. Their names carry the
writer's pid and a tag of its machine, and the writer noted their folders in
``.ws/tree-tmp/``: the next pull, checkout or ``ws gc`` removes those of
processes that are gone from this machine, and never another live process's.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import write
from workspace.api import Workspace

TMP = ".ws-tmp-"


def temp_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob(TMP + "*"))


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()  # reaped: the pid names no process now
    return proc.pid


def host_tag() -> str:
    from workspace.layout import host_tag

    return host_tag()


@pytest.fixture
def killed_pull(tmp_path, run_ws) -> Path:
    """A workspace (clone of ds@1.0.0) whose pull of ds@2.0.0 was killed after staging its first file."""
    src = Workspace.init(tmp_path / "src")
    try:
        write(src.root, "data/keep.txt", "kept\n")
        src.commit("one")
        src.releases.create("ds", version="1.0.0")
        for i in range(6):
            write(src.root, f"data/new{i}.txt", f"new file {i}\n")
            write(src.root, f"other/more{i}.txt", f"more {i}\n")
        src.commit("two")
        src.releases.create("ds", version="2.0.0")
        src.add_remote("origin", str(tmp_path / "remote"))
        src.push()
    finally:
        src.close()
    run_ws(tmp_path, "clone", tmp_path / "remote", "ds@1.0.0", "w", check=True)
    root = tmp_path / "w"
    proc = run_ws(root, "pull", "ds@2.0.0", env={"WS_CRASH_AT": "pull:staged"})
    assert proc.returncode == -9, proc.stderr
    assert temp_files(root), "the killed pull left no temporary file: the crash point is not in the staging loop"
    return root


@pytest.fixture
def live_process():
    proc = subprocess.Popen(["sleep", "300"])
    yield proc.pid
    proc.kill()
    proc.wait()


def live_temp_file(root: Path, pid: int) -> Path:
    """A file a live process (``pid``, this machine) is writing, noted as the writers note theirs."""
    name = f"{TMP}{pid}@{host_tag()}-1-new0.txt"
    f = write(root, f"data/{name}", "being written\n")
    (root / ".ws/tree-tmp").mkdir(exist_ok=True)
    (root / ".ws/tree-tmp" / f"{pid}@{host_tag()}-live").write_text("data\0")  # folders, each ended by NUL
    return f


@pytest.mark.parametrize("cleaner", [["pull", "ds@2.0.0"], ["checkout", "main"], ["gc"]])
def test_the_next_pull_checkout_or_gc_removes_what_a_killed_pull_left(killed_pull, run_ws, live_process, cleaner):
    root = killed_pull
    live = live_temp_file(root, live_process)
    run_ws(root, *cleaner, check=True)
    assert temp_files(root) == [live.relative_to(root).as_posix()]  # only the live process's file is left
    run_ws(root, "fsck", check=True)
    if cleaner[0] == "pull":
        assert (root / "other/more5.txt").read_text() == "more 5\n"


def test_gc_removes_a_dead_process_s_file_wherever_it_is_and_keeps_other_machines(ws, run_ws):
    write(ws.root, "a/b/file.txt", "x\n")
    ws.commit("one")
    ws.close()
    dead = dead_pid()
    orphan = write(ws.root, f"a/b/{TMP}{dead}@{host_tag()}-7-file.txt", "half")  # no note in .ws/tree-tmp/
    legacy = write(ws.root, f"a/{TMP}{dead}-7-old.txt", "half")  # named by an older ws: no machine tag
    elsewhere = write(ws.root, f"a/{TMP}{dead}@00000000-7-file.txt", "another machine's")
    run_ws(ws.root, "gc", check=True)
    assert not orphan.exists() and not legacy.exists()
    assert elsewhere.exists()  # its pid means nothing here: kept


def test_a_file_a_killed_transaction_put_aside_comes_back(ws, run_ws):
    """Files a transaction deletes are first renamed aside: if it died before its commit, they return."""
    write(ws.root, "data/a.txt", "a\n")
    ws.commit("one")
    ws.close()
    dead = dead_pid()
    os.rename(ws.root / "data/a.txt", ws.root / f"data/{TMP}{dead}@{host_tag()}-del-a.txt")
    (ws.root / ".ws/tree-tmp").mkdir(exist_ok=True)
    (ws.root / ".ws/tree-tmp" / f"{dead}@{host_tag()}-x").write_text("data\0")
    run_ws(ws.root, "checkout", "main", check=True)
    assert (ws.root / "data/a.txt").read_text() == "a\n"
    assert temp_files(ws.root) == [] and list((ws.root / ".ws/tree-tmp").iterdir()) == []
