"""Shared fixtures: real folders, real SQLite catalogs, the real ``ws`` executable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workspace.api import Workspace


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    """Stable author and no lock waits that would slow failing tests."""
    monkeypatch.setenv("WS_AUTHOR", "Test User <test@example.org>")
    monkeypatch.setenv("WS_LOCK_TIMEOUT", os.environ.get("WS_LOCK_TIMEOUT", "10"))


@pytest.fixture
def ws(tmp_path) -> Workspace:
    """A fresh, empty workspace in a temporary folder."""
    w = Workspace.init(tmp_path / "proj")
    yield w
    w.close()


def write(root: Path, rel: str, data: bytes | str) -> Path:
    """Write a file under ``root`` (creating folders)."""
    p = Path(root) / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


@pytest.fixture
def cli(monkeypatch):
    """Run the Typer app in-process from a folder: ``cli(cwd, "status", "--json")``."""
    from workspace.cli import app

    runner = CliRunner()

    def run(cwd, *args, input=None):
        monkeypatch.chdir(cwd)
        return runner.invoke(app, [str(a) for a in args], input=input)

    return run


def ws_exe() -> list[str]:
    """The installed ``ws`` (or ``python -m workspace`` when it is not on PATH)."""
    exe = shutil.which("ws")
    return [exe] if exe else [sys.executable, "-m", "workspace"]


@pytest.fixture
def run_ws():
    """Run the real ``ws`` in a subprocess: ``run_ws(cwd, "commit", "-m", "x")``."""

    def run(cwd, *args, check=False, env=None, timeout=120):
        full_env = dict(os.environ, **(env or {}))
        proc = subprocess.run([*ws_exe(), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                              env=full_env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"ws {' '.join(map(str, args))} failed ({proc.returncode}): {proc.stderr}")
        return proc

    return run


def data_packs(root_or_store) -> list[str]:
    """Pack files holding only data chunks (a commit also writes a small pack of history objects)."""
    from workspace.objects import packs

    packs_dir = getattr(root_or_store, "packs_dir", None) or str(Path(root_or_store) / ".ws" / "objects" / "packs")
    out = []
    for path in sorted(Path(packs_dir).glob("??/*.pack")):
        if all(e.kind == packs.KIND_CHUNK for e in packs.read_index(str(path))):
            out.append(str(path))
    return out
