"""One contract every storage backend passes: memory, a local folder, and S3 through moto over HTTP."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from sync.errors import ObjectExists, ObjectNotFound, SyncError
from sync.storage import LocalFile, open_backend
from sync.storage.retry import RetryBackend

BACKENDS = ["memory", "folder", "folder-copying", "file-url", "s3", "fsspec-generic"]


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
    name, options, _ = request.getfixturevalue("s3_bucket")
    return open_backend(f"s3://{name}/some/prefix", options)


def test_put_get_stat_roundtrip(backend):
    backend.put("packs/ab/one", b"hello world")
    assert backend.get("packs/ab/one") == b"hello world"
    info = backend.stat("packs/ab/one")
    assert info is not None and info.size == 11 and info.key == "packs/ab/one"


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
    backend.put("releases/ds/1.0.0.json", b"first", exclusive=True)
    with pytest.raises(ObjectExists) as exc:
        backend.put("releases/ds/1.0.0.json", b"second", exclusive=True)
    assert exc.value.exit_code == 8
    assert backend.get("releases/ds/1.0.0.json") == b"first"


def test_exclusive_put_race_has_one_winner(backend):
    if backend.url.startswith("memory://generic"):
        pytest.skip("generic fsspec filesystems can only check-then-write (documented as racy)")
    wins, losses = [], []

    def attempt(i):
        try:
            backend.put("releases/r/1.0.0.json", f"writer {i}".encode(), exclusive=True)
            wins.append(i)
        except ObjectExists:
            losses.append(i)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 5
    assert backend.get("releases/r/1.0.0.json") == f"writer {wins[0]}".encode()


def test_list_by_prefix_sorted(backend):
    for key in ("packs/aa/2", "packs/aa/1", "packs/bb/3", "index/1", "ws-remote.json"):
        backend.put(key, key.encode())
    assert [o.key for o in backend.list("packs/")] == ["packs/aa/1", "packs/aa/2", "packs/bb/3"]
    assert [o.key for o in backend.list("index/")] == ["index/1"]
    assert [(o.key, o.size) for o in backend.list("packs/aa/1")] == [("packs/aa/1", 10)]
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
    backend.put("packs/cd/big", LocalFile(str(src)))
    assert backend.stat("packs/cd/big").size == len(data)
    assert backend.get("packs/cd/big", 1024, 2048) == data[1024:2048]


def test_get_file_copies_a_whole_object(backend, tmp_path):
    data = os.urandom(2 * 1024 * 1024 + 5)
    backend.put("packs/ab/whole", data)
    dest = tmp_path / "copy.bin"
    assert backend.get_file("packs/ab/whole", str(dest)) == len(data)
    assert dest.read_bytes() == data
    with pytest.raises(ObjectNotFound):
        backend.get_file("packs/ab/missing", str(tmp_path / "nothing"))


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
