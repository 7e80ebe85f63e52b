"""Staging a job's files through a remote (sync/staging.py) and the entrypoint's side of it (batch_entry).

A folder remote stands for the S3 one here: the entrypoint's S3 client is
replaced by one that reads and writes the same folder, so the whole round
trip (stage in, run, stage out, fetch back) runs in this process without a
network. The S3 path itself is covered by test_batch_backend.py.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from sync.compute import batch_entry
from sync.errors import DamagedRemote, UnsafeRemotePath
from sync.remote import Remote
from sync.staging import InputChanged, Stager, manifest_key, out_key
from sync.storage.registry import open_backend
from workspace.objects import packs


class FolderS3:
    """The entrypoint's S3 client, over a local folder: ``s3://<any bucket>/<key>`` is ``<folder>/<key>``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.gets: list[str] = []

    def get(self, bucket, key, start=None, end=None):
        self.gets.append(key)
        data = (self.folder / key).read_bytes()
        return data if end is None else data[start:end]

    def put(self, bucket, key, body):
        path = self.folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(Path(body).read_bytes() if isinstance(body, str) else body)


@pytest.fixture
def remote_dir(tmp_path) -> Path:
    return tmp_path / "remote"


@pytest.fixture
def stager(remote_dir, tmp_path) -> Stager:
    return Stager(Remote(open_backend(str(remote_dir)), "r"), tmp_dir=str(tmp_path))


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "ws"
    (r / "data").mkdir(parents=True)
    (r / "data" / "big.bin").write_bytes(os.urandom(3 << 20))
    (r / "data" / "table.csv").write_text("a,b\n" + "1,2\n" * 50_000)  # compresses: zstd chunks
    (r / "data" / "empty").write_bytes(b"")
    return r


def run_job(stager, remote_dir, root, job_root, command, files, outputs, dirs=()):
    """Stage in like the backend does, then run the entrypoint's job in this process; its exit code."""
    inputs, stats = stager.stage_inputs(str(root), files)
    stager.write_manifest("j1", 1, {"job": "j1", "attempt": 1, "root": "s3://bkt", "command": command,
                                    "workdir": "", "inputs": inputs,
                                    "outputs": {"files": list(outputs), "dirs": list(dirs)}})
    client = FolderS3(remote_dir)
    staging = batch_entry.Staging(client, f"s3://bkt/{manifest_key('j1', 1)}")
    scratch = job_root.parent / "scratch"
    scratch.mkdir(exist_ok=True)
    job_root.mkdir(exist_ok=True)
    return batch_entry._job(staging, str(job_root), str(scratch)), stats, client


def test_the_round_trip_through_a_remote(stager, remote_dir, root, tmp_path):
    files = {p: "" for p in ("data/big.bin", "data/table.csv", "data/empty")}
    code, stats, client = run_job(stager, remote_dir, root, tmp_path / "container",
                                  "mkdir -p out/d && sha256sum data/* > out/sums.txt && cp data/big.bin out/d/b && "
                                  "echo done", files, ["out/sums.txt", "missing.txt"], ["out/d/"])
    assert code == 0 and stats.files == 3 and stats.packs_uploaded == 1
    expected = {p: hashlib.sha256((root / p).read_bytes()).hexdigest() for p in files}
    back = tmp_path / "back"
    written = stager.fetch_outputs("j1", 1, str(back), ["out/sums.txt", "missing.txt"], ["out/d/"])
    assert sorted(written) == ["out/d/b", "out/sums.txt"]
    sums = dict(reversed(line.split()) for line in (back / "out" / "sums.txt").read_text().splitlines())
    assert sums == expected
    assert (back / "out" / "d" / "b").read_bytes() == (root / "data" / "big.bin").read_bytes()
    result = stager.result("j1", 1)
    assert result["exit_code"] == 0 and result["missing"] == ["missing.txt"]
    assert stager.read_out("j1", 1, "stdout") == b"done\n"
    for pack in result["packs"]:  # the entrypoint's packs are ws packs: the one verifier accepts them
        packs.verify_pack(str(remote_dir / out_key("j1", 1, f"packs/{pack}")), pack)
    codecs = {c[5] for f in json.loads((remote_dir / manifest_key("j1", 1)).read_text())["inputs"] for c in f["chunks"]}
    assert codecs == {packs.CODEC_RAW, packs.CODEC_ZSTD}  # both kinds were staged in and decoded
    assert stager.forget_job("j1") >= 5 and stager.result("j1", 1) is None  # manifest, logs, packs, result
    assert list((remote_dir / "index").iterdir())  # the inputs' chunks stay: releases share them


