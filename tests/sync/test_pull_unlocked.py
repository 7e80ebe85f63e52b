"""A pull downloads without the workspace lock: commits and status go on meanwhile, gc waits.

The download is held still deterministically: the folder backend used by the
pull waits on an Event before it serves any pack byte, and tells the test
when it got there. The commit, status and gc are the real ``ws`` executable.
"""

from __future__ import annotations

import os
import threading

import pytest

from sync.storage import registry
from sync.storage.fsspec_backend import FsspecBackend
from tests.conftest import write
from workspace.api import Workspace


class _Gate:
    """Two events: the pull reached its first pack download; the test lets it go on."""

    def __init__(self):
        self.downloading = threading.Event()
        self.go = threading.Event()

    def backend(self, url, options, label):
        gate = self

        class Held(FsspecBackend):
            def get(self, key, start=None, end=None):
                gate.wait(key)
                return super().get(key, start, end)

            def get_file(self, key, local_path):
                gate.wait(key)
                return super().get_file(key, local_path)

        return Held(url, options, label)

    def wait(self, key: str) -> None:
        if key.startswith("packs/"):
            self.downloading.set()
            if not self.go.wait(60):
                raise TimeoutError("the test never released the download")


@pytest.fixture
def remote(ws, tmp_path):
    write(ws.root, "data/a.bin", os.urandom(300_000))
    write(ws.root, "data/b.csv", "x,y\n1,2\n")
    ws.commit("data")
    ws.releases.create("ds", version="1.0.0")
    ws.add_remote("origin", str(tmp_path / "remote"))
    ws.push()
    return ws, tmp_path / "remote"


def test_commit_and_status_succeed_while_a_pull_downloads(remote, tmp_path, monkeypatch, run_ws):
    source, remote_dir = remote
    gate = _Gate()
    monkeypatch.setitem(registry._FACTORIES, "file", gate.backend)
    target = Workspace.init(tmp_path / "target")
    target.add_remote("origin", str(remote_dir))
    write(target.root, "notes.txt", "my own work")
    outcome: dict = {}

    def pull() -> None:
        with Workspace.open(target.root) as w:
            try:
                outcome["result"] = w.pull("origin", "ds")
            except BaseException as exc:  # reported by the assertions below
                outcome["error"] = exc

    thread = threading.Thread(target=pull)
    thread.start()
    try:
        assert gate.downloading.wait(30), "the pull never started downloading"
        quick = {"WS_LOCK_TIMEOUT": "2"}
        committed = run_ws(target.root, "commit", "-m", "work during the pull", env=quick)
        status = run_ws(target.root, "status", env=quick)
        gc = run_ws(target.root, "gc", env={"WS_LOCK_TIMEOUT": "0.3"})  # would delete what the pull stored
    finally:
        gate.go.set()
        thread.join(60)
    assert committed.returncode == 0, committed.stderr
    assert status.returncode == 0, status.stderr
    assert gc.returncode == 7 and "busy" in gc.stderr, (gc.returncode, gc.stderr)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].commit is not None
    log = [c.message for c in target.log()]
    assert log[0] == "pull ds@1.0.0 from origin" and log[1] == "work during the pull"
    assert (target.root / "data/a.bin").read_bytes() == (source.root / "data/a.bin").read_bytes()
    assert target.read("HEAD", "notes.txt") == b"my own work"
    assert target.status().clean
    assert target.fsck().ok
    target.close()


def test_gc_takes_the_pack_guard_before_the_workspace_lock(ws, monkeypatch):
    """The one lock order (pack guard, then workspace lock), as pull has it: a gc waiting for
    the guard must not hold the workspace lock, or it and a pull would wait on each other."""
    import workspace.maintenance.gc as maintenance
    from workspace.lock import pack_guard

    write(ws.root, "a.txt", "a")
    ws.commit("one")
    waiting = threading.Event()
    real_guard = maintenance.pack_guard

    def observed_guard(*args, **kwargs):
        waiting.set()  # gc is about to wait for the guard: which locks does it hold now?
        return real_guard(*args, **kwargs)

    monkeypatch.setattr(maintenance, "pack_guard", observed_guard)
    outcome: dict = {}

    def gc() -> None:
        with Workspace.open(ws.root) as w:
            try:
                outcome["report"] = w.gc()
            except BaseException as exc:
                outcome["error"] = exc

    with pack_guard(ws.layout.pack_lock, exclusive=False):  # a pull in its download phase
        thread = threading.Thread(target=gc)
        thread.start()
        assert waiting.wait(30)
        with ws.lock(timeout=0.5):  # the pull now wants the workspace lock: gc must not hold it
            pass
    thread.join(60)
    assert "error" not in outcome, outcome.get("error")
