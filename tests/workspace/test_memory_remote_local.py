"""memory:// remotes are process-local: usable in the process that adds them, never written to config.toml."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib

from tests.conftest import write
from workspace.api import Workspace


def test_a_memory_remote_is_never_written_to_the_config(ws, tmp_path):
    write(ws.root, "a.txt", "a\n")
    ws.commit("a")
    ws.add_remote("mem", "memory://first-hour-" + tmp_path.name)
    ws.add_remote("shelf", str(tmp_path / "shelf"))
    with open(ws.layout.config, "rb") as f:
        saved = tomllib.load(f)
    assert set(saved["remote"]) == {"shelf"}
    assert "default_remote" not in saved.get("sync", {})  # the default is mem, the first remote
    # the process still has it, also through a second handle on the same workspace
    assert {r.name for r in ws.remotes()} == {"mem", "shelf"}
    other = Workspace.open(ws.root)
    try:
        assert {r.name for r in other.remotes()} == {"mem", "shelf"}
        assert next(r for r in other.remotes() if r.name == "mem").default
    finally:
        other.close()
    ws.releases.create("data", version="1.0.0")
    ws.push("mem")
    assert [r["title"] for r in ws.remote_releases("mem")] == ["data"]
    ws.remove_remote("mem")
    assert {r.name for r in ws.remotes()} == {"shelf"}


def test_a_memory_remote_is_gone_when_the_process_ends(tmp_path, run_ws):
    Workspace.init(tmp_path / "proj").close()
    code = textwrap.dedent(f"""
        from workspace.api import Workspace
        ws = Workspace.open({str(tmp_path / 'proj')!r})
        open(ws.root / "a.txt", "w").write("a")
        ws.commit("a")
        ws.add_remote("mem", "memory://gone")
        ws.releases.create("data", version="1.0.0")
        ws.push("mem")
        print(sorted(r.name for r in ws.remotes()))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['mem']"
    with open(tmp_path / "proj" / ".ws" / "config.toml", "rb") as f:
        saved = tomllib.load(f)
    assert "remote" not in saved and "sync" not in saved
    assert run_ws(tmp_path / "proj", "remote", "list", "--json", check=True).stdout.strip() == "[]"
    status = run_ws(tmp_path / "proj", "status", check=True).stdout
    assert "mem" not in status
