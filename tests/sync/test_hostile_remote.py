"""A hostile or damaged remote: every record is checked in full before any byte is written.

Each test forges what an attacker (or a broken writer) could put on a folder
remote, then runs the real ``ws`` on it: the answer is one line on stderr and a
documented exit code, the working tree and the local store stay untouched, and
``ws fsck --remote`` calls damaged exactly what pull refuses.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from tests.conftest import write
from workspace.api import Workspace


def release(ws, files: dict, version: str, name: str = "ds"):
    for path, data in files.items():
        write(ws.root, path, data)
    ws.commit(f"for {name}@{version}")
    return ws.releases.create(name, version=version)


@pytest.fixture
def pushed(ws, tmp_path):
    """ds@1.0.0 on a folder remote: two small files, a script and one file of several chunks."""
    files = {"data/a.csv": "x,y\n1,2\n", "README": "hello", "run.sh": "#!/bin/sh\necho hi\n",
             "data/big.bin": os.urandom(3_000_000)}
    release(ws, files, "1.0.0")
    ws.add_remote("origin", str(tmp_path / "remote"))
    ws.push()
    return ws, tmp_path / "remote"


def forge(remote: Path, mutate, version: str = "1.0.1") -> str:
    """Write releases/ds/VERSION.json: ds@1.0.0's record changed by ``mutate`` (its chunks are on the remote)."""
    record = json.loads((remote / "releases" / "ds" / "1.0.0.json").read_text())
    record["version"] = version
    mutate(record)
    (remote / "releases" / "ds" / f"{version}.json").write_text(json.dumps(record))
    return f"ds@{version}"


def entry(record: dict, path: str) -> dict:
    return next(f for f in record["files"] if f["path"] == path)


def one_line(stderr: str) -> bool:
    return stderr.startswith("ws: error:") and stderr.count("\n") == 1 and "Traceback" not in stderr


def working_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*")
                  if (p.is_file() or p.is_symlink()) and ".ws" not in p.relative_to(root).parts)


@pytest.fixture
def target(tmp_path, pushed):
    """An empty workspace with the remote as origin."""
    _, remote = pushed
    t = Workspace.init(tmp_path / "target")
    t.add_remote("origin", str(remote))
    yield t
    t.close()


def assert_untouched(t: Workspace) -> None:
    """Nothing reached the working tree, the store, history or the releases."""
    assert working_files(t.root) == []
    assert t.store.list_pack_files() == []  # refused before a single chunk was downloaded
    assert t.head()[1] is None and t.releases.list() == []


# -- one name, one kind -----------------------------------------------------------------------------
def _file_and_folder(record: dict) -> None:
    readme = entry(record, "README")
    record["files"].append(dict(readme, path="README/inner.txt"))


def test_a_path_that_is_both_a_file_and_a_folder_is_refused_by_clone_and_pull_force(pushed, target, tmp_path,
                                                                                   run_ws):
    _, remote = pushed
    spec = forge(remote, _file_and_folder)
    proc = run_ws(tmp_path, "clone", remote, spec, tmp_path / "copy")
    assert proc.returncode == 6, proc.stderr
    assert one_line(proc.stderr) and "'README'" in proc.stderr and "file and a folder" in proc.stderr
    assert not (tmp_path / "copy").exists()
    proc = run_ws(target.root, "pull", "--force", spec)
    assert proc.returncode == 6 and one_line(proc.stderr), proc.stderr
    assert_untouched(target)


# -- names the walk never shows -----------------------------------------------------------------------
@pytest.mark.parametrize("path,code", [
    (".ws-tmp-1-2-README", 6),           # a temporary name: status would never show it
    ("data/.ws-tmp-9-del-a.csv", 6),
    ("sub/.ws/config.toml", 5),          # .ws as any component, as git refuses .git anywhere
    ("sub/.ws", 5),
    (".WS/config.toml", 5),              # case-folding file systems
    (".git/hooks/post-checkout", 5),     # the walk never enters .git/ and writing there runs code
    ("sub/.git", 5),
    ("sub/.Git/config", 5),
])
def test_record_paths_the_walk_would_hide_are_refused(pushed, target, run_ws, path, code):
    _, remote = pushed
    spec = forge(remote, lambda r: entry(r, "README").update(path=path))
    proc = run_ws(target.root, "pull", spec)
    assert proc.returncode == code, proc.stderr
    assert one_line(proc.stderr) and path in proc.stderr
    assert_untouched(target)


