"""Credentials written into a URL are refused, and a URL's userinfo is never shown.

``ws remote add NAME https://user:SECRET@host/x`` used to store the secret in
``.ws/config.toml`` and print it back. Every test here runs the real ``ws``
and checks that the secret appears in no file under ``.ws/`` and in no byte of
stdout or stderr of any command that shows a URL.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import write

SECRET = "pa55-Secret-XYZ"
URLS = [
    f"https://alice:{SECRET}@127.0.0.1:9/data",
    f"s3://AKIAEXAMPLE:{SECRET}@bucket/prefix",
    f"simplecache::s3://AKIAEXAMPLE:{SECRET}@bucket/prefix",
    f"sftp://{SECRET}@host/srv/ds",  # a user name alone is still userinfo: refused too
]


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch, tmp_path):
    """No real keyring and no AWS variables reach the subprocesses."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for name in list(os.environ):
        if name.startswith(("AWS_", "WS_REMOTE_")):
            monkeypatch.delenv(name)


def _no_secret_anywhere(ws_root, *procs, planted=()):
    for proc in procs:
        assert SECRET not in proc.stdout and SECRET not in proc.stderr, (proc.args, proc.stdout, proc.stderr)
    for folder, _, files in os.walk(os.path.join(ws_root, ".ws")):
        for name in files:
            if name in planted:
                continue
            with open(os.path.join(folder, name), "rb") as f:
                assert SECRET.encode() not in f.read(), os.path.join(folder, name)


@pytest.mark.parametrize("url", URLS)
def test_remote_add_refuses_credentials_in_the_url(ws, run_ws, url):
    proc = run_ws(ws.root, "remote", "add", "origin", url)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("ws: error:") and proc.stderr.count("\n") == 1, proc.stderr
    assert "ws login origin" in proc.stderr and "WS_REMOTE_ORIGIN_" in proc.stderr
    if "s3://" in url:
        assert "AWS_ACCESS_KEY_ID" in proc.stderr and "AWS_SECRET_ACCESS_KEY" in proc.stderr
    listing, listing_json = run_ws(ws.root, "remote", "list"), run_ws(ws.root, "remote", "list", "--json")
    assert listing.stdout == "" and listing_json.stdout.strip() == "[]"
    _no_secret_anywhere(ws.root, proc, listing, listing_json)


def test_remote_add_refuses_credentials_in_an_option_url(ws, run_ws):
    proc = run_ws(ws.root, "remote", "add", "minio", "s3://bucket/ds",
                  "-o", f"endpoint_url=http://minio:{SECRET}@127.0.0.1:9000")
    assert proc.returncode == 2, proc.stderr
    assert "endpoint_url" in proc.stderr and "ws login minio" in proc.stderr
    _no_secret_anywhere(ws.root, proc)


@pytest.mark.parametrize("url", URLS[:2])
def test_clone_refuses_credentials_in_the_url(run_ws, tmp_path, url):
    target = tmp_path / "copy"
    proc = run_ws(tmp_path, "clone", url, "ds", target)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("ws: error:") and proc.stderr.count("\n") == 1, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert "WS_REMOTE_ORIGIN_" in proc.stderr and "ws login origin" in proc.stderr
    assert not target.exists()


def test_python_api_refuses_credentials_in_urls(ws, tmp_path):
    from workspace.api import clone

    for url in URLS:
        with pytest.raises(Exception) as info:
            ws.add_remote("r", url)
        assert info.value.exit_code == 2 and SECRET not in str(info.value)
        with pytest.raises(Exception) as info:
            clone(url, "ds", tmp_path / "c")
        assert info.value.exit_code == 2 and SECRET not in str(info.value)
    assert ws.remotes() == []


