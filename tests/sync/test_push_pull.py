"""Push, pull and clone end to end: real workspaces, real folder / memory / S3 (moto) remotes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sync.errors import DamagedRemote, RemoteReleaseConflict, UnknownRemoteRelease
from tests.conftest import data_packs, write
from workspace.api import Workspace
from workspace.errors import PathOutsideWorkspace, UncommittedChanges


def release(ws, files: dict, version: str, name: str = "ds"):
    """Write files, commit them and release every tracked file as name@version."""
    for path, data in files.items():
        write(ws.root, path, data)
    ws.commit(f"for {name}@{version}")
    return ws.releases.create(name, version=version)


def tree(root: Path) -> dict[str, bytes]:
    """Every working file under root (outside .ws/) and its bytes."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not rel.startswith(".ws/"):
            out[rel] = p.read_bytes()
    return out


@pytest.fixture
def pushed(ws, tmp_path):
    """A workspace with ds@1.0.0 pushed to a folder remote 'origin'."""
    files = {"data/a.csv": "x,y\n1,2\n", "data/big.bin": os.urandom(3_000_000), "README": "hello"}
    release(ws, files, "1.0.0")
    ws.add_remote("origin", str(tmp_path / "remote"))
    ws.push()
    return ws, tmp_path / "remote"


def test_push_writes_the_documented_layout(pushed):
    ws, remote = pushed
    marker = json.loads((remote / "ws-remote.json").read_text())
    assert marker["format"] == 1
    index_ids = [p.name for p in (remote / "index").iterdir()]
    assert index_ids and all((remote / "packs" / i[:2] / i).is_file() for i in index_ids)
    record = json.loads((remote / "releases" / "ds" / "1.0.0.json").read_text())
    assert record["title"] == "ds" and record["version"] == "1.0.0"
    assert {f["path"] for f in record["files"]} == {"data/a.csv", "data/big.bin", "README"}
    assert all(len(f["chunks"]) >= 1 for f in record["files"])


def test_clone_gives_identical_files_clean_status_and_the_release(pushed, tmp_path):
    ws, remote = pushed
    clone = Workspace.clone(str(remote), "ds", tmp_path / "copy")
    try:
        assert tree(clone.root) == tree(ws.root)
        st = clone.status()
        assert st.clean
        assert [r.version for r in clone.releases.list("ds")] == ["1.0.0"]
        assert clone.remotes()[0].name == "origin" and clone.remotes()[0].default
        assert "pull ds@1.0.0 from origin" in clone.log()[0].message
    finally:
        clone.close()


def test_second_push_sends_only_new_chunks(pushed):
    ws, remote = pushed
    data = bytearray((ws.root / "data/big.bin").read_bytes())
    data[1_500_000:1_500_000] = b"inserted" * 100
    result = None
    release(ws, {"data/big.bin": bytes(data)}, "1.1.0")
    result = ws.push()
    assert result.pushed == ["ds@1.1.0"]
    assert 0 < result.bytes_uploaded < 2_500_000  # content-defined chunks: most of the file is already there
    assert ws.push().pushed == []  # nothing left


def test_status_says_offline_which_releases_are_not_pushed(pushed, cli, run_ws):
    ws, remote = pushed
    release(ws, {"new.txt": "n"}, "1.0.1")
    st = ws.status()
    assert st.remotes[0]["remote"] == "origin"
    assert st.remotes[0]["releases_not_pushed"] == ["ds@1.0.1"]
    res = cli(ws.root, "status")
    assert "Remote origin: 1 release not pushed (ds@1.0.1)" in res.output
    os.rename(remote, str(remote) + "-offline")  # no network (or folder) is needed to answer
    res = run_ws(ws.root, "status", check=True)  # the real executable's fast status path
    assert "Remote origin: 1 release not pushed (ds@1.0.1); run 'ws push origin'" in res.stdout
    os.rename(str(remote) + "-offline", remote)
    ws.push()
    assert ws.status().remotes[0]["releases_not_pushed"] == []
    data = json.loads(cli(ws.root, "status", "--json").output)
    assert data["remotes"][0]["releases_not_pushed"] == []


def test_different_release_under_same_version_is_refused(pushed, tmp_path, cli):
    ws, remote = pushed
    other = Workspace.init(tmp_path / "other")
    try:
        release(other, {"data/a.csv": "different"}, "1.0.0")
        other.add_remote("origin", str(remote))
        with pytest.raises(RemoteReleaseConflict):
            other.push()
        res = cli(other.root, "push")
        assert res.exit_code == 8
        assert "different release ds@1.0.0" in res.output
    finally:
        other.close()


