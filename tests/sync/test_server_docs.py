"""The copy-paste session of docs/server.md, run as written (bash, the real ws, a real `ws serve`), so the
doc cannot drift from the commands."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ws_exe

DOC = Path(__file__).resolve().parents[2] / "docs" / "server.md"
MARKER = "<!-- session: run by tests/sync/test_server_docs.py -->"


def session_block() -> str:
    """The fenced bash block right after the marker in docs/server.md."""
    text = DOC.read_text(encoding="utf-8")
    after = text[text.index(MARKER) + len(MARKER):].lstrip("\n")
    assert after.startswith("```bash\n"), "the marker must be followed by a ```bash block"
    return after[len("```bash\n"):after.index("\n```\n")] + "\n"


@pytest.mark.slow  # a dozen ws processes
def test_the_session_in_docs_server_md_runs_as_written(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("WS_REMOTE_", "WS_TOKEN", "WS_SERVE_ROOT")):
            monkeypatch.delenv(name)
    shim = tmp_path / "bin"  # `ws` as the session types it: this checkout's ws
    shim.mkdir()
    (shim / "ws").write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(x) for x in ws_exe()) + ' "$@"\n')
    (shim / "ws").chmod(0o755)
    work = tmp_path / "session"
    work.mkdir()
    script = "set -eu -o pipefail\n" + session_block()
    proc = subprocess.Popen(["bash", "-c", script], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}"),
                            start_new_session=True)  # its own process group: the server goes with it
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the session left running (nothing, when it passes)
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, f"{out}\n{err}"
    assert "serving on grpc://127.0.0.1:" in out
    assert "x,y\n1,2\n" in out  # the clone's table.csv
    assert "refused with exit 11" in out
    assert "ws: error: remote origin: permission denied (role reader cannot push)\n" in err
    assert (work / "ds-copy" / "table.csv").exists()
    log = (work / "server.log").read_text()
    tokens = [(work / f).read_text().strip() for f in ("ann.token", "ci.token")]
    assert all(t.startswith("wst_") and t not in log and t not in out for t in tokens)
    assert "rpc=UploadPack token=ann role=writer" in log and "rpc=LocateChunks token=ci role=reader" in log
    assert log.rstrip().endswith("ws serve: stopped")
    assert (work / "team-root" / "releases" / "ds" / "1.0.0.json").is_file()
