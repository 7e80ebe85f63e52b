"""A remote URL whose scheme nothing can open is refused when it is added (exit 2), in one line."""

from __future__ import annotations

import pytest



def test_add_remote_refuses_an_unknown_scheme(ws):
    with pytest.raises(Exception) as exc:
        ws.add_remote("x", "nosuchscheme://a/b")
    assert getattr(exc.value, "exit_code", None) == 2
    message = str(exc.value)
    assert "nosuchscheme" in message and "\n" not in message
    for known in ("file", "memory", "s3", "gcs", "sftp"):
        assert known in message
    assert ws.remotes() == []


@pytest.mark.parametrize("url", ["memory://team", "s3://bucket/prefix", "file:///srv/ds", "relative/folder",
                                 "gcs://bucket/ds", "simplecache::s3://bucket/ds"])
def test_add_remote_accepts_schemes_we_or_fsspec_can_open(ws, url):
    info = ws.add_remote("r", url)
    assert info.name == "r"


@pytest.mark.parametrize("url", ["nosuchscheme://a/b", "simplecache::nosuch://b", "S4://bucket"])
def test_cli_remote_add_and_clone_with_an_unknown_scheme_exit_2(ws, run_ws, tmp_path, url):
    proc = run_ws(ws.root, "remote", "add", "x", url)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("ws: error:") and proc.stderr.count("\n") == 1
    assert "known:" in proc.stderr
    proc = run_ws(tmp_path, "clone", url, "ds", tmp_path / "copy")
    assert proc.returncode == 2, proc.stderr
    assert not (tmp_path / "copy").exists()
