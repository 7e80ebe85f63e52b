"""What a ws server lets become visible: only verified packs, their true indexes, and complete releases."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import tracemalloc

import grpc
import pytest

from sync.errors import SyncError
from sync.remote import index_bytes, index_key, pack_key
from sync.server import serve, ws_pb2, ws_pb2_grpc
from sync.storage import LocalFile, open_backend
from sync.storage.grpc_backend import GrpcBackend
from tests.sync.remote_objects import record, sealed_pack
from workspace.objects import packs


def writer(server) -> GrpcBackend:
    return GrpcBackend(server.url, {"token": server.tokens["writer"]}, label="origin")


def visible(server) -> list[str]:
    """Every key the server root holds (as a folder remote sees it)."""
    backend = open_backend(str(server.root))
    return [o.key for o in backend.list("") if not o.key.startswith(".ws-server/")]


def uploads_in_progress(server) -> list[str]:
    return os.listdir(server.root / ".ws-server" / "tmp")


class LogWatch(logging.Handler):
    """Sets an event when the server logs a request line containing ``needle``."""

    def __init__(self, needle: str):
        super().__init__()
        self.needle, self.event, self.lines = needle, threading.Event(), []

    def emit(self, record):
        line = record.getMessage()
        self.lines.append(line)
        if self.needle in line:
            self.event.set()


@pytest.fixture
def watch():
    logger = logging.getLogger("ws.server")
    handlers, level = [], logger.level

    def make(needle: str) -> LogWatch:
        handler = LogWatch(needle)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        handlers.append(handler)
        return handler

    yield make
    for h in handlers:
        logger.removeHandler(h)
    logger.setLevel(level)


def test_a_verified_pack_and_its_index_become_visible_together(ws_server, tmp_path):
    pack_id, path, entries = sealed_pack(tmp_path, os.urandom(100_000), b"abc" * 1000)
    writer(ws_server).put(pack_key(pack_id), LocalFile(path))
    assert visible(ws_server) == [index_key(pack_id), pack_key(pack_id)]  # the server wrote the index too
    assert (ws_server.root / index_key(pack_id)).read_bytes() == index_bytes(entries)
    writer(ws_server).put(index_key(pack_id), index_bytes(entries))  # what push sends next: accepted, no change
    assert writer(ws_server).missing_chunks([e.id for e in entries]) == []


def test_a_damaged_pack_is_refused_and_nothing_is_left(ws_server, tmp_path):
    pack_id, path, entries = sealed_pack(tmp_path, os.urandom(100_000), b"abc" * 1000)
    data = bytearray(open(path, "rb").read())
    data[entries[0].offset + 500] ^= 0xFF  # one bit of one chunk
    damaged = tmp_path / "damaged.pack"
    damaged.write_bytes(data)
    with pytest.raises(SyncError, match=f"pack {pack_id[:12]} fails verification: damaged chunk"):
        writer(ws_server).put(pack_key(pack_id), LocalFile(str(damaged)))
    assert visible(ws_server) == [] and uploads_in_progress(ws_server) == []


def test_a_pack_under_another_id_is_refused(ws_server, tmp_path):
    pack_id, path, _ = sealed_pack(tmp_path, b"real content" * 100)
    other = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(SyncError, match="its index does not match the pack id"):
        writer(ws_server).put(pack_key(other), LocalFile(path))
    with pytest.raises(SyncError, match="not a pack key"):
        writer(ws_server).put(f"packs/zz/{pack_id}", LocalFile(path))
    assert visible(ws_server) == []


def test_indexes_must_hash_to_their_id_and_match_their_pack(ws_server, tmp_path):
    pack_id, path, entries = sealed_pack(tmp_path, b"one" * 1000, b"two" * 1000)
    other_id, _, other_entries = sealed_pack(tmp_path, b"three" * 1000)
    with pytest.raises(SyncError, match=f"upload pack {pack_id[:12]} first"):
        writer(ws_server).put(index_key(pack_id), index_bytes(entries))
    with pytest.raises(SyncError, match="do not hash to the pack id"):
        writer(ws_server).put(index_key(pack_id), index_bytes(other_entries))
    assert visible(ws_server) == []


def test_a_release_naming_chunks_the_server_lacks_is_refused(ws_server, tmp_path):
    pack_id, path, entries = sealed_pack(tmp_path, b"held" * 1000)
    w = writer(ws_server)
    w.put(pack_key(pack_id), LocalFile(path))
    lacking = hashlib.sha256(b"never uploaded").hexdigest()
    with pytest.raises(SyncError, match=f"names 1 chunk.* this server does not hold \\(first {lacking[:12]}\\)"):
        w.put("releases/ds/1.0.0.json", record("ds", "1.0.0", [entries[0].id, lacking]), exclusive=True)
    with pytest.raises(SyncError, match="must hold the record of ds@2.0.0"):
        w.put("releases/ds/2.0.0.json", record("ds", "1.0.0", [entries[0].id]), exclusive=True)
    with pytest.raises(SyncError, match="not a release record"):
        w.put("releases/ds/2.0.0.json", b"{not json", exclusive=True)
    with pytest.raises(SyncError, match="not a release key"):
        w.put("releases/ds/latest.json", record("ds", "latest"), exclusive=True)
    w.put("releases/ds/1.0.0.json", record("ds", "1.0.0", [entries[0].id]), exclusive=True)
    assert [k for k in visible(ws_server) if k.startswith("releases/")] == ["releases/ds/1.0.0.json"]


def test_ws_remote_json_must_be_a_format_this_server_stores(ws_server):
    w = writer(ws_server)
    with pytest.raises(SyncError, match="JSON object with an integer 'format'"):
        w.put("ws-remote.json", b"hello", exclusive=True)
    with pytest.raises(SyncError, match="format 99 is not one this server stores"):
        w.put("ws-remote.json", b'{"format": 99}', exclusive=True)
    assert visible(ws_server) == []


def _raw_upload(server, pack_id: str, pieces: list[bytes], announced: int):
    stub = ws_pb2_grpc.RemoteStub(grpc.insecure_channel(server.url.split("://")[1]))
    requests = [ws_pb2.PutRequest(header=ws_pb2.PutHeader(key=pack_key(pack_id), size=announced))]
    requests += [ws_pb2.PutRequest(data=p) for p in pieces]
    return stub.UploadPack(iter(requests), metadata=(("authorization", f"Bearer {server.tokens['writer']}"),))


def test_an_upload_that_ends_early_leaves_nothing(ws_server, tmp_path):
    pack_id, path, _ = sealed_pack(tmp_path, os.urandom(300_000))
    data = open(path, "rb").read()
    with pytest.raises(grpc.RpcError) as exc:
        _raw_upload(ws_server, pack_id, [data[:100_000]], len(data))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"upload cut off after 100000 of {len(data)} bytes" in exc.value.details()
    with pytest.raises(grpc.RpcError, match="more bytes than the 10 announced"):
        _raw_upload(ws_server, pack_id, [data], 10)
    assert visible(ws_server) == [] and uploads_in_progress(ws_server) == []


def test_a_client_killed_mid_upload_leaves_nothing_and_the_server_keeps_serving(ws_server, tmp_path, watch):
    """kill -9 of a client process halfway through a pack: no pack, no index, no temporary file."""
    pack_id, path, entries = sealed_pack(tmp_path, *(os.urandom(1 << 20) for _ in range(8)))
    script = textwrap.dedent(f"""
        import sys, grpc
        from sync.server import ws_pb2, ws_pb2_grpc
        def stream():
            yield ws_pb2.PutRequest(header=ws_pb2.PutHeader(key={pack_key(pack_id)!r}, size={os.path.getsize(path)}))
            with open({path!r}, "rb") as f:
                for i in range(3):
                    yield ws_pb2.PutRequest(data=f.read(1 << 20))
            print("sent", flush=True)
            sys.stdin.readline()  # never answered: the test kills us here, mid-stream
        stub = ws_pb2_grpc.RemoteStub(grpc.insecure_channel({ws_server.url.split("://")[1]!r}))
        stub.UploadPack(stream(), metadata=(("authorization", "Bearer {ws_server.tokens['writer']}"),))
    """)
    ended = watch("rpc=UploadPack token=writer-token")
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "sent\n"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        proc.stdin.close()
        proc.stdout.close()
    assert ended.event.wait(60), "the server never finished the cut-off upload"
    assert "status=CANCELLED" in ended.lines[-1] or "status=INVALID_ARGUMENT" in ended.lines[-1], ended.lines[-1]
    assert visible(ws_server) == [] and uploads_in_progress(ws_server) == []
    w = writer(ws_server)  # and the next client is served: the same pack goes up whole
    w.put(pack_key(pack_id), LocalFile(path))
    assert w.missing_chunks([e.id for e in entries]) == []


def test_a_pack_upload_and_download_never_sit_whole_in_memory(tmp_path):
    """Server and client in this process: the peak of Python allocations stays far below the pack's size."""
    from tests.sync.server_helpers import start_server

    server = start_server(tmp_path / "root")
    try:
        pack_id, path, _ = sealed_pack(tmp_path, *(os.urandom(4 << 20) for _ in range(12)))  # 48 MiB
        w = writer(server)
        tracemalloc.start()
        try:
            w.put(pack_key(pack_id), LocalFile(path))
            assert w.get_file(pack_key(pack_id), str(tmp_path / "back.pack")) == os.path.getsize(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 20 << 20, f"peak {peak >> 20} MiB for a 48 MiB pack"
        assert packs.verify_pack(str(tmp_path / "back.pack"), pack_id)
    finally:
        server.handle.stop(grace=None)


def test_a_push_to_the_root_as_a_folder_is_seen_by_the_server(ws_server, tmp_path):
    """The root is a folder remote too: packs put there behind the server's back are found by its chunk index."""
    pack_id, path, entries = sealed_pack(tmp_path, b"behind the back" * 1000)
    folder = open_backend(str(ws_server.root))
    folder.put(pack_key(pack_id), LocalFile(path))
    folder.put(index_key(pack_id), index_bytes(entries))
    assert writer(ws_server).missing_chunks([e.id for e in entries]) == []
    folder.delete(index_key(pack_id))
    assert writer(ws_server).missing_chunks([e.id for e in entries]) == [e.id for e in entries]


def test_a_restarted_server_rebuilds_a_lost_chunk_index(tmp_path):
    from tests.sync.server_helpers import start_server

    server = start_server(tmp_path / "root")
    pack_id, path, entries = sealed_pack(tmp_path, b"kept" * 5000)
    writer(server).put(pack_key(pack_id), LocalFile(path))
    server.handle.stop(grace=None)
    for name in os.listdir(tmp_path / "root" / ".ws-server"):
        if name.startswith("chunks.db"):
            (tmp_path / "root" / ".ws-server" / name).write_bytes(b"damaged")
    handle = serve(tmp_path / "root")
    try:
        server.handle = handle
        assert writer(server).missing_chunks([e.id for e in entries]) == []
    finally:
        handle.stop(grace=None)


def test_one_server_per_root(ws_server, tmp_path):
    """A second server would empty the first one's uploads in progress: it is refused while the first runs."""
    from sync.server import ServerStartError

    with pytest.raises(ServerStartError, match="another ws server is serving"):
        serve(ws_server.root)
    other = serve(tmp_path / "another-root")  # other roots are fine
    other.stop(grace=None)
    ws_server.handle.stop(grace=None)
    again = serve(ws_server.root)  # and the root is free once its server stopped
    again.stop(grace=None)
