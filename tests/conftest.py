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


class SmallDisk:
    """A real tmpfs of a few MiB, mounted for one test: fill it, free it, remount it read-only."""

    def __init__(self, path: Path):
        self.path = path
        self._filler = path / "filler"  # outside any workspace made under path/

    def free_bytes(self) -> int:
        """Bytes an unprivileged write could still take."""
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Take every free byte but about ``leave`` (rounded to the file system's pages)."""
        self.free()
        size = self.free_bytes() - leave
        if size > 0:
            fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)

    def free(self) -> None:
        """Give back what :meth:`fill` took."""
        self._filler.unlink(missing_ok=True)

    def remount(self, read_only: bool) -> None:
        """Remount the file system read-only or read-write (no process may hold a file open for writing)."""
        subprocess.run(["mount", "-o", "remount," + ("ro" if read_only else "rw"), str(self.path)],
                       check=True, capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(size="8m")``: a fresh tmpfs of that size, unmounted after the test.

    Needs root (mount); skipped with the reason otherwise, except on CI
    (CI=true), where a missing mount is a failure.
    """
    mounted: list[Path] = []

    def make(size: str = "8m") -> SmallDisk:
        mnt = tmp_path / f"disk{len(mounted)}"
        mnt.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            reason = f"cannot mount a tmpfs (needs root): {proc.stderr.strip() or proc.returncode}"
            if os.environ.get("CI") == "true":
                pytest.fail(reason)
            pytest.skip(reason)
        mounted.append(mnt)
        return SmallDisk(mnt)

    yield make
    for mnt in mounted:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)  # still busy: detach it


def one_error_line(proc) -> str:
    """The single ``ws: error: ...`` line a failed command printed on stderr (asserts there is one)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ws: error: "), proc.stderr
    return lines[0]