def test_identical_release_already_there_is_a_noop(pushed, tmp_path):
    ws, remote = pushed
    clone = Workspace.clone(str(remote), "ds@1.0.0", tmp_path / "copy")
    try:
        result = clone.push("origin", "ds@1.0.0")
        assert result.pushed == [] and result.already == ["ds@1.0.0"] and result.bytes_uploaded == 0
    finally:
        clone.close()


def test_pull_picks_versions_by_expression(ws, tmp_path):
    ws.add_remote("origin", str(tmp_path / "remote"))
    for v in ("1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0"):
        release(ws, {"v.txt": v}, v)
    ws.push()
    target = Workspace.init(tmp_path / "t")
    try:
        target.add_remote("origin", str(tmp_path / "remote"))
        for expr, want in (("^1.0", "1.1.0"), (">=1.0,<1.1", "1.0.0"), ("~1.1", "1.1.0"), ("latest", "2.0.0"),
                           ("1.2.0-rc.1", "1.2.0-rc.1")):
            res = target.pull("origin", f"ds@{expr}")
            assert res.release == f"ds@{want}"
            assert (target.root / "v.txt").read_text() == want
        with pytest.raises(UnknownRemoteRelease):
            target.pull("origin", "nosuch")
    finally:
        target.close()


def test_pull_refuses_to_overwrite_local_changes_unless_forced(pushed, tmp_path, cli):
    ws, remote = pushed
    clone = Workspace.clone(str(remote), "ds", tmp_path / "copy")
    try:
        release(ws, {"data/a.csv": "x,y\n9,9\n"}, "1.1.0")
        ws.push()
        write(clone.root, "data/a.csv", "my local edit")
        with pytest.raises(UncommittedChanges):
            clone.pull("origin", "ds")
        res = cli(clone.root, "pull", "ds")
        assert res.exit_code == 8 and "data/a.csv" in res.output and "--force" in res.output
        assert (clone.root / "data/a.csv").read_text() == "my local edit"
        res = cli(clone.root, "pull", "origin", "ds", "--force")
        assert res.exit_code == 0, res.output
        assert (clone.root / "data/a.csv").read_text() == "x,y\n9,9\n"
        assert clone.status().clean
    finally:
        clone.close()


def _first_pack(remote: Path) -> Path:
    return next(p for p in (remote / "packs").rglob("*") if p.is_file())


def test_damaged_pack_is_named_and_nothing_is_written(pushed, tmp_path, cli):
    ws, remote = pushed
    pack = _first_pack(remote)
    data = bytearray(pack.read_bytes())
    data[len(data) // 3] ^= 0xFF
    pack.write_bytes(bytes(data))
    with pytest.raises(DamagedRemote) as exc:
        Workspace.clone(str(remote), "ds", tmp_path / "copy")
    assert pack.name in str(exc.value) and exc.value.exit_code == 6
    assert not (tmp_path / "copy").exists()
    target = Workspace.init(tmp_path / "t")
    try:
        target.add_remote("origin", str(remote))
        res = cli(target.root, "pull", "ds")
        assert res.exit_code == 6 and pack.name in res.output
        assert tree(target.root) == {} and target.releases.list() == []
        res = cli(target.root, "fsck", "--remote", "origin", "--read-data")
        assert res.exit_code == 6 and pack.name in res.output
        assert cli(target.root, "fsck", "--remote", "origin").exit_code == 0  # structure alone is fine
    finally:
        target.close()


def _forge_release(remote: Path, path: str, data: bytes = b"evil") -> None:
    """Put a release on the remote whose only file lands at ``path`` (its chunk is really there)."""
    src = Workspace.init(remote.parent / f"forger-{abs(hash(path))}")
    try:
        release(src, {"x": data}, "9.0.0", name="evil")
        src.add_remote("r", str(remote))
        src.push()
    finally:
        src.close()
    rec_path = remote / "releases" / "evil" / "9.0.0.json"
    record = json.loads(rec_path.read_text())
    record["files"][0]["path"] = path
    rec_path.write_text(json.dumps(record))


@pytest.mark.parametrize("bad", ["../outside.txt", "/etc/evil", "a/../../x", ".ws/catalog.db"])
def test_release_paths_escaping_the_workspace_are_refused(ws, tmp_path, cli, bad):
    remote = tmp_path / "remote"
    _forge_release(remote, bad)
    ws.add_remote("origin", str(remote))
    res = cli(ws.root, "pull", "evil")
    assert res.exit_code == 5, res.output
    assert res.output.count("\n") == 1 and "unsafe path" in res.output
    assert not (tmp_path / "outside.txt").exists() and tree(ws.root) == {}


def test_symlinked_parent_in_workspace_is_refused(ws, tmp_path):
    remote = tmp_path / "remote"
    _forge_release(remote, "link/evil.txt")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, ws.root / "link")
    ws.add_remote("origin", str(remote))
    with pytest.raises(PathOutsideWorkspace):
        ws.pull("origin", "evil")
    assert list(outside.iterdir()) == []


