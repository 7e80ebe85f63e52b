"""The executable bit survives every hop: commit, push, clone, checkout, and a pull that only flips it."""

from __future__ import annotations

import json
import os
import stat

from tests.conftest import write
from workspace.api import Workspace


def mode_of(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_the_executable_bit_survives_commit_push_clone_and_checkout(ws, tmp_path, run_ws):
    write(ws.root, "run.sh", "#!/bin/sh\necho hi\n")
    write(ws.root, "data.txt", "d")
    os.chmod(ws.root / "run.sh", 0o755)
    run_ws(ws.root, "commit", "-m", "script", check=True)
    # commit
    assert {e.path: e.mode for e in ws.ls()} == {"run.sh": 0o755, "data.txt": 0o644}
    ws.releases.create("ds", version="1.0.0")
    remote = tmp_path / "remote"
    ws.add_remote("origin", str(remote))
    run_ws(ws.root, "push", check=True)
    # push
    record = json.loads((remote / "releases" / "ds" / "1.0.0.json").read_text())
    assert {f["path"]: f["mode"] for f in record["files"]} == {"run.sh": 0o755, "data.txt": 0o644}
    # clone (umask must not decide the bits)
    old = os.umask(0o077)  # inherited by the clone: the record's bits, not the umask, decide
    try:
        run_ws(tmp_path, "clone", remote, "ds", tmp_path / "copy", check=True)
    finally:
        os.umask(old)
    copy = tmp_path / "copy"
    assert mode_of(copy / "run.sh") == 0o755 and mode_of(copy / "data.txt") == 0o644
    assert json.loads(run_ws(copy, "status", "--json", check=True).stdout)["modified"] == []
    # checkout: a commit that drops the bit, and back
    os.chmod(ws.root / "run.sh", 0o644)
    assert ws.status().modified == ["run.sh"]
    run_ws(ws.root, "commit", "-m", "not executable", check=True)
    assert mode_of(ws.root / "run.sh") == 0o644
    run_ws(ws.root, "checkout", "HEAD~1", check=True)
    assert mode_of(ws.root / "run.sh") == 0o755 and ws.status().clean
    run_ws(ws.root, "checkout", "main", check=True)
    assert mode_of(ws.root / "run.sh") == 0o644 and ws.status().clean


def test_a_pull_of_a_version_that_only_flips_the_executable_bit(ws, tmp_path, run_ws):
    write(ws.root, "run.sh", "#!/bin/sh\necho hi\n")
    ws.commit("script")
    ws.releases.create("ds", version="1.0.0")
    remote = tmp_path / "remote"
    ws.add_remote("origin", str(remote))
    ws.push()
    run_ws(tmp_path, "clone", remote, "ds", tmp_path / "copy", check=True)
    copy = Workspace.open(tmp_path / "copy")
    try:
        assert mode_of(copy.root / "run.sh") == 0o644
        os.chmod(ws.root / "run.sh", 0o755)
        ws.commit("executable")
        ws.releases.create("ds", version="1.1.0")
        ws.push()
        proc = run_ws(copy.root, "pull", "ds", "--json", check=True)
        assert json.loads(proc.stdout)["files_written"] == 1
        assert mode_of(copy.root / "run.sh") == 0o755
        assert {e.path: e.mode for e in copy.ls()} == {"run.sh": 0o755}
        assert copy.status().clean
        proc = run_ws(copy.root, "pull", "ds@1.0.0", "--json", check=True)  # and back
        assert mode_of(copy.root / "run.sh") == 0o644 and copy.status().clean
    finally:
        copy.close()
