"""One contract every storage backend passes: memory, a local folder, S3 through moto over HTTP, and the ws server.

Objects under the remote format's own keys (packs/, index/, releases/,
ws-remote.json) are real ones (a sealed pack, its index, a release record):
the ws server checks them before storing, as a remote should. The byte-level
checks use keys outside the layout, which every backend stores as they come.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid

import pytest

from sync.errors import ObjectExists, ObjectNotFound, SyncError
from sync.storage import LocalFile, open_backend
from sync.remote import index_bytes, index_key, pack_key
from sync.storage.retry import RetryBackend
from tests.sync.remote_objects import record, sealed_pack

BACKENDS = ["memory", "folder", "folder-copying", "file-url", "s3", "fsspec-generic", "grpc", "grpcs"]


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    """A fresh, empty remote root on each kind of backend."""
    kind = request.param
    if kind == "memory":
        return open_backend(f"memory://contract-{uuid.uuid4().hex}")
    if kind == "folder":
        return open_backend(str(tmp_path / "remote"))
    if kind == "folder-copying":
        return open_backend(str(tmp_path / "remote"), {"link": "false"})
    if kind == "file-url":
        return open_backend(f"file://{tmp_path / 'remote'}")
    if kind == "fsspec-generic":
        # any other fsspec URL: fsspec's own in-memory filesystem through the generic code path
        from sync.storage.fsspec_backend import FsspecBackend
        from sync.storage.retry import RetryBackend as Retry

        return Retry(FsspecBackend(f"memory://generic-{uuid.uuid4().hex}/root"))
    if kind in ("grpc", "grpcs"):  # a real server on a free loopback port; the admin may write any key
        server = request.getfixturevalue("ws_server" if kind == "grpc" else "ws_server_tls")
        return open_backend(server.url, server.options("admin"))
    name, options, _ = request.getfixturevalue("s3_bucket")
    return open_backend(f"s3://{name}/some/prefix", options)


def test_put_get_stat_roundtrip(backend):
    backend.put("data/ab/one", b"hello world")
    assert backend.get("data/ab/one") == b"hello world"
    info = backend.stat("data/ab/one")
    assert info is not None and info.size == 11 and info.key == "data/ab/one"


def test_missing_key(backend):
    assert backend.stat("nope/x") is None
    with pytest.raises(ObjectNotFound) as exc:
        backend.get("nope/x")
    assert exc.value.exit_code == 4


def test_range_get(backend):
    data = bytes(range(256)) * 40
    backend.put("blob", data)
    assert backend.get("blob", 10, 20) == data[10:20]
    assert backend.get("blob", 0, len(data)) == data
    assert backend.get("blob", len(data) - 5, len(data)) == data[-5:]


def test_overwrite_replaces(backend):
    backend.put("k", b"one")
    backend.put("k", b"two-two")
    assert backend.get("k") == b"two-two"
    assert backend.stat("k").size == 7


def test_exclusive_put_is_create_only(backend):
    backend.put("releases/ds/1.0.0.json", record("ds", "1.0.0", description="first"), exclusive=True)
    with pytest.raises(ObjectExists) as exc:
        backend.put("releases/ds/1.0.0.json", record("ds", "1.0.0", description="second"), exclusive=True)
    assert exc.value.exit_code == 8
    assert backend.get("releases/ds/1.0.0.json") == record("ds", "1.0.0", description="first")


def test_exclusive_put_race_has_one_winner(backend):
    if backend.url.startswith("memory://generic"):
        pytest.skip("generic fsspec filesystems can only check-then-write (documented as racy)")
    wins, losses = [], []

    def attempt(i):
        try:
            backend.put("releases/r/1.0.0.json", record("r", "1.0.0", description=f"writer {i}"), exclusive=True)
            wins.append(i)
        except ObjectExists:
            losses.append(i)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 5
    assert backend.get("releases/r/1.0.0.json") == record("r", "1.0.0", description=f"writer {wins[0]}")


def test_list_by_prefix_sorted(backend):
    for key in ("data/aa/2", "data/aa/1", "data/bb/3", "notes/1", "top.json"):
        backend.put(key, key.encode())
    assert [o.key for o in backend.list("data/")] == ["data/aa/1", "data/aa/2", "data/bb/3"]
    assert [o.key for o in backend.list("notes/")] == ["notes/1"]
    assert [(o.key, o.size) for o in backend.list("data/aa/1")] == [("data/aa/1", 9)]
    assert len(backend.list("")) == 5
    assert backend.list("nothing/") == []


def test_delete(backend):
    backend.put("a/b", b"x")
    backend.delete("a/b")
    assert backend.stat("a/b") is None
    backend.delete("a/b")  # deleting a missing key is fine
    assert backend.list("a/") == []


def test_local_file_payload_streams(backend, tmp_path):
    src = tmp_path / "big.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    src.write_bytes(data)
    backend.put("data/cd/big", LocalFile(str(src)))
    assert backend.stat("data/cd/big").size == len(data)
    assert backend.get("data/cd/big", 1024, 2048) == data[1024:2048]


def test_get_file_copies_a_whole_object(backend, tmp_path):
    data = os.urandom(2 * 1024 * 1024 + 5)
    backend.put("data/ab/whole", data)
    dest = tmp_path / "copy.bin"
    assert backend.get_file("data/ab/whole", str(dest)) == len(data)
    assert dest.read_bytes() == data
    with pytest.raises(ObjectNotFound):
        backend.get_file("data/ab/missing", str(tmp_path / "nothing"))


def test_folder_copies_unless_told_to_link(tmp_path):
    """A folder remote is a second copy by default; hard links (one inode for both) are an opt-in."""
    src = tmp_path / "pack"
    src.write_bytes(b"sealed pack bytes")
    copying, linking = open_backend(str(tmp_path / "a")), open_backend(str(tmp_path / "b"), {"link": "true"})
    copying.put("packs/aa/x", LocalFile(str(src)))
    linking.put("packs/aa/x", LocalFile(str(src)))
    assert (tmp_path / "a/packs/aa/x").stat().st_ino != src.stat().st_ino
    assert (tmp_path / "a/packs/aa/x").read_bytes() == b"sealed pack bytes"
    assert (tmp_path / "b/packs/aa/x").stat().st_ino == src.stat().st_ino
    copying.get_file("packs/aa/x", str(tmp_path / "got"))
    assert (tmp_path / "got").stat().st_ino != (tmp_path / "a/packs/aa/x").stat().st_ino


def test_remote_format_objects_roundtrip(backend, tmp_path):
    """A sealed pack (streamed from a file), its index and a release naming its chunks: stored and read back."""
    pack_id, path, entries = sealed_pack(tmp_path, os.urandom(300_000), b"small chunk" * 50)
    backend.put(pack_key(pack_id), LocalFile(path))
    backend.put(index_key(pack_id), index_bytes(entries))
    rec = record("ds", "2.0.0", [e.id for e in entries], description="two chunks")
    backend.put("releases/ds/2.0.0.json", rec, exclusive=True)
    assert backend.get(pack_key(pack_id)) == open(path, "rb").read()
    first = entries[0]
    assert backend.get(pack_key(pack_id), first.offset, first.offset + first.length) == \
        open(path, "rb").read()[first.offset:first.offset + first.length]
    assert hashlib.sha256(backend.get(index_key(pack_id))).hexdigest() == pack_id
    assert backend.get("releases/ds/2.0.0.json") == rec
    assert [o.key for o in backend.list("index/")] == [index_key(pack_id)]


def test_unsafe_keys_refused(backend):
    for key in ("../escape", "/abs", "a//b", "a/./b", ""):
        with pytest.raises(SyncError):
            backend.put(key, b"x")


def test_backends_are_wrapped_in_retries(backend):
    assert isinstance(backend, RetryBackend)


def test_s3_large_object_uses_multipart(s3_bucket):
    name, options, client = s3_bucket
    backend = open_backend(f"s3://{name}/r", dict(options, part_size=5 * 1024 * 1024))
    data = os.urandom(12 * 1024 * 1024)
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ws-mpu-{uuid.uuid4().hex}")
    with open(path, "wb") as f:
        f.write(data)
    try:
        backend.put("packs/ee/large", LocalFile(path))
    finally:
        os.unlink(path)
    head = client.head_object(Bucket=name, Key="r/packs/ee/large")
    assert head["ContentLength"] == len(data)
    assert "-" in head["ETag"], "a multipart upload's ETag ends in -<parts>"
    assert backend.get("packs/ee/large", 5_000_000, 5_000_100) == data[5_000_000:5_000_100]


def test_s3_wrong_credentials_are_exit_11(s3_bucket, moto_server):
    from sync.errors import RejectedCredentials

    name, options, _ = s3_bucket
    import requests

    # moto checks access keys only once IAM auth is switched on (after 0 free requests)
    requests.post(f"{moto_server}/moto-api/reset-auth", data=b"0")
    try:
        backend = open_backend(f"s3://{name}/r", dict(options, key="AKIAWRONG", secret="nope"), label="origin")
        with pytest.raises(RejectedCredentials) as exc:
            backend.put("x", b"y")
        assert exc.value.exit_code == 11
        assert "ws login origin" in str(exc.value)
    finally:
        requests.post(f"{moto_server}/moto-api/reset-auth", data=b"inf")