# -- sizes, ids, chunk lists -------------------------------------------------------------------------------
EMPTY = hashlib.sha256(b"").hexdigest()


def _swap_chunk(record: dict) -> None:  # a one-chunk file whose only chunk is not the file
    entry(record, "data/a.csv")["chunks"] = entry(record, "README")["chunks"]


@pytest.mark.parametrize("mutate,what", [
    (lambda r: entry(r, "README").update(size=-1), "size"),
    (lambda r: entry(r, "README").update(size=True), "size"),
    (lambda r: entry(r, "README").update(size=5.0), "size"),
    (lambda r: entry(r, "README").update(id=entry(r, "README")["id"].upper()), "id"),
    (lambda r: entry(r, "README").update(sha256=EMPTY), "sha256"),
    (lambda r: entry(r, "README").update(chunks="abc"), "chunks"),
    (lambda r: entry(r, "README").update(size=0, id=EMPTY, sha256=EMPTY), "empty"),  # size 0 with a chunk
    (lambda r: entry(r, "README").update(chunks=[]), "no chunks"),                   # bytes without chunks
    (_swap_chunk, "chunk"),
    (lambda r: entry(r, "README").update(size=1, chunks=entry(r, "data/big.bin")["chunks"]), "chunks"),
    (lambda r: entry(r, "README").update(path="x" * 256), "255"),
    (lambda r: entry(r, "README").update(path="caf\udce9.txt"), "UTF-8"),
    (lambda r: entry(r, "README").update(path="a\nb"), "control"),
], ids=["negative-size", "bool-size", "float-size", "upper-id", "sha256", "chunks-not-list", "empty-with-chunk",
        "bytes-without-chunks", "one-chunk-not-the-file", "more-chunks-than-bytes", "long-name",
        "not-utf8", "control-char"])
def test_records_with_malformed_sizes_ids_or_chunk_lists_are_refused_before_any_download(pushed, target, run_ws,
                                                                                         mutate, what):
    _, remote = pushed
    spec = forge(remote, mutate)
    proc = run_ws(target.root, "pull", spec)
    assert proc.returncode == 6, proc.stderr
    assert one_line(proc.stderr) and "invalid release record" in proc.stderr and what in proc.stderr
    assert_untouched(target)


def test_a_size_that_its_chunks_do_not_add_up_to_is_refused_before_any_download(pushed, target, run_ws):
    _, remote = pushed
    spec = forge(remote, lambda r: entry(r, "data/big.bin").update(size=entry(r, "data/big.bin")["size"] + 1))
    proc = run_ws(target.root, "pull", spec)
    assert proc.returncode == 6 and one_line(proc.stderr), proc.stderr
    assert "data/big.bin" in proc.stderr and "bytes" in proc.stderr
    assert_untouched(target)


# -- modes --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [0o4755, 0o2755, 0o1755, 0o777, 0o666, 0o600, 0o100644, 0o40000, -1, "420"])
def test_only_the_modes_ws_writes_are_accepted(pushed, target, run_ws, mode):
    _, remote = pushed
    spec = forge(remote, lambda r: entry(r, "run.sh").update(mode=mode))
    proc = run_ws(target.root, "pull", spec)
    assert proc.returncode == 6, proc.stderr
    assert one_line(proc.stderr) and "mode" in proc.stderr and "run.sh" in proc.stderr
    assert_untouched(target)


def test_the_modes_ws_writes_are_honoured(pushed, target):
    _, remote = pushed
    spec = forge(remote, lambda r: entry(r, "run.sh").update(mode=0o755))
    target.pull("origin", spec)
    assert stat.S_IMODE(os.lstat(target.root / "run.sh").st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(target.root / "README").st_mode) == 0o644


