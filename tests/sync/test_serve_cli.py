"""``ws serve`` and ``ws serve token ...`` through the real CLI: a `ws serve` process on a free loopback port,
real ws client processes, nothing mocked. Readiness is the server's 'listening on URL' line."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sync.remote import pack_key
from tests.conftest import ws_exe
from tests.sync.remote_objects import sealed_pack
from tests.sync.server_helpers import ServeProcess, cli_token
from tests.sync.test_credentials import keyring_dir  # noqa: F401  (a fixture)
from tests.sync.test_push_pull import release, tree
from tests.sync.test_server_e2e import _digests, dataset
from workspace.api import Workspace


@pytest.fixture
def clean_env(monkeypatch):
    """No token or remote secrets inherited from the environment running the tests."""
    for name in list(os.environ):
        if name.startswith(("WS_REMOTE_", "WS_TOKEN", "WS_SERVE_ROOT")):
            monkeypatch.delenv(name)


@pytest.fixture
def served(tmp_path, clean_env):
    """A `ws serve` process on a fresh root, with a reader, a writer and an admin token made by the CLI."""
    root = tmp_path / "server-root"
    tokens = {role: cli_token(root, role, f"{role}-ann") for role in ("reader", "writer", "admin")}
    server = ServeProcess(root)
    server.tokens = tokens
    yield server
    server.stop()


def project(tmp_path: Path, name: str, files: dict, version: str = "1.0.0", title: str = "ds") -> Path:
    """A closed workspace holding release title@version of ``files``."""
    with Workspace.init(tmp_path / name) as ws:
        release(ws, files, version, name=title)
    return tmp_path / name


def test_token_create_list_revoke_through_the_cli(tmp_path, run_ws, clean_env):
    root = tmp_path / "root"
    made = run_ws(tmp_path, "serve", "token", "create", "--root", root, "--role", "writer", "--titles", "raw-*",
                  "--titles", "qc-*,ref", "ann")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("wst_") and len(token) == 47
    assert "for releases raw-*, qc-*, ref" in made.stdout
    cli_token(root, "reader", "ci")
    listed = run_ws(tmp_path, "serve", "token", "list", "--root", root, "--json")
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["role"], r["titles"]) for r in rows] == [("ann", "writer", ["raw-*", "qc-*", "ref"]),
                                                                    ("ci", "reader", [])]
    assert token not in listed.stdout and token not in (root / ".ws-server" / "tokens.json").read_text()
    human = run_ws(tmp_path, "serve", "token", "list", "--root", root)
    assert "ann" in human.stdout and "writer" in human.stdout and token not in human.stdout
    by_env = run_ws(tmp_path, "serve", "token", "list", "--json", env={"WS_SERVE_ROOT": str(root)})
    assert json.loads(by_env.stdout) == rows
    revoked = run_ws(tmp_path, "serve", "token", "revoke", "--root", root, "ann")
    assert revoked.returncode == 0 and revoked.stdout == "revoked writer token 'ann'\n"
    assert [r["name"] for r in json.loads(run_ws(tmp_path, "serve", "token", "list", "--root", root,
                                                 "--json").stdout)] == ["ci"]
    # bad input: one line, the documented exit code
    for args, code, line in [
        (("create", "--root", root, "--role", "owner", "x"), 2,
         "ws: error: invalid role 'owner': choose one of reader, writer, admin\n"),
        (("create", "--root", root, "--role", "reader", "ci"), 8,
         "ws: error: a token named 'ci' exists already; revoke it first or choose another name\n"),
        (("revoke", "--root", root, "nobody"), 4, "ws: error: no token named 'nobody' (tokens: ci)\n"),
        (("create", "--root", root, "--role", "reader", "--titles", "a b", "x"), 2,
         "ws: error: invalid title pattern 'a b': a glob such as 'raw-*'\n"),
        (("list", "--root", root / ".ws-server" / "tokens.json"), 2,
         f"ws: error: {root / '.ws-server' / 'tokens.json'} is not a folder: give the server's root folder "
         "(--root)\n"),
    ]:
        got = run_ws(tmp_path, "serve", "token", *args)
        assert (got.returncode, got.stderr) == (code, line), args


def test_revoke_on_a_root_without_tokens_creates_nothing(tmp_path, run_ws, clean_env):
    root = tmp_path / "nothing-here"
    got = run_ws(tmp_path, "serve", "token", "revoke", "--root", root, "ann")
    assert (got.returncode, got.stderr) == (4, "ws: error: no token named 'ann' (tokens: none)\n")
    assert not root.exists()


def test_a_failed_token_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    from sync.server import tokens

    root = tmp_path / "root"
    tokens.create_token(root, "ci", "reader")

    def fails(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tokens.os, "fsync", fails)
    with pytest.raises(OSError):
        tokens.create_token(root, "ann", "writer")
    monkeypatch.undo()
    assert sorted(p.name for p in (root / ".ws-server").iterdir()) == ["tokens.json", "tokens.lock"]
    assert [t.name for t in tokens.list_tokens(root)] == ["ci"]


def test_serve_refuses_what_it_cannot_use_in_one_line(tmp_path, run_ws, clean_env, tls_files, monkeypatch):
    monkeypatch.setenv("GRPC_VERBOSITY", "ERROR")  # gRPC's own error lines must not show (what a grpc client sets)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cert, key = tls_files
    cases = [
        (("--root", a_file), f"ws: error: cannot serve {a_file}: not a folder\n"),
        (("--root", tmp_path / "r", "--tls-cert", tmp_path / "no.crt", "--tls-key", key),
         f"ws: error: cannot read the TLS file {tmp_path / 'no.crt'} (--tls-cert): No such file or directory\n"),
        (("--root", tmp_path / "r", "--tls-cert", cert), "ws: error: TLS needs both a certificate and its key "
                                                          "(--tls-cert and --tls-key)\n"),
        (("--root", tmp_path / "r", "--tls-cert", key, "--tls-key", key),
         f"ws: error: the TLS file {key} (--tls-cert) is not a PEM certificate\n"),
    ]
    for args, line in cases:
        got = run_ws(tmp_path, "serve", "--port", "0", *args)
        assert (got.returncode, got.stderr, got.stdout) == (10, line, ""), args
    missing = run_ws(tmp_path, "serve", "--port", "0")
    assert missing.returncode == 2 and "--root" in missing.stderr
    first = ServeProcess(tmp_path / "one")
    try:
        port = first.url.rsplit(":", 1)[1]
        taken = run_ws(tmp_path, "serve", "--root", tmp_path / "two", "--port", port)
        assert (taken.returncode, taken.stderr) == (
            10, f"ws: error: cannot listen on 127.0.0.1:{port}: the port is in use\n")
        elsewhere = run_ws(tmp_path, "serve", "--root", tmp_path / "two", "--host", "192.0.2.1", "--port", "50999")
        assert (elsewhere.returncode, elsewhere.stderr) == (
            10, "ws: error: cannot listen on 192.0.2.1:50999: the address is not one of this machine's\n")
        again = run_ws(tmp_path, "serve", "--root", tmp_path / "one", "--port", "0")
        assert (again.returncode, again.stderr) == (10, f"ws: error: another ws server is serving "
                                                        f"{tmp_path / 'one'}\n")
    finally:
        code, log = first.stop(signal.SIGINT)
    assert code == 0 and "stopped" in log


@pytest.mark.slow  # a dozen ws processes on 2 busy cores
def test_reader_writer_and_admin_through_the_real_cli(served, tmp_path, run_ws, keyring_dir):  # noqa: F811
    src = project(tmp_path, "src", dataset(11))
    assert run_ws(src, "remote", "add", "team", served.url).returncode == 0
    none = run_ws(src, "push")
    assert none.returncode == 11 and none.stderr.count("\n") == 1
    assert none.stderr.startswith("ws: error: remote 'team' needs credentials (token missing)")
    wrong = run_ws(src, "push", env={"WS_TOKEN": "wst_not-a-token"})
    assert (wrong.returncode, wrong.stderr) == (11, "ws: error: remote team: unknown or revoked token; run "
                                                    "'ws login team' or set WS_TOKEN\n")
    login = subprocess.run([*ws_exe(), "login", "team", "--stdin"], cwd=src, capture_output=True, text=True,
                           input=f"token={served.tokens['reader']}\n", timeout=120)
    assert login.returncode == 0, login.stderr
    as_reader = run_ws(src, "push")  # the keyring's token
    assert (as_reader.returncode, as_reader.stderr) == (
        11, "ws: error: remote team: permission denied (role reader cannot push)\n")
    status = json.loads(run_ws(src, "status", "--json").stdout)
    assert status["remotes"][0]["releases_not_pushed"] == ["ds@1.0.0"]
    pushed = run_ws(src, "push", "--json", env={"WS_TOKEN": served.tokens["writer"]})
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["pushed"] == ["ds@1.0.0"]
    status = json.loads(run_ws(src, "status", "--json").stdout)
    assert status["remotes"][0]["releases_not_pushed"] == []
    listed = run_ws(src, "remote", "releases", "team", "--json")  # the keyring's reader token
    assert listed.returncode == 0, listed.stderr
    assert [(r["title"], r["version"]) for r in json.loads(listed.stdout)] == [("ds", "1.0.0")]
    fsck = run_ws(src, "fsck", "--remote", "team", "--read-data")
    assert fsck.returncode == 0, fsck.stderr + fsck.stdout
    clone = run_ws(tmp_path, "clone", served.url, "ds@1.0.0", tmp_path / "copy",
                   env={"WS_TOKEN": served.tokens["reader"]})
    assert clone.returncode == 0, clone.stderr
    assert tree(tmp_path / "copy") == tree(src)
    with Workspace.open(src) as ws:  # a second version, pushed by the admin
        release(ws, {"extra.txt": "more\n"}, "1.1.0")
    admin = run_ws(src, "push", env={"WS_TOKEN": served.tokens["admin"]})
    assert admin.returncode == 0, admin.stderr
    pulled = run_ws(tmp_path / "copy", "pull", "origin", "ds@1.1.0", env={"WS_TOKEN": served.tokens["reader"]})
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "copy" / "extra.txt").read_text() == "more\n"
    # a revoked token is refused at the next request, without a restart
    assert run_ws(tmp_path, "serve", "token", "revoke", "--root", served.root, "reader-ann").returncode == 0
    refused = run_ws(src, "remote", "releases", "team")
    assert (refused.returncode, refused.stderr) == (11, "ws: error: remote team: unknown or revoked token; run "
                                                        "'ws login team' or set WS_TOKEN\n")
    code, log = served.stop()
    assert code == 0
    for role, token in served.tokens.items():
        assert token not in log
    requests = [x for x in log.splitlines() if " rpc=" in x]
    assert requests and all(" token=" in x for x in requests)
    assert any("rpc=UploadPack token=writer-ann role=writer" in x for x in requests)
    assert any("token=reader-ann role=reader" in x and "status=PERMISSION_DENIED" in x for x in requests)
    assert any("rpc=PutRelease token=admin-ann role=admin" in x and "status=OK" in x for x in requests)
    assert any("token=- " in x or "token=-" in x for x in requests if "UNAUTHENTICATED" in x)


@pytest.mark.slow
def test_title_patterns_through_the_real_cli(served, tmp_path, run_ws):
    raw_writer = cli_token(served.root, "writer", "raw-writer", "--titles", "raw-*")
    raw_reader = cli_token(served.root, "reader", "raw-reader", "--titles", "raw-*")
    raw = project(tmp_path, "raw", {"a.csv": "1\n"}, title="raw-a")
    other = project(tmp_path, "other", {"b.csv": "2\n"}, title="qc")
    for src in (raw, other):
        assert run_ws(src, "remote", "add", "team", served.url).returncode == 0
    ok = run_ws(raw, "push", env={"WS_TOKEN": raw_writer})
    assert ok.returncode == 0, ok.stderr
    refused = run_ws(other, "push", env={"WS_TOKEN": raw_writer})
    assert refused.returncode == 11
    assert refused.stderr.startswith("ws: error: remote team: permission denied") and "qc" in refused.stderr
    assert run_ws(other, "push", env={"WS_TOKEN": served.tokens["writer"]}).returncode == 0
    seen = run_ws(raw, "remote", "releases", "team", "--json", env={"WS_TOKEN": raw_reader})
    assert [r["title"] for r in json.loads(seen.stdout)] == ["raw-a"]
    everything = run_ws(raw, "remote", "releases", "team", "--json", env={"WS_TOKEN": served.tokens["reader"]})
    assert sorted(r["title"] for r in json.loads(everything.stdout)) == ["qc", "raw-a"]
    hidden = run_ws(tmp_path, "clone", served.url, "qc@1.0.0", tmp_path / "qc-copy", env={"WS_TOKEN": raw_reader})
    assert hidden.returncode != 0 and hidden.stderr.count("\n") == 1 and not (tmp_path / "qc-copy" / "b.csv").exists()


@pytest.mark.slow
def test_tls_with_a_self_signed_certificate_through_the_real_cli(tmp_path, run_ws, clean_env, tls_files):
    cert, key = tls_files
    root = tmp_path / "root"
    writer, reader = cli_token(root, "writer", "ann"), cli_token(root, "reader", "ci")
    server = ServeProcess(root, "--tls-cert", cert, "--tls-key", key)
    try:
        assert server.url.startswith("grpcs://127.0.0.1:")
        src = project(tmp_path, "src", dataset(12))
        assert run_ws(src, "remote", "add", "team", server.url, "-o", f"ca_cert={cert}").returncode == 0
        pushed = run_ws(src, "push", env={"WS_TOKEN": writer})
        assert pushed.returncode == 0, pushed.stderr
        clone = run_ws(tmp_path, "clone", server.url, "ds", tmp_path / "copy", "-o", f"ca_cert={cert}",
                       env={"WS_TOKEN": reader})
        assert clone.returncode == 0, clone.stderr
        assert tree(tmp_path / "copy") == tree(src)
        untrusted = run_ws(tmp_path, "clone", server.url, "ds", tmp_path / "nope", env={"WS_TOKEN": reader})
        assert untrusted.returncode == 10 and untrusted.stderr.count("\n") == 1
    finally:
        code, log = server.stop()
    assert code == 0 and writer not in log and reader not in log and "token=ann role=writer" in log


CLIENT = """set -e
cd {src}
{ws} push -q origin {own}@1.0.0
{ws} clone -q {url} {other}@1.0.0 {clone}
"""


@pytest.mark.slow  # 8 clients, each two ws processes, on 2 busy cores
def test_eight_ws_clients_push_and_pull_different_releases_at_once(served, tmp_path):
    base = Workspace.init(tmp_path / "base")
    base.add_remote("origin", served.url)
    for i in range(8):  # what the clients will clone: pushed before they start
        if i:
            for p in (base.root / f"pulled{i - 1}").rglob("*"):
                if p.is_file():
                    p.unlink()
        release(base, {f"pulled{i}/{k}": v for k, v in dataset(300 + i).items()}, "1.0.0", name=f"base{i}")
    base.close()
    env = dict(os.environ, WS_TOKEN=served.tokens["writer"])
    assert subprocess.run([*ws_exe(), "push", "-q"], cwd=tmp_path / "base", env=env, timeout=600).returncode == 0
    sources = {}
    for i in range(8):
        files = dict(dataset(400 + i), **{"common.txt": "the same in every release\n" * 1000})
        src = project(tmp_path / f"client{i}", "src", files, title=f"own{i}")
        with Workspace.open(src) as ws:
            ws.add_remote("origin", served.url)
        sources[i] = files
    ws = " ".join(shlex.quote(x) for x in ws_exe())
    procs = [subprocess.Popen(["bash", "-c", CLIENT.format(src=tmp_path / f"client{i}" / "src", ws=ws,
                                                           own=f"own{i}", url=served.url, other=f"base{(i + 1) % 8}",
                                                           clone=tmp_path / f"client{i}" / "clone")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(8)]
    results = [(p, *p.communicate(timeout=900)) for p in procs]
    for i, (proc, _out, err) in enumerate(results):
        assert proc.returncode == 0, f"client {i}: {err}"
        j = (i + 1) % 8
        assert _digests(tree(tmp_path / f"client{i}" / "clone")) == _digests(
            {f"pulled{j}/{k}": v for k, v in dataset(300 + j).items()})
    assert len(list((served.root / "releases").glob("*/*.json"))) == 16
    assert os.listdir(served.root / ".ws-server" / "tmp") == []
    for i in (0, 5):  # each client's own release, read back through the server
        check = subprocess.run([*ws_exe(), "clone", "-q", served.url, f"own{i}", str(tmp_path / f"check{i}")],
                               env=dict(env, WS_TOKEN=served.tokens["reader"]), capture_output=True, text=True,
                               timeout=600)
        assert check.returncode == 0, check.stderr
        assert _digests(tree(tmp_path / f"check{i}")) == _digests(sources[i])
    fsck = subprocess.run([*ws_exe(), "fsck", "--remote", "origin", "--read-data"], cwd=tmp_path / "check5",
                          env=dict(env, WS_TOKEN=served.tokens["reader"]), capture_output=True, text=True,
                          timeout=600)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


KILLED = textwrap.dedent("""
    import sys, grpc
    from sync.server import ws_pb2, ws_pb2_grpc
    key, path, size, address, token = sys.argv[1:6]
    def stream():
        yield ws_pb2.PutRequest(header=ws_pb2.PutHeader(key=key, size=int(size)))
        with open(path, "rb") as f:
            for i in range(3):
                yield ws_pb2.PutRequest(data=f.read(1 << 20))
        print("sent", flush=True)
        sys.stdin.readline()  # never answered: the test kills us here, mid-stream
    stub = ws_pb2_grpc.RemoteStub(grpc.insecure_channel(address))
    stub.UploadPack(stream(), metadata=(("authorization", "Bearer " + token),))
""")


def test_a_client_killed_mid_upload_leaves_nothing_and_ws_serve_keeps_serving(served, tmp_path, run_ws):
    pack_id, path, _ = sealed_pack(tmp_path, *(os.urandom(1 << 20) for _ in range(8)))
    proc = subprocess.Popen([sys.executable, "-c", KILLED, pack_key(pack_id), path, str(os.path.getsize(path)),
                             served.url.split("://")[1], served.tokens["writer"]],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "sent\n"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        proc.stdin.close()
        proc.stdout.close()
    line = served.wait_for_log("rpc=UploadPack token=writer-ann")
    assert "status=CANCELLED" in line or "status=INVALID_ARGUMENT" in line, line
    assert list(served.root.glob("packs/*/*")) == [] and list(served.root.glob("index/*")) == []
    assert os.listdir(served.root / ".ws-server" / "tmp") == []
    src = project(tmp_path, "src", dataset(13))  # and the next client is served
    assert run_ws(src, "remote", "add", "team", served.url).returncode == 0
    pushed = run_ws(src, "push", env={"WS_TOKEN": served.tokens["writer"]})
    assert pushed.returncode == 0, pushed.stderr
    code, log = served.stop()
    assert code == 0 and served.tokens["writer"] not in log
