"""A clone killed half-way (kill -9 of the real ws) is finished by running the same clone again.

The folder it leaves holds ``.ws/clone.json`` naming the URL and release; the
same command resumes there, fetching only what the dead one had not recorded,
while any other clone into that folder is refused with one line (exit 8).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import one_error_line, write
from workspace.api import Workspace
from workspace.objects import packs


@pytest.fixture
def remote(tmp_path, monkeypatch) -> Path:
    """A folder remote holding ds@1.0.0 and ds@2.0.0 in several small packs (1 MiB each)."""
    monkeypatch.setattr(packs, "TARGET_PACK_SIZE", 1 << 20)
    src = Workspace.init(tmp_path / "src")
    try:
        for i in range(5):
            write(src.root, f"data/part{i}.bin", os.urandom(1_200_000))
        src.commit("five parts")
        src.releases.create("ds", version="1.0.0")
        write(src.root, "data/extra.bin", os.urandom(300_000))
        src.commit("one more")
        src.releases.create("ds", version="2.0.0")
        src.add_remote("origin", str(tmp_path / "remote"))
        src.push()
    finally:
        src.close()
    assert len(list((tmp_path / "remote" / "index").iterdir())) >= 5
    return tmp_path / "remote"


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.relative_to(root).as_posix().startswith(".ws/")}


def test_running_a_killed_clone_again_resumes_it_and_fetches_less(tmp_path, run_ws, remote):
    full = json.loads(run_ws(tmp_path, "clone", remote, "ds@1.0.0", "whole", "--json", check=True).stdout)
    killed = run_ws(tmp_path, "clone", remote, "ds@1.0.0", "half", env={"WS_CRASH_AT": "pull:fetched"})
    assert killed.returncode == -9, killed.stderr
    assert (tmp_path / "half" / ".ws").is_dir()

    again = run_ws(tmp_path, "clone", remote, "ds@1.0.0", "half", "--json")
    assert again.returncode == 0, again.stderr
    resumed = json.loads(again.stdout)
    assert 0 < resumed["chunks_fetched"] < full["chunks_fetched"]
    assert resumed["bytes_fetched"] < full["bytes_fetched"]
    assert tree(tmp_path / "half") == tree(tmp_path / "whole")
    assert not (tmp_path / "half" / ".ws" / "clone.json").exists()  # a finished clone is an ordinary workspace
    run_ws(tmp_path / "half", "fsck", check=True)
    st = json.loads(run_ws(tmp_path / "half", "status", "--json", check=True).stdout)
    assert st["added"] == st["modified"] == st["deleted"] == []
    # and it is finished: cloning into it again is refused like any folder that is not empty
    proc = run_ws(tmp_path, "clone", remote, "ds@1.0.0", "half")
    assert proc.returncode == 8 and "not empty" in one_error_line(proc)


@pytest.mark.parametrize("other", ["release", "url"])
def test_another_clone_into_a_killed_clones_folder_is_refused(tmp_path, run_ws, remote, other):
    killed = run_ws(tmp_path, "clone", remote, "ds@1.0.0", "half", env={"WS_CRASH_AT": "pull:fetched"})
    assert killed.returncode == -9, killed.stderr
    if other == "url":
        (tmp_path / "mirror").symlink_to(remote)  # the same data under another URL is another clone
        args = [tmp_path / "mirror", "ds@1.0.0"]
    else:
        args = [remote, "ds@2.0.0"]
    proc = run_ws(tmp_path, "clone", *args, "half")
    assert proc.returncode == 8, proc.stderr
    line = one_error_line(proc)
    assert "unfinished clone of ds@1.0.0" in line and str(remote) in line
    assert (tmp_path / "half" / ".ws").is_dir()  # what the first clone fetched is still there to resume
    run_ws(tmp_path, "clone", remote, "ds@1.0.0", "half", check=True)
    run_ws(tmp_path / "half", "fsck", check=True)


def test_the_same_clone_does_not_join_one_still_running_there(tmp_path, run_ws, remote):
    """The marker names the process carrying the clone on; while it runs, a second one keeps out."""
    import subprocess

    from workspace.layout import host_tag

    killed = run_ws(tmp_path, "clone", remote, "ds@1.0.0", "half", env={"WS_CRASH_AT": "pull:fetched"})
    assert killed.returncode == -9, killed.stderr
    marker_path = tmp_path / "half" / ".ws" / "clone.json"
    marker = json.loads(marker_path.read_text())
    running = subprocess.Popen(["sleep", "300"])  # stands for a clone of ds@1.0.0 still at work there
    try:
        marker_path.write_text(json.dumps(dict(marker, writer=f"{running.pid}@{host_tag()}")))
        proc = run_ws(tmp_path, "clone", remote, "ds@1.0.0", "half")
        assert proc.returncode == 8, proc.stderr
        assert "still running" in one_error_line(proc)
    finally:
        running.kill()
        running.wait()
    run_ws(tmp_path, "clone", remote, "ds@1.0.0", "half", check=True)  # its process is gone: resumed
    run_ws(tmp_path / "half", "fsck", check=True)
