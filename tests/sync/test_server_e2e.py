"""Push, pull and clone through a real ws server: the API, the ws CLI, TLS, a server process, 8 clients at once."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sync.errors import RejectedCredentials, TransientError
from tests.conftest import data_packs, ws_exe
from tests.sync.server_helpers import server_process
from tests.sync.test_credentials import keyring_dir  # noqa: F401  (a fixture)
from tests.sync.test_push_pull import release, tree
from workspace.api import Workspace


@pytest.fixture
def token_env(monkeypatch):
    """Set WS_TOKEN for this process (what ws reads when no keyring entry or WS_REMOTE_* is set)."""
    for name in list(os.environ):
        if name.startswith(("WS_REMOTE_", "WS_TOKEN")):
            monkeypatch.delenv(name)
    return lambda token: monkeypatch.setenv("WS_TOKEN", token)


def dataset(seed: int) -> dict[str, bytes]:
    """A few files, one of them several chunks long; ``seed`` makes them differ."""
    rnd = random.Random(seed)
    return {"data/big.bin": rnd.randbytes(3_000_000), "data/table.csv": f"x,y\n{seed},2\n" * 500,
            "README": f"release {seed}\n"}


def test_push_through_the_server_then_clone_its_root_as_a_folder_remote(ws, ws_server, token_env, tmp_path):
    release(ws, dataset(1), "1.0.0")
    token_env(ws_server.tokens["writer"])
    ws.add_remote("origin", ws_server.url)
    result = ws.push()
    assert result.pushed == ["ds@1.0.0"] and result.packs_uploaded >= 1
    clone = Workspace.clone(str(ws_server.root), "ds@1.0.0", tmp_path / "from-folder")
    try:
        assert tree(clone.root) == tree(ws.root) and clone.status().clean
        assert clone.fsck_remote("origin", read_data=True).ok
    finally:
        clone.close()
    token_env(ws_server.tokens["reader"])
    clone = Workspace.clone(ws_server.url, "ds", tmp_path / "from-server")
    try:
        assert tree(clone.root) == tree(ws.root)
        assert clone.remote_releases("origin")[0]["version"] == "1.0.0"
    finally:
        clone.close()


def test_push_and_clone_ask_the_server_instead_of_reading_indexes(ws, ws_server, token_env, tmp_path, caplog):
    token_env(ws_server.tokens["writer"])
    ws.add_remote("origin", ws_server.url)
    for i in range(3):
        release(ws, {f"part{i}.bin": os.urandom(500_000)}, f"1.{i}.0")
        ws.push()
    caplog.set_level(logging.INFO, logger="ws.server")
    release(ws, {"new.bin": os.urandom(400_000)}, "2.0.0")
    assert ws.push().pushed == ["ds@2.0.0"]
    other = Workspace.init(tmp_path / "other")  # a client whose catalog knows nothing of the remote
    try:
        other.add_remote("origin", ws_server.url)
        for path, data in tree(ws.root).items():
            (other.root / path).parent.mkdir(parents=True, exist_ok=True)
            (other.root / path).write_bytes(data)
        other.commit("same files")
        other.releases.create("ds", version="3.0.0")
        assert other.push().chunks_uploaded == 0  # every chunk is there already: only the record goes up
    finally:
        other.close()
    clone = Workspace.clone(ws_server.url, "ds@3.0.0", tmp_path / "clone")
    clone.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "ws.server"]
    assert any(line.startswith("rpc=MissingChunks") for line in lines)
    assert any(line.startswith("rpc=LocateChunks") for line in lines)
    read_indexes = [line for line in lines if line.startswith(("rpc=Read", "rpc=List")) and "key=index/" in line]
    assert not read_indexes, "a client read or listed the indexes"


@pytest.mark.slow  # several ws processes on 2 busy cores
def test_the_ws_cli_pushes_clones_and_checks_through_the_server(ws, ws_server, run_ws, keyring_dir,  # noqa: F811
                                                                 token_env, tmp_path):
    release(ws, dataset(2), "1.0.0")
    ws.close()
    assert run_ws(ws.root, "remote", "add", "origin", ws_server.url).returncode == 0
    no_token = run_ws(ws.root, "push")
    assert no_token.returncode == 11
    assert no_token.stderr.strip().startswith("ws: error: remote 'origin' needs credentials (token missing)")
    assert "WS_TOKEN" in no_token.stderr and "\n" not in no_token.stderr.strip()
    wrong = run_ws(ws.root, "push", env={"WS_TOKEN": "wst_wrong"})
    assert wrong.returncode == 11
    assert wrong.stderr == ("ws: error: remote origin: unknown or revoked token; run 'ws login origin' "
                            "or set WS_TOKEN\n")
    login = subprocess.run([*ws_exe(), "login", "origin", "--stdin"], cwd=ws.root, capture_output=True, text=True,
                           input=f"token={ws_server.tokens['reader']}\n", timeout=120)
    assert login.returncode == 0, login.stderr
    as_reader = run_ws(ws.root, "push")  # the keyring's token: a reader
    assert as_reader.returncode == 11
    assert as_reader.stderr == "ws: error: remote origin: permission denied (role reader cannot push)\n"
    pushed = run_ws(ws.root, "push", "--json", env={"WS_TOKEN": ws_server.tokens["writer"]})
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["pushed"] == ["ds@1.0.0"]
    status = run_ws(ws.root, "status", "--json")
    assert json.loads(status.stdout)["remotes"][0]["releases_not_pushed"] == []
    fsck = run_ws(ws.root, "fsck", "--remote", "origin", "--read-data")
    assert fsck.returncode == 0, fsck.stderr + fsck.stdout
    clone = run_ws(tmp_path, "clone", ws_server.url, "ds@1.0.0", tmp_path / "copy",
                   env={"WS_TOKEN": ws_server.tokens["reader"]})
    assert clone.returncode == 0, clone.stderr
    assert tree(tmp_path / "copy") == tree(ws.root)


def test_grpcs_with_a_self_signed_certificate(ws, ws_server_tls, token_env, tmp_path):
    assert ws_server_tls.url.startswith("grpcs://127.0.0.1:")
    release(ws, dataset(3), "1.0.0")
    token_env(ws_server_tls.tokens["writer"])
    ws.add_remote("secure", ws_server_tls.url, {"ca_cert": ws_server_tls.ca_cert})
    assert ws.push("secure").pushed == ["ds@1.0.0"]
    token_env(ws_server_tls.tokens["reader"])
    clone = Workspace.clone(ws_server_tls.url, "ds", tmp_path / "copy", options={"ca_cert": ws_server_tls.ca_cert})
    try:
        assert tree(clone.root) == tree(ws.root)
    finally:
        clone.close()
    from sync.storage import open_backend

    untrusting = open_backend(ws_server_tls.url, {"token": ws_server_tls.tokens["reader"]}, label="secure",
                              retries=1)
    with pytest.raises(TransientError, match="remote secure"):  # the system's roots do not know our certificate
        untrusting.list("releases/")
    plain = open_backend(ws_server_tls.url.replace("grpcs", "grpc"), {"token": ws_server_tls.tokens["reader"]},
                         retries=1)
    with pytest.raises(TransientError):
        plain.list("releases/")


def test_the_server_runs_as_python_m_sync_server(ws, tmp_path, token_env):
    root = tmp_path / "root"
    made = subprocess.run([sys.executable, "-m", "sync.server", "token", "create", "--root", str(root),
                           "--role", "writer", "ci"], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    listed = subprocess.run([sys.executable, "-m", "sync.server", "token", "list", "--root", str(root), "--json"],
                            capture_output=True, text=True, timeout=120)
    assert [t["name"] for t in json.loads(listed.stdout)] == ["ci"] and token not in listed.stdout
    proc, url = server_process(root)
    try:
        release(ws, dataset(4), "1.0.0")
        token_env(token)
        ws.add_remote("origin", url)
        assert ws.push().pushed == ["ds@1.0.0"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "rpc=UploadPack token=ci role=writer" in err and token not in err
    assert (root / "releases" / "ds" / "1.0.0.json").is_file()


CLIENT = textwrap.dedent("""
    import hashlib, json, os, sys
    from workspace.api import Workspace
    work, url, push_title, pull_title = sys.argv[1:5]
    ws = Workspace.open(os.path.join(work, "src"))
    ws.add_remote("origin", url)
    pushed = ws.push("origin", push_title + "@1.0.0").pushed
    clone = Workspace.clone(url, pull_title + "@1.0.0", os.path.join(work, "clone"))
    files = {}
    for base, dirs, names in os.walk(clone.root):
        dirs[:] = [d for d in dirs if d != ".ws"]
        for name in names:
            p = os.path.join(base, name)
            files[os.path.relpath(p, clone.root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    print(json.dumps({"pushed": pushed, "files": files}))
""")


def _digests(files: dict[str, bytes]) -> dict[str, str]:
    import hashlib

    return {path: hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()
            for path, data in files.items()}


@pytest.mark.slow  # 8 client processes on 2 busy cores
def test_eight_clients_push_and_pull_different_releases_at_once(ws_server, tmp_path, token_env):
    """8 processes at once: each pushes its own release and clones another one pushed before; all verify."""
    token_env(ws_server.tokens["writer"])
    base = Workspace.init(tmp_path / "base")
    base.add_remote("origin", ws_server.url)
    for i in range(8):  # what the clients will pull: pushed before they start
        if i:
            shutil.rmtree(base.root / f"pulled{i - 1}")  # a release holds every tracked file: one set at a time
        release(base, {f"pulled{i}/{k}": v for k, v in dataset(100 + i).items()}, "1.0.0", name=f"base{i}")
    base.push()
    base.close()
    sources = {}
    for i in range(8):  # each client's own release: shared README-like content dedups across clients
        files = dict(dataset(200 + i), **{"common.txt": "the same in every release\n" * 1000})
        with Workspace.init(tmp_path / f"client{i}" / "src") as ws:
            release(ws, files, "1.0.0", name=f"own{i}")
        sources[i] = files
    procs = [subprocess.Popen([sys.executable, "-c", CLIENT, str(tmp_path / f"client{i}"), ws_server.url, f"own{i}",
                               f"base{(i + 1) % 8}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(8)]
    results = [(p, *p.communicate(timeout=600)) for p in procs]
    for i, (proc, out, err) in enumerate(results):
        assert proc.returncode == 0, f"client {i}: {err}"
        got = json.loads(out.strip().splitlines()[-1])
        assert got["pushed"] == [f"own{i}@1.0.0"]
        j = (i + 1) % 8
        assert got["files"] == _digests({f"pulled{j}/{k}": v for k, v in dataset(100 + j).items()})
    root = Path(ws_server.root)
    assert len(list((root / "releases").glob("*/*.json"))) == 16
    assert os.listdir(root / ".ws-server" / "tmp") == []
    check = Workspace.clone(str(root), "own3", tmp_path / "check")  # the root, as a folder remote
    try:
        assert _digests(tree(check.root)) == _digests(sources[3])
        assert check.fsck_remote("origin", read_data=True).ok
    finally:
        check.close()


def test_a_reader_cannot_push_through_the_api(ws, ws_server, token_env):
    release(ws, dataset(5), "1.0.0")
    token_env(ws_server.tokens["reader"])
    ws.add_remote("origin", ws_server.url)
    with pytest.raises(RejectedCredentials) as exc:
        ws.push()
    assert str(exc.value) == "remote origin: permission denied (role reader cannot push)"
    assert not (Path(ws_server.root) / "releases").exists()


def test_a_damaged_local_pack_is_named_as_local_damage_and_never_visible(ws, ws_server, token_env):
    """The client leaves the hashing to the server (verifies_packs); a refusal is still exit 6, naming the pack."""
    from sync.push import LocalChunkMissing
    from workspace.objects import packs

    release(ws, {"a.bin": os.urandom(50_000), "b.bin": os.urandom(60_000)}, "1.0.0")
    [pack] = data_packs(ws.store)  # (the commit's history objects have a pack of their own)
    first = packs.read_index(str(pack))[0]
    os.chmod(pack, 0o644)
    with open(pack, "r+b") as f:  # one bit of the first chunk's payload
        f.seek(first.offset + 100)
        b = f.read(1)
        f.seek(first.offset + 100)
        f.write(bytes([b[0] ^ 1]))
    token_env(ws_server.tokens["writer"])
    ws.add_remote("origin", ws_server.url)
    with pytest.raises(LocalChunkMissing) as exc:
        ws.push()
    assert exc.value.exit_code == 6 and "damaged" in str(exc.value) and "ws fsck" in str(exc.value)
    root = Path(ws_server.root)
    assert list(root.glob("packs/*/*")) == [] and list(root.glob("index/*")) == []
    assert os.listdir(root / ".ws-server" / "tmp") == []