# -- nesting ------------------------------------------------------------------------------------------------
def test_deeply_nested_record_json_is_one_line_naming_the_object(pushed, target, run_ws):
    ws, remote = pushed
    record = json.loads((remote / "releases" / "ds" / "1.0.0.json").read_text())
    record["version"] = "1.0.1"
    text = json.dumps(record).replace('"metadata": {}', '"metadata": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    (remote / "releases" / "ds" / "1.0.1.json").write_text(text)
    for args in (("pull", "ds@1.0.1"), ("remote", "releases"), ("fsck", "--remote", "origin")):
        proc = run_ws(target.root, *args)
        assert proc.returncode == 6, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "releases/ds/1.0.1.json" in proc.stderr, (args, proc.stderr)
    assert_untouched(target)
    # nested less than Python's recursion limit, but more than a record ever needs
    text = json.dumps(record).replace('"metadata": {}', '"metadata": {"x": ' + "[" * 500 + "]" * 500 + "}")
    (remote / "releases" / "ds" / "1.0.1.json").write_text(text)
    proc = run_ws(target.root, "pull", "ds@1.0.1")
    assert proc.returncode == 6 and one_line(proc.stderr) and "nested" in proc.stderr, proc.stderr


def test_deeply_nested_remote_marker_is_one_line(pushed, target, run_ws):
    _, remote = pushed
    (remote / "ws-remote.json").write_text('{"format": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    proc = run_ws(target.root, "pull", "ds")
    assert proc.returncode == 6 and one_line(proc.stderr) and "ws-remote.json" in proc.stderr, proc.stderr


def test_deeply_nested_yaml_spec_is_one_line_naming_the_file(ws, run_ws):
    write(ws.root, "jobs/deep.yaml", "command: echo {a}\nparams: {a: " + "[" * 100_000 + "]" * 100_000 + "}\n")
    proc = run_ws(ws.root, "run", "deep", "--dry-run")
    assert proc.returncode == 9, proc.stderr
    assert one_line(proc.stderr) and "jobs/deep.yaml" in proc.stderr and "nested" in proc.stderr


@pytest.mark.parametrize("where,args", [
    ("releases/ds.toml", ("release", "create", "ds", "--version", "1.0.0")),  # a pull can bring this file
    (".ws/config.toml", ("status",)),
])
def test_deeply_nested_toml_is_one_line_naming_the_file(ws, run_ws, where, args):
    write(ws.root, "a.txt", "a")
    ws.commit("a")
    body = "[core]\nformat = 1\n" if where.startswith(".ws") else ""
    write(ws.root, where, body + "x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    proc = run_ws(ws.root, *args)
    assert proc.returncode == 9, proc.stderr
    assert one_line(proc.stderr) and where.rsplit("/", 1)[-1] in proc.stderr, proc.stderr


# -- stray names under releases/ -----------------------------------------------------------------------------
STRAYS = ["releases/ds/notes.json", "releases/ds/latest.json", "releases/ds/1.0.json", "releases/ds/README.txt",
          "releases/ds/old/2.0.0.json", "releases/-bad/1.0.0.json", "releases/top.json"]


def test_stray_names_under_releases_are_skipped_with_a_warning_naming_them(pushed, target, tmp_path, run_ws):
    ws, remote = pushed
    for key in STRAYS:
        write(remote, key, "{not a record")
    proc = run_ws(target.root, "pull", "ds")
    assert proc.returncode == 0, proc.stderr
    assert "Pulled ds@1.0.0" in proc.stdout
    warned = [ln for ln in proc.stderr.splitlines() if ln.startswith("ws: warning:")]
    assert all(any(k in ln for ln in warned) for k in STRAYS if k.startswith("releases/ds/")), proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_ws(tmp_path, "clone", remote, "ds", tmp_path / "copy")
    assert proc.returncode == 0 and "releases/ds/notes.json" in proc.stderr, proc.stderr
    proc = run_ws(target.root, "remote", "releases", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [(r["title"], r["version"]) for r in json.loads(proc.stdout)] == [("ds", "1.0.0")]
    assert "releases/ds/notes.json" in proc.stderr
    proc = run_ws(target.root, "fsck", "--remote", "origin")
    assert proc.returncode == 0, proc.stderr  # nothing is damaged: the strays are reported, not counted
    assert all(k in proc.stdout + proc.stderr for k in STRAYS), proc.stdout + proc.stderr
    report = json.loads(run_ws(target.root, "fsck", "--remote", "origin", "--json").stdout)
    assert sorted(report["stray"]) == sorted(STRAYS)


# -- fsck --remote agrees with pull ---------------------------------------------------------------------------
def _reversed_chunks(record: dict) -> None:
    big = entry(record, "data/big.bin")
    assert len(big["chunks"]) > 1
    big["chunks"] = big["chunks"][::-1]


@pytest.mark.parametrize("mutate,structural", [
    (lambda r: entry(r, "README").update(size=entry(r, "README")["size"] + 1), True),
    (lambda r: entry(r, "data/a.csv").update(id=entry(r, "README")["id"], sha256=entry(r, "README")["id"]), True),
    (lambda r: entry(r, "run.sh").update(mode=0o4755), True),
    (_file_and_folder, True),
    (_reversed_chunks, False),  # every chunk sound, the file wrong: only reading the data shows it
], ids=["size", "one-chunk-id", "mode", "file-and-folder", "many-chunk-id"])
def test_fsck_remote_calls_damaged_every_record_pull_refuses(pushed, target, run_ws, mutate, structural):
    _, remote = pushed
    spec = forge(remote, mutate)
    proc = run_ws(target.root, "pull", spec)
    assert proc.returncode == 6 and one_line(proc.stderr), proc.stderr
    proc = run_ws(target.root, "fsck", "--remote", "origin", "--read-data")
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert "releases/ds/1.0.1.json" in proc.stderr
    assert "releases/ds/1.0.0.json" not in proc.stderr
    proc = run_ws(target.root, "fsck", "--remote", "origin")
    assert proc.returncode == (6 if structural else 0), proc.stdout + proc.stderr
# -- untracked symlinks are protected like untracked files -------------------------------------------------------
def test_pull_over_an_untracked_symlink_is_refused_like_over_an_untracked_file(pushed, target, tmp_path, run_ws):
    outside = tmp_path / "mine.txt"
    outside.write_text("mine")
    os.symlink(outside, target.root / "README")
    proc = run_ws(target.root, "pull", "ds")
    assert proc.returncode == 8 and one_line(proc.stderr) and "README" in proc.stderr, proc.stderr
    assert os.readlink(target.root / "README") == str(outside) and outside.read_text() == "mine"
    assert target.head()[1] is None




def test_a_title_with_only_stray_objects_is_unknown_naming_them(pushed, target, run_ws):
    _, remote = pushed
    write(remote, "releases/other/notes.json", "{}")
    proc = run_ws(target.root, "pull", "other")
    assert proc.returncode == 4 and one_line(proc.stderr), proc.stderr
    assert "no release named 'other'" in proc.stderr and "releases/other/notes.json" in proc.stderr


def test_pull_over_a_tracked_file_turned_into_a_link_with_the_same_text_is_refused(pushed, target, run_ws):
    ws, _ = pushed
    target.pull("origin", "ds")
    (target.root / "README").unlink()
    os.symlink("hello", target.root / "README")  # the file's text as a link: same id, another kind
    write(ws.root, "README", "hello again")
    ws.commit("new readme")
    ws.releases.create("ds", version="1.1.0")
    ws.push()
    proc = run_ws(target.root, "pull", "ds")
    assert proc.returncode == 8 and one_line(proc.stderr) and "README" in proc.stderr, proc.stderr
    assert os.readlink(target.root / "README") == "hello"
