"""History objects in packs: their formats, kinds in pack entries and indexes, and the one verifier."""

from __future__ import annotations

import hashlib
import io

import pytest

from workspace.objects import history as ho
from workspace.objects import packs


def test_file_object_roundtrip_and_id():
    f = ho.FileObject("ab" * 32, 1234, ["01" * 32, "02" * 32])
    raw = ho.encode_file(f)
    assert ho.decode_file(raw) == f
    assert ho.object_id(raw) == hashlib.sha256(raw).hexdigest()
    with pytest.raises(ValueError):
        ho.decode_file(raw[:-1])
    with pytest.raises(ValueError):
        ho.decode_file(b"XXXX" + raw[4:])


def test_only_multi_chunk_files_need_an_object():
    assert not ho.needs_file_object("aa" * 32, ["aa" * 32])
    assert not ho.needs_file_object(hashlib.sha256(b"").hexdigest(), [])
    assert ho.needs_file_object("aa" * 32, ["bb" * 32])
    assert ho.needs_file_object("aa" * 32, ["bb" * 32, "cc" * 32])


def test_commit_object_is_the_bytes_whose_hash_is_the_commit_id():
    """The documented commit id recipe (docs/local-format.md) is exactly the object's bytes."""
    c = ho.CommitObject("d4" * 32, ["22" * 32], "main", "Add bird", "Ada <ada@example.org>", 1795319009186106875,
                        None)
    raw = ho.encode_commit(c)
    assert raw.startswith(b'{"author":"Ada <ada@example.org>","branch":"main","message":"Add bird"')
    assert ho.decode_commit(raw) == c


def _pack(tmp_path, objects):
    w = packs.PackWriter(tmp_path)
    for kind, raw in objects:
        codec, payload = packs.encode(raw)
        w.add(hashlib.sha256(raw).hexdigest(), len(raw), codec, payload, kind)
    pack_id, path, entries = w.finish(lambda pid: str(tmp_path / pid))
    return pack_id, path, entries


def test_kinds_survive_entries_and_index_and_pass_the_verifier(tmp_path):
    objs = [(packs.KIND_CHUNK, b"data" * 300), (packs.KIND_FILE, ho.encode_file(ho.FileObject("aa" * 32, 9, []))),
            (packs.KIND_TREE, b"[]"), (packs.KIND_COMMIT, b'{"x":1}' * 200)]
    pack_id, path, entries = _pack(tmp_path, objs)
    assert [e.kind for e in entries] == [k for k, _ in objs]
    assert [e.kind for e in packs.read_index(path)] == [k for k, _ in objs]
    with open(path, "rb") as f:
        assert [e.kind for e, _ in packs.scan_entries(f)] == [k for k, _ in objs]
    assert [e.kind for e in packs.verify_pack(path, pack_id)] == [k for k, _ in objs]


def test_data_packs_are_byte_for_byte_what_they_were(tmp_path):
    """The example pack of docs/local-format.md: kind 0 keeps the old reserved zero byte and codec byte."""
    pack_id, path, _ = _pack(tmp_path, [(packs.KIND_CHUNK, b"id,label\n1,cat\n2,dog\n3,bird\n")])
    assert pack_id == "ad2abf1de68897e9d4d9ad5d630f3f1bb46a1479924a8cf18c3f4a8d30d1c700"


def test_an_unknown_kind_is_damage(tmp_path):
    pack_id, path, entries = _pack(tmp_path, [(packs.KIND_TREE, b"[]")])
    data = bytearray(open(path, "rb").read())
    data[len(packs.MAGIC) + 3] = 9  # the entry header's kind byte
    check = packs.check_pack(io.BytesIO(bytes(data)), pack_id)
    assert not check.ok and any("damaged" in p for p in check.problems)