def test_many_small_files_make_few_remote_objects(ws, tmp_path):
    files = {f"d{i % 10}/f{i:05d}.txt": f"file {i}\n" for i in range(3000)}
    release(ws, files, "1.0.0")
    ws.add_remote("origin", str(tmp_path / "remote"))
    ws.push()
    objects = [p for p in (tmp_path / "remote").rglob("*") if p.is_file()]
    assert len(objects) <= 5  # marker, one pack, its index, the release record
    stored = (tmp_path / "remote" / "releases" / "ds" / "1.0.0.json").read_bytes()
    assert stored[:4] == b"\x28\xb5\x2f\xfd"  # a big record is one zstd frame of the JSON
    import zstandard

    record = json.loads(zstandard.ZstdDecompressor().decompress(stored))
    assert len(record["files"]) == 3000 and len(stored) < 0.3 * len(json.dumps(record))
    clone = Workspace.clone(str(tmp_path / "remote"), "ds", tmp_path / "copy")
    try:
        assert tree(clone.root) == tree(ws.root)
    finally:
        clone.close()


def test_memory_remote_roundtrip(ws, tmp_path):
    release(ws, {"a.txt": "in memory"}, "0.1.0")
    url = f"memory://test-{os.getpid()}-{id(ws)}"
    ws.add_remote("mem", url)
    assert ws.push("mem").pushed == ["ds@0.1.0"]
    clone = Workspace.clone(url, "ds", tmp_path / "copy")
    try:
        assert (clone.root / "a.txt").read_text() == "in memory"
    finally:
        clone.close()


def test_fsck_remote_reports_a_pack_without_index(pushed, cli):
    ws, remote = pushed
    pack = _first_pack(remote)
    (remote / "index" / pack.name).unlink()
    res = cli(ws.root, "fsck", "--remote", "origin", "--json")
    report = json.loads(res.output)
    assert res.exit_code == 6  # the release now needs chunks no index holds
    assert report["orphan_packs"] == [f"packs/{pack.name[:2]}/{pack.name}"]
    assert any("needs" in p for p in report["problems"])


def test_remote_commands_and_their_errors(ws, tmp_path, cli):
    res = cli(ws.root, "remote", "add", "origin", str(tmp_path / "r"), "--option", "region=x")
    assert res.exit_code == 0, res.output
    assert cli(ws.root, "remote", "add", "backup", str(tmp_path / "b"), "--default").exit_code == 0
    listed = json.loads(cli(ws.root, "remote", "list", "--json").output)
    assert [(r["name"], r["default"], r["options"]) for r in listed] == [
        ("backup", True, {}), ("origin", False, {"region": "x"})]
    config = (ws.root / ".ws" / "config.toml").read_text()
    assert "[remote.origin]" in config
    for args, code, text in [
        (("remote", "add", "origin", "/x"), 8, "already exists"),
        (("remote", "add", "bad name", "/x"), 2, "invalid remote name"),
        (("remote", "add", "s", "s3://b/p", "-o", "secret=abc"), 2, "ws login s"),
        (("remote", "add", "s", "s3://b/p", "-o", "novalue"), 2, "KEY=VALUE"),
        (("remote", "remove", "nosuch"), 4, "unknown remote"),
        (("push", "nosuch", "ds@1.0.0"), 4, "unknown remote"),
        (("remote", "releases", "origin"), 4, "not a ws remote"),
        (("clone", str(tmp_path / "r"), "ds", str(tmp_path / "c")), 4, "not a ws remote"),
    ]:
        res = cli(ws.root, *args)
        assert res.exit_code == code, (args, res.output)
        assert text in res.output, (args, res.output)
    assert not (tmp_path / "c").exists()
    assert cli(ws.root, "remote", "remove", "backup").exit_code == 0
    assert [r.name for r in ws.remotes()] == ["origin"]
    assert ws.remotes()[0].default  # the only remote is the default