def test_staging_the_same_files_again_uploads_nothing(stager, remote_dir, root, tmp_path):
    files = {"data/big.bin": "", "data/table.csv": ""}
    _, first = stager.stage_inputs(str(root), files)
    assert first.packs_uploaded == 1 and first.bytes_read > 3 << 20
    _, again = stager.stage_inputs(str(root), files)
    assert (again.packs_uploaded, again.bytes_read) == (0, 0)  # same stat: not even read again
    fresh = Stager(Remote(open_backend(str(remote_dir)), "r"), tmp_dir=str(tmp_path))
    _, third = fresh.stage_inputs(str(root), files)  # a new process: reads the files, finds every chunk there
    assert third.packs_uploaded == 0 and third.bytes_read > 0
    (root / "data" / "table.csv").write_text("a,b\n" + "1,2\n" * 50_000 + "3,4\n")
    _, changed = fresh.stage_inputs(str(root), files)
    assert changed.packs_uploaded == 1 and changed.chunks_uploaded < 3  # only the changed chunk(s)


def test_the_catalog_caches_the_remotes_indexes(ws, remote_dir, root, tmp_path):
    backend = open_backend(str(remote_dir))
    Stager(Remote(backend, "origin"), ws.catalog, str(tmp_path)).stage_inputs(str(root), {"data/big.bin": ""})
    read = []
    original = Remote.read_index
    Remote.read_index = lambda self, pack_id: read.append(pack_id) or original(self, pack_id)
    try:
        _, stats = Stager(Remote(backend, "origin"), ws.catalog, str(tmp_path)).stage_inputs(
            str(root), {"data/big.bin": ""})
    finally:
        Remote.read_index = original
    assert stats.packs_uploaded == 0 and read == []  # known from the catalog, as ws push knows it


def test_inputs_outside_the_root_or_changed_are_refused(stager, root, tmp_path):
    with pytest.raises(UnsafeRemotePath):
        stager.stage_inputs(str(root), {"../outside": ""})
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret").write_text("x")
    os.symlink(tmp_path / "elsewhere", root / "link")
    with pytest.raises(UnsafeRemotePath):
        stager.stage_inputs(str(root), {"link/secret": ""})
    with pytest.raises(InputChanged):
        stager.stage_inputs(str(root), {"data/empty": "1" * 64})


def outputs_doc(remote_dir, files):
    """Write an outputs.json (and one pack) for attempt j1/1 by hand: path -> content."""
    writer = packs.PackWriter(str(remote_dir / "tmp"))
    entries = {}
    for path, data in files.items():
        cid = hashlib.sha256(data).hexdigest()
        entries[path] = (cid, writer.add(cid, len(data), packs.CODEC_RAW, data), data)
    pack_id, pack_path, _ = writer.finish(lambda pid: str(remote_dir / out_key("j1", 1, f"packs/{pid}")))
    doc = {"format": 1, "exit_code": 0,
           "files": [{"path": p, "id": hashlib.sha256(d).hexdigest(), "size": len(d), "mode": 420,
                      "chunks": [[cid, pack_id, e.offset, e.length, e.raw_length, e.codec]]}
                     for p, (cid, e, d) in entries.items()]}
    (remote_dir / out_key("j1", 1, "outputs.json")).write_text(json.dumps(doc))
    return pack_path