def test_a_secret_left_in_an_old_config_is_never_shown_and_never_used(ws, run_ws):
    """A config written before ws refused them: every command that shows or opens the remote hides it."""
    url = f"https://alice:{SECRET}@127.0.0.1:9/data"
    text = (ws.layout.ws_dir / "config.toml").read_text()
    text += f'\n[remote.origin]\nurl = "{url}"\n\n[remote.origin.options]\n\n[sync]\ndefault_remote = "origin"\n'
    (ws.layout.ws_dir / "config.toml").write_text(text)
    write(ws.root, "a.txt", "a")
    run_ws(ws.root, "commit", "-m", "a", check=True)
    run_ws(ws.root, "release", "create", "ds", "--version", "1.0.0", check=True)
    shown = [run_ws(ws.root, *args) for args in (
        ("remote", "list"), ("remote", "list", "--json"), ("status",), ("status", "--json"))]
    assert all(p.returncode == 0 for p in shown), [p.stderr for p in shown]
    assert "127.0.0.1:9/data" in shown[0].stdout and "127.0.0.1:9/data" in shown[1].stdout
    assert "127.0.0.1:9/data" in shown[3].stdout
    opened = [run_ws(ws.root, *args) for args in (
        ("push",), ("push", "origin", "ds@1.0.0"), ("pull", "origin", "ds"), ("remote", "releases", "origin"),
        ("fsck", "--remote", "origin"), ("fsck", "--remote", "origin", "--read-data"))]
    for proc in opened:
        assert proc.returncode == 2, (proc.args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "ws login origin" in proc.stderr, proc.stderr
        assert "ws remote remove origin" in proc.stderr
    login = run_ws(ws.root, "login", "origin", "--key", "token=t0k", "--json")
    forget = run_ws(ws.root, "login", "origin", "--forget", "--json")
    exists = run_ws(ws.root, "remote", "add", "origin", "https://127.0.0.1:9/other")
    assert exists.returncode == 8
    _no_secret_anywhere(ws.root, *shown, *opened, login, forget, exists, planted=("config.toml",))


def test_fsspec_errors_that_echo_a_url_are_redacted():
    from sync.storage.fsspec_backend import translate_error

    err = translate_error(OSError(f"Could not connect to the endpoint URL: 'https://k:{SECRET}@h:1/b'"), "origin")
    assert SECRET not in str(err) and "https://***@h:1/b" in str(err)


def test_the_error_boundary_redacts_every_url_in_a_message(capsys):
    from sync.errors import SyncError
    from workspace.cli.errors import run_guarded

    def fail():
        raise SyncError(f"remote x: s3fs said: cannot reach s3://AKIA:{SECRET}@bucket/p and "
                        f"'https://u:{SECRET}@h/x'")

    assert run_guarded(fail) == 10
    text = capsys.readouterr().err
    assert SECRET not in text and "s3://***@bucket/p" in text and "https://***@h/x" in text


def test_a_bug_traceback_is_redacted_too(cli, ws):
    """Not one of our errors (a bug): the traceback still shows, its message without the secret."""
    from workspace.cli import typer_app

    @typer_app.app.command("boom-for-test", hidden=True)
    def boom() -> None:
        raise RuntimeError(f"fsspec: cannot open 'https://u:{SECRET}@h/x'")

    try:
        result = cli(ws.root, "boom-for-test")
    finally:
        typer_app.app.registered_commands.pop()
    assert isinstance(result.exception, RuntimeError)
    assert SECRET not in str(result.exception) and "https://***@h/x" in str(result.exception)


def test_a_notify_url_with_credentials_is_refused_and_post_failures_hide_userinfo(tmp_path):
    """A job spec's notify.url is a URL ws takes too: the spec names the field, the secret never shows."""
    from workspace.jobs import notify
    from workspace.jobs.spec import InvalidSpec, Notify
    from workspace.jobs.specfile import load_spec

    write(tmp_path, "jobs/n.yaml", f"command: x\nnotify: {{url: 'https://hook:{SECRET}@127.0.0.1:9/x'}}\n")
    with pytest.raises(InvalidSpec) as info:
        load_spec(tmp_path / "jobs/n.yaml")
    assert "field 'notify.url'" in str(info.value) and SECRET not in str(info.value)
    # a Notify built in Python is not parsed from YAML: the failure it records still hides the userinfo
    problems = notify.send(Notify(on=["finished"], url=f"http://hook:{SECRET}@127.0.0.1:9/x"), {}, str(tmp_path))
    assert problems and all(SECRET not in p and "http://***@127.0.0.1:9/x" in p for p in problems), problems


@pytest.mark.parametrize("url", ["file:///srv/a@b/ds", "/srv/a@b/ds", "s3://bucket/ds@1.0/x", "memory://team",
                                 "simplecache::s3://bucket/p@q"])
def test_an_at_sign_outside_the_authority_is_not_a_credential(ws, url):
    from sync.urls import has_userinfo, redact

    assert not has_userinfo(url) and redact(url) == url
    assert ws.add_remote("r", url).url == url  # stored and shown as given
