"""The workspace lock reads WS_LOCK_TIMEOUT when it is taken, and refuses a value it cannot use."""

from __future__ import annotations

import pytest

from tests.conftest import write
from workspace.errors import InvalidConfig, WorkspaceBusy
from workspace.lock import workspace_lock


def test_timeout_set_after_import_takes_effect(ws, monkeypatch):
    with workspace_lock(ws.layout.lock):
        monkeypatch.setenv("WS_LOCK_TIMEOUT", "0")  # after workspace.lock was imported
        with pytest.raises(WorkspaceBusy, match=r"waited 0s"):
            with workspace_lock(ws.layout.lock):
                pass


def test_explicit_timeout_wins_over_the_environment(ws, monkeypatch):
    monkeypatch.setenv("WS_LOCK_TIMEOUT", "not a number")  # not even read
    with workspace_lock(ws.layout.lock, timeout=0):
        with pytest.raises(WorkspaceBusy, match=r"waited 0s"):
            with workspace_lock(ws.layout.lock, timeout=0):
                pass


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_invalid_timeout_is_a_configuration_error(ws, monkeypatch, value):
    monkeypatch.setenv("WS_LOCK_TIMEOUT", value)
    with pytest.raises(InvalidConfig, match="WS_LOCK_TIMEOUT"):
        with workspace_lock(ws.layout.lock):
            pass


def test_invalid_timeout_exits_9_and_readers_still_work(ws, run_ws):
    write(ws.root, "a.txt", "a\n")
    ws.close()
    env = {"WS_LOCK_TIMEOUT": "soon"}
    proc = run_ws(ws.root, "commit", "-m", "x", env=env)
    assert proc.returncode == 9, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ws: error: ") and "WS_LOCK_TIMEOUT" in lines[0]
    assert run_ws(ws.root, "status", env=env).returncode == 0  # takes no lock
