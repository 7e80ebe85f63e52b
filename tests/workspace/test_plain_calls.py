"""gc and status reach releases and remotes through plain calls: a failure to load them is loud.

They used to go through a registry of providers filled by an optional import
whose ImportError was ignored; a broken import then meant gc silently dropped
content only a release held, and status silently lost its remote rows.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import write

HEAVY = ("sqlmodel", "sqlalchemy", "fsspec", "boto3", "typer", "yaml", "keyring")


def _python(code: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_gc_fails_loudly_when_it_cannot_ask_about_releases(ws):
    write(ws.root, "a.txt", "a\n")
    ws.commit("one")
    ws.close()
    code = ("import sys; sys.modules['catalog.releases'] = None  # the release queries cannot be imported\n"
            "from workspace.api import Workspace\n"
            "Workspace.open(sys.argv[1]).gc()\n")
    proc = _python(code, ws.root)
    assert proc.returncode != 0 and "catalog.releases" in proc.stderr, proc.stderr


def test_status_fails_loudly_when_it_cannot_load_remote_rows(ws):
    write(ws.root, "a.txt", "a\n")
    ws.commit("one")
    ws.close()
    code = ("import sys; sys.modules['catalog.remotes'] = None  # the remote queries cannot be imported\n"
            "from workspace.api import Workspace\n"
            "print(Workspace.open(sys.argv[1]).status().to_dict())\n")
    proc = _python(code, ws.root)
    assert proc.returncode != 0 and "catalog.remotes" in proc.stderr, proc.stdout + proc.stderr


def test_status_shows_remote_rows_without_heavy_imports(ws, tmp_path):
    write(ws.root, "a.txt", "a\n")
    ws.commit("one")
    ws.releases.create("ds", version="1.0.0")
    ws.add_remote("origin", str(tmp_path / "remote"))
    ws.close()
    code = ("import json, sys\n"
            "from workspace.api import Workspace\n"
            "rows = Workspace.open(sys.argv[1]).status().remotes\n"
            f"print(json.dumps({{'rows': rows, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n")
    proc = _python(code, ws.root)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["heavy"] == []
    assert [(r["remote"], r["releases_not_pushed"]) for r in out["rows"]] == [("origin", ["ds@1.0.0"])]