def test_cli_push_clone_and_remote_releases(pushed, tmp_path, run_ws):
    ws, remote = pushed
    release(ws, {"more.txt": "m"}, "1.1.0")
    res = run_ws(ws.root, "push", "origin", "ds@1.1.0", check=True)
    assert "Pushed ds@1.1.0 to origin" in res.stdout
    rows = json.loads(run_ws(ws.root, "remote", "releases", "origin", "--json", check=True).stdout)
    assert [(r["title"], r["version"]) for r in rows] == [("ds", "1.0.0"), ("ds", "1.1.0")]
    res = run_ws(tmp_path, "clone", str(remote), "ds@~1.0", "copy", check=True)
    assert "Cloned ds@1.0.0" in res.stdout
    assert (tmp_path / "copy" / "data/a.csv").read_text() == "x,y\n1,2\n"
    res = run_ws(tmp_path, "clone", str(remote), "ds", "copy")
    assert res.returncode == 8 and res.stderr.startswith("ws: error:") and res.stderr.count("\n") == 1


def test_s3_push_and_clone_through_moto(ws, tmp_path, s3_bucket, monkeypatch, run_ws):
    from tests.sync.conftest import S3_KEY, S3_SECRET

    name, options, client = s3_bucket
    release(ws, {"data/a.csv": "a,b\n", "data/big.bin": os.urandom(2_000_000)}, "1.0.0")
    url = f"s3://{name}/team/ds"
    ws.add_remote("s3", url, {"endpoint_url": options["endpoint_url"], "region": options["region"]})
    env = {"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    res = run_ws(ws.root, "push", "s3", env=env, check=True)
    assert "Pushed ds@1.0.0 to s3" in res.stdout
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=name)["Contents"]]
    assert "team/ds/ws-remote.json" in keys and "team/ds/releases/ds/1.0.0.json" in keys
    res = run_ws(tmp_path, "clone", url, "ds", "copy", "-o", f"endpoint_url={options['endpoint_url']}",
                 "-o", "region=us-east-1", env=env, check=True)
    assert tree(tmp_path / "copy") == tree(ws.root)


def test_s3_without_credentials_is_one_line_exit_11(ws, tmp_path, s3_bucket, run_ws):
    name, options, _ = s3_bucket
    release(ws, {"a": "b"}, "1.0.0")
    ws.add_remote("s3", f"s3://{name}/p", {"endpoint_url": options["endpoint_url"]})
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    res = run_ws(ws.root, "push", "s3", env=env)
    assert res.returncode == 11, res.stderr
    assert res.stderr.count("\n") == 1 and "ws login s3" in res.stderr


def test_progress_reports_bytes_per_phase(ws, tmp_path):
    release(ws, {"a.bin": os.urandom(1_500_000), "b.txt": "b"}, "1.0.0")
    ws.add_remote("origin", str(tmp_path / "remote"))
    seen: dict[str, tuple[int, int]] = {}
    ws.push(progress=lambda phase, done, total: seen.__setitem__(phase, (done, total)))
    assert seen["uploading"][0] == seen["uploading"][1] >= 1_500_000
    target = Workspace.init(tmp_path / "t")
    try:
        target.add_remote("origin", str(tmp_path / "remote"))
        seen.clear()
        target.pull("origin", "ds", progress=lambda phase, done, total: seen.__setitem__(phase, (done, total)))
        assert seen["downloading"][0] == seen["downloading"][1] >= 1_500_000
        assert seen["writing"] == (1_500_001, 1_500_001)
    finally:
        target.close()


def test_pull_fetches_only_missing_chunks_with_range_gets(ws, tmp_path):
    shared, own = os.urandom(1_200_000), os.urandom(900_000)
    release(ws, {"shared.bin": shared, "own.bin": own}, "1.0.0")
    ws.add_remote("origin", str(tmp_path / "remote"))
    ws.push()
    target = Workspace.init(tmp_path / "t")
    try:
        release(target, {"other/copy.bin": shared}, "0.1.0", name="mine")  # the same bytes, stored locally
        target.add_remote("origin", str(tmp_path / "remote"))
        result = target.pull("origin", "ds")
        assert 900_000 <= result.bytes_fetched < 1_200_000  # part of the pack, by byte range
        assert (target.root / "shared.bin").read_bytes() == shared
        assert (target.root / "own.bin").read_bytes() == own
    finally:
        target.close()