def test_outputs_outside_what_was_declared_are_refused_and_nothing_lands(stager, remote_dir, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    outputs_doc(remote_dir, {"out/a.txt": b"a", "etc/passwd": b"x"})
    with pytest.raises(UnsafeRemotePath, match="not among its declared outputs"):
        stager.fetch_outputs("j1", 1, str(dest), ["out/a.txt"], [])
    assert list(dest.rglob("*")) == [] or not [p for p in dest.rglob("*") if p.is_file()]
    for bad in ("../up.txt", "/abs.txt", ".ws/catalog.db", "out/../../x"):
        outputs_doc(remote_dir, {bad: b"x"})
        with pytest.raises(UnsafeRemotePath):
            stager.fetch_outputs("j1", 1, str(dest), [bad], [])
    assert not [p for p in tmp_path.rglob("*.txt") if p.is_file() and "remote" not in str(p)]


def test_a_symlinked_folder_in_the_workspace_cannot_lead_outputs_out(stager, remote_dir, tmp_path):
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    os.symlink(outside, dest / "out")
    outputs_doc(remote_dir, {"out/a.txt": b"a"})
    with pytest.raises(UnsafeRemotePath):
        stager.fetch_outputs("j1", 1, str(dest), [], ["out/"])
    assert list(outside.iterdir()) == []


def test_a_damaged_output_pack_is_named_and_nothing_is_half_written(stager, remote_dir, tmp_path):
    dest = tmp_path / "dest"
    (dest / "out").mkdir(parents=True)
    (dest / "out" / "b.txt").write_text("old\n")
    pack = outputs_doc(remote_dir, {"out/a.txt": b"aaaa" * 100, "out/b.txt": b"new\n"})
    data = bytearray(Path(pack).read_bytes())
    data[len(packs.MAGIC) + packs.ENTRY.size + 5] ^= 0xFF  # a byte of the first file's chunk
    Path(pack).write_bytes(bytes(data))
    with pytest.raises(DamagedRemote, match="SHA-256"):
        stager.fetch_outputs("j1", 1, str(dest), [], ["out/"])
    assert sorted(p.name for p in (dest / "out").iterdir()) == ["b.txt"]  # no temporary file left
    assert (dest / "out" / "b.txt").read_text() == "old\n"  # untouched: nothing is renamed until all verified


def test_an_output_over_an_existing_file_is_replaced_whole(stager, remote_dir, tmp_path):
    dest = tmp_path / "dest"
    (dest / "out").mkdir(parents=True)
    (dest / "out" / "a.txt").write_text("old\n")
    outputs_doc(remote_dir, {"out/a.txt": b"new\n"})
    assert stager.fetch_outputs("j1", 1, str(dest), ["out/a.txt"], []) == ["out/a.txt"]
    assert (dest / "out" / "a.txt").read_text() == "new\n"


def test_no_outputs_staged_yet_is_nothing_to_fetch(stager, tmp_path):
    assert stager.fetch_outputs("never", 1, str(tmp_path), ["a"], []) == []
    assert stager.result("never", 1) is None


def test_the_entrypoint_refuses_input_paths_that_leave_its_folder(remote_dir, tmp_path):
    client = FolderS3(remote_dir)
    manifest = {"format": 1, "job": "j1", "attempt": 1, "root": "s3://bkt", "command": "true", "workdir": "",
                "inputs": [{"path": "../escape", "id": "0" * 64, "size": 0, "mode": 420, "chunks": []}],
                "outputs": {"files": [], "dirs": []}}
    (remote_dir / "jobs" / "j1" / "1").mkdir(parents=True)
    (remote_dir / manifest_key("j1", 1)).write_text(json.dumps(manifest))
    staging = batch_entry.Staging(client, f"s3://bkt/{manifest_key('j1', 1)}")
    (tmp_path / "c").mkdir()
    (tmp_path / "s").mkdir()
    assert batch_entry._job(staging, str(tmp_path / "c"), str(tmp_path / "s")) == batch_entry.EXIT_STAGE_IN
    assert not (tmp_path / "escape").exists()
    result = json.loads((remote_dir / out_key("j1", 1, "outputs.json")).read_text())
    assert "not a clean relative path" in result["error"] and result["exit_code"] is None


def test_a_failed_command_still_stages_its_outputs_and_exits_with_its_code(stager, remote_dir, root, tmp_path):
    code, _, _ = run_job(stager, remote_dir, root, tmp_path / "container", "echo partial > p.txt; exit 9", {},
                         ["p.txt"])
    assert code == 9 and stager.result("j1", 1)["exit_code"] == 9
    assert stager.fetch_outputs("j1", 1, str(tmp_path / "back"), ["p.txt"], []) == ["p.txt"]


def test_a_file_in_the_way_of_an_output_folder_is_one_clear_error(stager, remote_dir, tmp_path):
    from sync.errors import SyncError

    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "out").write_text("a file, not a folder\n")
    outputs_doc(remote_dir, {"out/a.txt": b"a"})
    with pytest.raises(SyncError, match="cannot write output out/a.txt"):
        stager.fetch_outputs("j1", 1, str(dest), [], ["out/"])
    with pytest.raises(InputChanged, match="cannot be read any more"):
        stager.stage_inputs(str(tmp_path), {"no-such-file": ""})
