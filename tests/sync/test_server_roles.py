"""Tokens and roles on a real ws server: every RPC with every role, title patterns, revocation, logs, health."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import threading

import grpc
import pytest

from sync.errors import ObjectExists, RejectedCredentials, SyncError
from sync.remote import index_bytes, index_key, pack_key
from sync.server import create_token, list_tokens, revoke_token, ws_pb2
from sync.server.tokens import InvalidTokenRequest, TokenExists, UnknownToken
from sync.storage import LocalFile
from sync.storage.grpc_backend import GrpcBackend
from tests.sync.remote_objects import record, sealed_pack

ROLES = ("reader", "writer", "admin")
LEVEL = {"reader": 0, "writer": 1, "admin": 2}


def client(server, token: str | None) -> GrpcBackend:
    """A client without retries (refusals are final): a token, None (no token) or a wrong one."""
    return GrpcBackend(server.url, {"token": token} if token else {}, label="origin")


@pytest.fixture
def seeded(ws_server, tmp_path):
    """The server holding one pack (+ index), a release, a marker and a plain object; returns (server, pack)."""
    admin = client(ws_server, ws_server.tokens["admin"])
    pack_id, path, entries = sealed_pack(tmp_path, os.urandom(200_000), b"second chunk" * 100)
    admin.put("ws-remote.json", json.dumps({"format": 1}).encode(), exclusive=True)
    admin.put(pack_key(pack_id), LocalFile(path))
    admin.put(index_key(pack_id), index_bytes(entries))
    admin.put("releases/ds/1.0.0.json", record("ds", "1.0.0", [e.id for e in entries]), exclusive=True)
    admin.put("notes/readme", b"plain object")
    return ws_server, (pack_id, path, entries)


# RPC name -> (least role, the call with a client `b`, role `r` and the seeded pack `p`)
CALLS = {
    "Stat": ("reader", lambda b, r, p: b.stat("releases/ds/1.0.0.json")),
    "Read": ("reader", lambda b, r, p: b.get(pack_key(p[0]), p[2][0].offset, p[2][0].offset + 10)),
    "List": ("reader", lambda b, r, p: b.list("")),
    "MissingChunks": ("reader", lambda b, r, p: b.missing_chunks([p[2][0].id, "ab" * 32])),
    "LocateChunks": ("reader", lambda b, r, p: b.locate_chunks([p[2][0].id])),
    "WhoAmI": ("reader", lambda b, r, p: b.whoami()),
    "UploadPack": ("writer", lambda b, r, p: b.put(pack_key(p[0]), LocalFile(p[1]))),
    "PutIndex": ("writer", lambda b, r, p: b.put(index_key(p[0]), index_bytes(p[2]))),
    "PutRelease": ("writer", lambda b, r, p: b.put(f"releases/ds/1.1.{LEVEL[r]}.json",
                                                   record("ds", f"1.1.{LEVEL[r]}", [p[2][1].id]), exclusive=True)),
    "PutObject": ("admin", lambda b, r, p: b.put(f"notes/{r}", b"x")),
    "Delete": ("admin", lambda b, r, p: b.delete("notes/readme")),
}


def test_the_matrix_covers_every_rpc_of_the_service():
    assert set(CALLS) == set(ws_pb2.DESCRIPTOR.services_by_name["Remote"].methods_by_name)


@pytest.mark.parametrize("rpc", sorted(CALLS))
def test_every_rpc_checks_the_role(seeded, rpc):
    server, pack = seeded
    least, call = CALLS[rpc]
    for role in ROLES:
        backend = client(server, server.tokens[role])
        if LEVEL[role] >= LEVEL[least]:
            call(backend, role, pack)  # allowed: no error
        else:
            with pytest.raises(RejectedCredentials) as exc:
                call(backend, role, pack)
            assert f"permission denied (role {role} cannot" in str(exc.value)
            assert exc.value.exit_code == 11


@pytest.mark.parametrize("rpc", sorted(CALLS))
def test_every_rpc_refuses_a_missing_or_wrong_token(seeded, rpc):
    server, pack = seeded
    _, call = CALLS[rpc]
    for token, why in ((None, "no token given"), ("wst_not-a-real-token", "unknown or revoked token")):
        with pytest.raises(RejectedCredentials) as exc:
            call(client(server, token), "admin", pack)
        assert str(exc.value) == f"remote origin: {why}; run 'ws login origin' or set WS_TOKEN"


def test_a_reader_is_told_it_cannot_push(seeded, tmp_path):
    server, _ = seeded
    pack_id, path, _ = sealed_pack(tmp_path, b"new data" * 1000)
    with pytest.raises(RejectedCredentials) as exc:
        client(server, server.tokens["reader"]).put(pack_key(pack_id), LocalFile(path))
    assert str(exc.value) == "remote origin: permission denied (role reader cannot push)"


def test_a_writer_cannot_overwrite_or_delete_a_published_release_and_an_admin_can(seeded):
    server, (_, _, entries) = seeded
    writer, admin = client(server, server.tokens["writer"]), client(server, server.tokens["admin"])
    other = record("ds", "1.0.0", [entries[0].id], description="changed")
    with pytest.raises(ObjectExists):
        writer.put("releases/ds/1.0.0.json", other, exclusive=True)
    with pytest.raises(RejectedCredentials, match=r"role writer cannot overwrite a published release \(ds@1.0.0\)"):
        writer.put("releases/ds/1.0.0.json", other)
    with pytest.raises(RejectedCredentials, match="role writer cannot delete"):
        writer.delete("releases/ds/1.0.0.json")
    writer.put("releases/ds/3.0.0.json", record("ds", "3.0.0"))  # a new one, even not create-only: fine
    admin.put("releases/ds/1.0.0.json", other)
    assert admin.get("releases/ds/1.0.0.json") == other
    admin.delete("releases/ds/1.0.0.json")
    assert admin.stat("releases/ds/1.0.0.json") is None


def test_ws_remote_json_is_create_only_for_writers(seeded):
    server, _ = seeded
    writer, admin = client(server, server.tokens["writer"]), client(server, server.tokens["admin"])
    with pytest.raises(ObjectExists):
        writer.put("ws-remote.json", b'{"format": 1}', exclusive=True)
    with pytest.raises(RejectedCredentials, match="role writer cannot overwrite ws-remote.json"):
        writer.put("ws-remote.json", b'{"format": 1}')
    admin.put("ws-remote.json", b'{"format": 1, "note": "admin"}')


def test_title_patterns_limit_what_a_token_lists_reads_and_pushes(seeded):
    server, (_, _, entries) = seeded
    token = create_token(server.root, "raw-writer", "writer", ["raw-*"])
    limited, admin = client(server, token), client(server, server.tokens["admin"])
    admin.put("releases/raw-a/1.0.0.json", record("raw-a", "1.0.0", [entries[0].id]))
    assert [o.key for o in limited.list("releases/")] == ["releases/raw-a/1.0.0.json"]
    assert limited.get("releases/raw-a/1.0.0.json")
    with pytest.raises(RejectedCredentials, match="limited to releases raw-\\*; ds is not one"):
        limited.get("releases/ds/1.0.0.json")
    with pytest.raises(RejectedCredentials, match="limited to releases raw-\\*"):
        limited.put("releases/ds/9.0.0.json", record("ds", "9.0.0"), exclusive=True)
    limited.put("releases/raw-b/1.0.0.json", record("raw-b", "1.0.0"), exclusive=True)
    assert limited.whoami() == {"name": "raw-writer", "role": "writer", "titles": ["raw-*"]}
    assert len(admin.list("releases/")) == 3


def test_the_health_service_answers_without_a_token(ws_server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(ws_server.url.split("://")[1]) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "ws.remote.v1.Remote"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_server_files_are_never_served_or_listed(seeded):
    server, _ = seeded
    admin = client(server, server.tokens["admin"])
    assert not [o.key for o in admin.list("") if o.key.startswith(".")]
    for key in (".ws-server/tokens.json", ".ws-server/chunks.db", "packs/.tmp-x"):
        with pytest.raises(SyncError, match="not served|not a pack key"):
            admin.get(key)
        with pytest.raises(SyncError):
            admin.put(key, b"{}")


# -- the token store ------------------------------------------------------------------------
def test_tokens_are_stored_hashed_in_a_private_file(tmp_path):
    token = create_token(tmp_path, "ann", "writer", ["raw-*"])
    path = tmp_path / ".ws-server" / "tokens.json"
    text = path.read_text()
    assert token.startswith("wst_") and len(token) > 40
    assert token not in text and hashlib.sha256(token.encode()).hexdigest() in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [info] = list_tokens(tmp_path)
    assert (info.name, info.role, info.titles) == ("ann", "writer", ["raw-*"])
    assert token not in json.dumps(info.to_dict())


def test_token_requests_that_cannot_be_used_are_refused(tmp_path):
    create_token(tmp_path, "ann", "reader")
    with pytest.raises(TokenExists):
        create_token(tmp_path, "ann", "writer")
    with pytest.raises(InvalidTokenRequest, match="invalid role"):
        create_token(tmp_path, "bob", "owner")
    with pytest.raises(InvalidTokenRequest, match="invalid token name"):
        create_token(tmp_path, "bad name", "reader")
    with pytest.raises(InvalidTokenRequest, match="invalid title pattern"):
        create_token(tmp_path, "bob", "reader", ["raw/*"])
    with pytest.raises(UnknownToken, match="no token named 'zed'"):
        revoke_token(tmp_path, "zed")
    assert [t.name for t in list_tokens(tmp_path)] == ["ann"]


def test_tokens_created_at_once_all_land(tmp_path):
    threads = [threading.Thread(target=create_token, args=(tmp_path, f"user{i}", "reader")) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [t.name for t in list_tokens(tmp_path)] == [f"user{i}" for i in range(8)]


def test_a_revoked_token_is_refused_at_once_by_the_running_server(ws_server):
    token = create_token(ws_server.root, "temp", "reader")
    backend = client(ws_server, token)
    assert backend.whoami()["name"] == "temp"
    revoke_token(ws_server.root, "temp")
    with pytest.raises(RejectedCredentials, match="unknown or revoked token"):
        backend.whoami()


def test_the_log_has_one_line_per_request_with_the_token_name_never_the_token(seeded, caplog):
    server, _ = seeded
    caplog.set_level(logging.INFO, logger="ws.server")
    client(server, server.tokens["writer"]).stat("releases/ds/1.0.0.json")
    with pytest.raises(RejectedCredentials):
        client(server, server.tokens["reader"]).delete("notes/readme")
    with pytest.raises(RejectedCredentials):
        client(server, "wst_wrong").list("")
    lines = [r.getMessage() for r in caplog.records if r.name == "ws.server"]
    assert len(lines) == 3
    assert lines[0].startswith("rpc=Stat token=writer-token role=writer key=releases/ds/1.0.0.json status=OK")
    assert "rpc=Delete token=reader-token role=reader" in lines[1] and "status=PERMISSION_DENIED" in lines[1]
    assert "rpc=List token=- role=-" in lines[2] and "status=UNAUTHENTICATED" in lines[2]
    for secret in [*server.tokens.values(), "wst_wrong"]:
        assert not any(secret in line for line in lines)