def test_damaged_local_pack_is_not_pushed(ws, tmp_path, cli):
    release(ws, {"a.bin": os.urandom(800_000)}, "1.0.0")
    ws.add_remote("origin", str(tmp_path / "remote"))
    pack = Path(data_packs(ws.root)[0])
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    res = cli(ws.root, "push")
    assert res.exit_code == 6 and "damaged" in res.output and "ws fsck" in res.output
    assert not list((tmp_path / "remote").rglob("*.json"))[1:]  # only ws-remote.json, no release


def test_pull_of_a_release_that_differs_locally_is_refused_before_writing(pushed, tmp_path, cli):
    ws, remote = pushed
    other = Workspace.init(tmp_path / "other")
    try:
        release(other, {"data/a.csv": "mine"}, "1.0.0")
        other.add_remote("origin", str(remote))
        res = cli(other.root, "pull", "ds@1.0.0")
        assert res.exit_code == 8 and "different files" in res.output
        assert (other.root / "data/a.csv").read_text() == "mine" and not (other.root / "README").exists()
    finally:
        other.close()


def test_two_pushers_of_the_same_release_race_safely(pushed, tmp_path):
    import threading

    ws, remote = pushed
    twin = Workspace.clone(str(remote), "ds", tmp_path / "twin")  # the identical release, elsewhere
    target = str(tmp_path / "second-remote")
    results, errors = [], []
    for w in (ws, twin):
        w.add_remote("second", target)

    def push(w):
        try:
            results.append(Workspace.open(w.root).push("second", "ds@1.0.0"))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(w,)) for w in (ws, twin)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    twin.close()
    assert errors == []
    # exactly one wrote the record (create-only); the other found the same release there
    assert sorted((r.pushed, r.already) for r in results) == [([], ["ds@1.0.0"]), (["ds@1.0.0"], [])]
    assert len(list((tmp_path / "second-remote" / "releases").rglob("*.json"))) == 1


def test_pull_does_not_replace_a_local_folder_without_force(pushed, tmp_path, cli):
    ws, remote = pushed
    target = Workspace.init(tmp_path / "t")
    try:
        write(target.root, "README/notes.txt", "my notes")  # a folder where the release has a file
        target.add_remote("origin", str(remote))
        res = cli(target.root, "pull", "ds")
        assert res.exit_code == 8 and "README" in res.output
        assert (target.root / "README/notes.txt").read_text() == "my notes"
        assert cli(target.root, "pull", "ds", "--force").exit_code == 0
        assert (target.root / "README").read_text() == "hello"
    finally:
        target.close()


def test_pull_does_not_replace_a_file_with_a_folder_without_force(pushed, tmp_path, cli):
    ws, remote = pushed
    target = Workspace.init(tmp_path / "t")
    try:
        write(target.root, "data", "a file named like the release's folder")
        target.commit("mine")
        target.add_remote("origin", str(remote))
        res = cli(target.root, "pull", "ds")
        assert res.exit_code == 8 and "data" in res.output
        assert (target.root / "data").is_file()
        assert cli(target.root, "pull", "ds", "--force").exit_code == 0
        assert (target.root / "data/a.csv").read_text() == "x,y\n1,2\n"
        assert target.status().clean and "data" not in {e.path for e in target.ls()}
    finally:
        target.close()


def test_pull_of_a_newer_version_removes_files_it_dropped_but_keeps_local_work(pushed, tmp_path):
    ws, remote = pushed
    consumer = Workspace.clone(str(remote), "ds@1.0.0", tmp_path / "consumer")
    os.remove(ws.root / "README")
    os.remove(ws.root / "data/a.csv")
    release(ws, {"data/new.txt": "new"}, "1.1.0")
    ws.push()
    write(consumer.root, "data/a.csv", "my local edit")  # dropped upstream, changed here: kept
    write(consumer.root, "notes.txt", "mine")  # never part of the release: kept
    consumer.commit("local work")
    consumer.pull(None, "ds@1.1.0")
    assert sorted(tree(consumer.root)) == ["data/a.csv", "data/big.bin", "data/new.txt", "notes.txt"]
    assert consumer.status().clean
    assert "README" in [e.path for e in consumer.ls("HEAD~1")]  # history keeps the dropped file
    consumer.close()
