"""Credentials: keyring storage (keyrings.alt file backend in a temp dir), env overrides, ws login."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from sync import credentials
from tests.conftest import ws_exe
from sync.errors import InvalidCredentials, MissingCredentials, UnknownRemote

SECRET = "s3cr3t-value-that-must-not-leak"


@pytest.fixture
def keyring_dir(tmp_path, monkeypatch):
    """A plaintext file keyring under a temp XDG_DATA_HOME, for this process and subprocesses."""
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    data = tmp_path / "xdg"
    data.mkdir()
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    for name in list(os.environ):
        if name.startswith(("AWS_", "WS_REMOTE_")):
            monkeypatch.delenv(name)
    previous = keyring.get_keyring()
    keyring.set_keyring(PlaintextKeyring())
    yield data
    keyring.set_keyring(previous)


@pytest.fixture
def remote_ws(ws, keyring_dir):
    """A workspace with an S3 remote and a folder remote configured as the sync work writes them."""
    cfg = dict(ws.config)
    cfg["remote"] = {
        "s3data": {"url": "s3://bucket/prefix", "options": {"endpoint_url": "http://127.0.0.1:1", "region": "x"}},
        "shelf": {"url": "file:///tmp/shelf", "options": {}},
        "public": {"url": "s3://open-data", "options": {"anon": True}},
    }
    ws.save_config(cfg)
    return ws


def test_missing_s3_credentials_name_the_remote_and_the_fix(keyring_dir):
    with pytest.raises(MissingCredentials) as info:
        credentials.resolve("s3data", "s3://bucket/x", {"region": "eu"})
    msg = str(info.value)
    assert info.value.exit_code == 11
    assert "'s3data'" in msg and "ws login s3data" in msg and "WS_REMOTE_S3DATA_" in msg
    assert "\n" not in msg


def test_remotes_without_secrets_resolve_to_their_options(keyring_dir):
    assert credentials.resolve("shelf", "/tmp/shelf", {"x": 1}) == {"x": 1}
    assert credentials.resolve("mem", "memory://a", None) == {}
    assert credentials.resolve("public", "s3://open", {"anon": True}) == {"anon": True}


def test_keyring_then_aws_env_then_ws_env(keyring_dir, monkeypatch):
    credentials.store_secrets("s3data", {"key": "KR-KEY", "secret": "KR-SECRET", "token": "KR-TOKEN"})
    opts = {"endpoint_url": "http://h"}
    assert credentials.resolve("s3data", "s3://b", opts) == {
        "endpoint_url": "http://h", "key": "KR-KEY", "secret": "KR-SECRET", "token": "KR-TOKEN"}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AWS-KEY")
    got = credentials.resolve("s3data", "s3://b", opts)
    assert got["key"] == "AWS-KEY" and got["secret"] == "KR-SECRET"
    monkeypatch.setenv("WS_REMOTE_S3DATA_KEY", "WS-KEY")
    monkeypatch.setenv("WS_REMOTE_S3DATA_SECRET", "WS-SECRET")
    got = credentials.resolve("s3data", "s3://b", opts)
    assert (got["key"], got["secret"], got["token"]) == ("WS-KEY", "WS-SECRET", "KR-TOKEN")
    # AWS_* apply to S3 remotes only
    assert credentials.resolve("shelf", "file:///x", {}) == {}


def test_env_name_of_remotes_with_symbols(keyring_dir, monkeypatch):
    assert credentials.env_prefix("team-data.eu") == "WS_REMOTE_TEAM_DATA_EU_"
    monkeypatch.setenv("WS_REMOTE_TEAM_DATA_EU_TOKEN", "t0k")
    assert credentials.resolve("team-data.eu", "ws://server:1234", {}) == {"token": "t0k"}


def test_env_credentials_work_without_any_keyring(monkeypatch, keyring_dir):
    import keyring
    from keyring.backends.fail import Keyring as FailKeyring

    keyring.set_keyring(FailKeyring())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "A")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "B")
    assert credentials.resolve("s3data", "s3://b", {})["secret"] == "B"
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(credentials.CredentialStoreError) as info:
        credentials.resolve("s3data", "s3://b", {})
    assert info.value.exit_code == 11 and "s3data" in str(info.value)


def test_rejected_credentials_message():
    err = credentials.rejected("s3data", "403 InvalidAccessKeyId")
    assert err.exit_code == 11
    assert str(err) == ("remote 's3data' rejected the credentials: 403 InvalidAccessKeyId; "
                        "run 'ws login s3data' or set WS_REMOTE_S3DATA_<KEY> environment variables")


def test_parse_pairs_and_stdin():
    assert credentials.parse_pairs(["KEY=a=b", "secret="]) == {"key": "a=b", "secret": ""}
    assert credentials.parse_stdin('{"Key": "k", "secret": "s"}') == {"key": "k", "secret": "s"}
    assert credentials.parse_stdin("# comment\nkey=k\nsecret=s\n") == {"key": "k", "secret": "s"}
    for bad in (["novalue"], ["bad key=x"], ["=x"]):
        with pytest.raises(InvalidCredentials):
            credentials.parse_pairs(bad)
    with pytest.raises(InvalidCredentials):
        credentials.parse_stdin("{not json")


def _files_under(path):
    for base, _, names in os.walk(path):
        for n in names:
            yield os.path.join(base, n)


def test_ws_login_stdin_stores_in_keyring_never_in_ws_dir(remote_ws, keyring_dir):
    payload = json.dumps({"key": "AKIAEXAMPLE", "secret": SECRET})
    res = subprocess.run([*ws_exe(), "login", "s3data", "--stdin", "--json"], cwd=remote_ws.root, input=payload,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["stored"] == ["key", "secret"]
    # the subprocess wrote the same file keyring this process reads
    got = credentials.resolve("s3data", "s3://bucket/prefix", {"region": "x"})
    assert got["secret"] == SECRET and got["key"] == "AKIAEXAMPLE"
    for f in _files_under(remote_ws.layout.ws_dir):
        with open(f, "rb") as fh:
            assert SECRET.encode() not in fh.read(), f
    assert SECRET not in res.stdout + res.stderr


def test_ws_login_prompts_with_hidden_input(remote_ws, cli, keyring_dir):
    res = cli(remote_ws.root, "login", "s3data", input=f"AKIAPROMPT\n{SECRET}\n\n")
    assert res.exit_code == 0, res.output
    assert SECRET not in res.output and "keyring" in res.output
    assert credentials.load_secrets("s3data") == {"key": "AKIAPROMPT", "secret": SECRET}


def test_ws_login_key_options(remote_ws, cli, keyring_dir):
    res = cli(remote_ws.root, "login", "shelf", "--key", "token=abc")
    assert res.exit_code == 0, res.output
    assert credentials.load_secrets("shelf") == {"token": "abc"}


@pytest.mark.parametrize(
    "args, code, text",
    [
        (["login", "nowhere", "--key", "token=x"], 4, "unknown remote 'nowhere'"),
        (["login", "s3data", "--key", "key=only"], 2, "needs secret"),
        (["login", "s3data", "--key", "oops"], 2, "KEY=VALUE"),
        (["login", "shelf", "--key", "token="], 2, "no secret given"),
    ],
)
def test_ws_login_errors(remote_ws, run_ws, args, code, text):
    res = run_ws(remote_ws.root, *args)
    assert res.returncode == code, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ws: error:") and text in lines[0]
    assert credentials.load_secrets("s3data") == {}


def test_remote_config_reads_the_remote_table(remote_ws):
    url, options = credentials.remote_config(remote_ws.config, "s3data")
    assert url == "s3://bucket/prefix" and options["region"] == "x"
    with pytest.raises(UnknownRemote) as info:
        credentials.remote_config(remote_ws.config, "nope")
    assert info.value.exit_code == 4 and "s3data" in str(info.value)


def test_forget_secrets(keyring_dir):
    credentials.store_secrets("r", {"token": "t"})
    assert credentials.forget_secrets("r") is True
    assert credentials.load_secrets("r") == {}
    assert credentials.forget_secrets("r") is False


def test_ws_login_forget(remote_ws, cli, keyring_dir):
    credentials.store_secrets("shelf", {"token": "t"})
    res = cli(remote_ws.root, "login", "shelf", "--forget")
    assert res.exit_code == 0 and "Removed" in res.output
    assert credentials.load_secrets("shelf") == {}
    res = cli(remote_ws.root, "login", "shelf", "--forget", "--json")
    assert json.loads(res.output)["removed"] is False
    assert cli(remote_ws.root, "login", "nope", "--forget").exit_code == 4


@pytest.mark.slow  # 3-5 s on 2 busy cores: several ws subprocesses against moto
def test_s3_remote_uses_keyring_credentials_over_http(ws, keyring_dir, s3_bucket, run_ws):
    """End to end on a moto S3 server: no credentials -> exit 11 naming the remote; after ws login it works."""
    bucket, options, _ = s3_bucket
    public = {k: v for k, v in options.items() if k not in ("key", "secret")}
    (ws.root / "a.txt").write_text("hello")
    ws.commit("a")
    ws.releases.create("ds", version="1.0.0")
    ws.add_remote("cloud", f"s3://{bucket}/team", public)
    res = run_ws(ws.root, "push", "cloud")
    assert res.returncode == 11, res.stderr
    line = res.stderr.strip()
    assert "\n" not in line and "'cloud'" in line and "ws login cloud" in line
    creds = json.dumps({"key": options["key"], "secret": options["secret"]})
    login = subprocess.run([*ws_exe(), "login", "cloud", "--stdin"], cwd=ws.root, input=creds,
                           capture_output=True, text=True, timeout=120)
    assert login.returncode == 0, login.stderr
    assert run_ws(ws.root, "push", "cloud").returncode == 0
    res = run_ws(ws.root, "remote", "releases", "cloud", "--json")
    assert res.returncode == 0, res.stderr
    assert "1.0.0" in res.stdout
    for f in _files_under(ws.layout.ws_dir):
        with open(f, "rb") as fh:
            assert options["secret"].encode() not in fh.read(), f
