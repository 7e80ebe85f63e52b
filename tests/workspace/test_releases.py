"""Releases: creating, listing, resolving, mappings, importing remote records, gc safety, CLI."""

from __future__ import annotations

import copy
import json
import os
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog import objects as q
from tests.conftest import write, ws_exe
from workspace.errors import InvalidArgument, PathOutsideWorkspace, UnknownRef
from workspace.releases.mapping import InvalidReleaseMapping
from workspace.releases.records import (
    InvalidReleaseRecord,
    ReleaseConflict,
    VersionNotIncreasing,
)
from workspace.releases.versions import InvalidVersion, UnknownRelease


@pytest.fixture
def proj(ws):
    """A workspace with one commit of three files."""
    write(ws.root, "data/a.csv", "a,b\n1,2\n")
    write(ws.root, "data/tmp/scratch.bin", b"\x00" * 100)
    write(ws.root, "README.md", "# project\n")
    ws.commit("first")
    return ws


def test_create_records_every_tracked_file(proj):
    rel = proj.releases.create("ds", version="1.0.0", message="first cut")
    assert [f.path for f in rel.files] == ["README.md", "data/a.csv", "data/tmp/scratch.bin"]
    head = proj.head()[1]
    assert rel.commit == head and rel.description == "first cut"
    assert rel.author == "Test User <test@example.org>"
    for f in rel.files:
        assert f.sha256 == f.id == proj.manifest()[f.path].file_id
    a = next(f for f in rel.files if f.path == "data/a.csv")
    assert a.size == 8
    assert proj.releases.get("ds", "1.0.0").to_dict() == rel.to_dict()


def test_versions_must_increase_and_prereleases_are_allowed(proj):
    proj.releases.create("ds", version="1.0.0-rc.1")
    proj.releases.create("ds", version="1.0.0")
    with pytest.raises(ReleaseConflict) as info:
        proj.releases.create("ds", version="1.0.0")
    assert info.value.exit_code == 8
    with pytest.raises(VersionNotIncreasing) as info:
        proj.releases.create("ds", version="0.9.0")
    assert info.value.exit_code == 2 and "1.0.0" in str(info.value)
    with pytest.raises(InvalidVersion):
        proj.releases.create("ds", version="1.1")
    # another title has its own sequence
    assert proj.releases.create("other", version="0.0.1").version == "0.0.1"


def test_bump_starts_from_zero_and_follows_the_highest(proj):
    assert proj.releases.create("ds", bump="minor").version == "0.1.0"
    assert proj.releases.create("ds", bump="patch").version == "0.1.1"
    assert proj.releases.create("ds", bump="major").version == "1.0.0"
    with pytest.raises(InvalidArgument):
        proj.releases.create("ds", bump="major", version="3.0.0")
    with pytest.raises(InvalidArgument):
        proj.releases.create("ds")


def test_release_from_an_older_ref_ignores_later_commits(proj):
    first = proj.head()[1]
    write(proj.root, "data/b.csv", "new")
    proj.commit("second")
    rel = proj.releases.create("ds", version="1.0.0", from_ref=first)
    assert rel.commit == first and "data/b.csv" not in [f.path for f in rel.files]
    with pytest.raises(UnknownRef):
        proj.releases.create("ds", version="2.0.0", from_ref="no-such-branch")


def test_job_comes_from_the_commit_provenance(proj, cli):
    write(proj.root, "out/result.csv", "x\n")
    job = {"id": "j-123", "name": "align", "workflow": None}
    proj.commit("job output", provenance={"job": job, "exit_code": 0})
    rel = proj.releases.create("ds", version="1.0.0")
    assert rel.job == job and rel.to_record()["job"] == job
    res = cli(proj.root, "release", "show", "ds@1.0.0")
    assert "Job:     align" in res.output


def test_nothing_committed_is_an_error(ws):
    with pytest.raises(UnknownRef, match="nothing is committed"):
        ws.releases.create("ds", version="1.0.0")


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "a b", "x" * 101])
def test_unsafe_titles_are_refused(proj, name):
    with pytest.raises(InvalidArgument):
        proj.releases.create(name, version="1.0.0")


def test_mapping_file_selects_paths_and_carries_metadata(proj):
    write(proj.root, "releases/ds.toml",
          'description = "the data"\ninclude = ["data/**"]\nexclude = ["data/tmp/"]\n'
          '[metadata]\nlicense = "CC-BY-4.0"\nrows = 1\n')
    rel = proj.releases.create("ds", version="1.0.0")
    assert [f.path for f in rel.files] == ["data/a.csv"]
    assert rel.description == "the data"
    assert rel.metadata == {"license": "CC-BY-4.0", "rows": 1}


def test_mapping_in_ws_toml(proj):
    write(proj.root, "ws.toml", '[release.docs]\ninclude = ["*.md"]\ndescription = "docs"\n')
    rel = proj.releases.create("docs", version="0.1.0")
    assert [f.path for f in rel.files] == ["README.md"]
    # a title without a table in ws.toml takes everything (ws.toml is not committed, so not in it)
    assert len(proj.releases.create("all", version="0.1.0").files) == 3


@pytest.mark.parametrize(
    "text, field",
    [
        ('include = "data/**"\nexclude = 3\n', "exclude"),
        ("include = [1]\n", "include"),
        ("descripton = 'typo'\n", "descripton"),
        ("metadata = 'x'\n", "metadata"),
        ("description = ['x']\n", "description"),
        ("include = [\n", "malformed TOML"),
    ],
)
def test_malformed_mapping_names_file_and_field(proj, text, field):
    write(proj.root, "releases/ds.toml", text)
    with pytest.raises(InvalidReleaseMapping) as info:
        proj.releases.create("ds", version="1.0.0")
    assert info.value.exit_code == 9
    assert "releases/ds.toml" in str(info.value) and field in str(info.value)


def test_mapping_that_selects_nothing_is_an_error(proj):
    write(proj.root, "releases/ds.toml", 'include = ["nothing/**"]\n')
    with pytest.raises(InvalidReleaseMapping, match="selects no file"):
        proj.releases.create("ds", version="1.0.0")
    assert proj.releases.list() == []


def test_mapping_defined_twice_is_an_error(proj):
    write(proj.root, "releases/ds.toml", 'include = ["data/**"]\n')
    write(proj.root, "ws.toml", '[release.ds]\ninclude = ["*.md"]\n')
    with pytest.raises(InvalidReleaseMapping, match="mapped twice"):
        proj.releases.create("ds", version="1.0.0")


def test_list_orders_by_semver_and_resolve_takes_expressions(proj):
    for v in ["1.9.0", "1.10.0", "2.0.0-rc.1"]:
        proj.releases.create("ds", version=v)
    proj.releases.create("aa", version="0.1.0")
    assert [(r.title, r.version) for r in proj.releases.list()] == [
        ("aa", "0.1.0"), ("ds", "1.9.0"), ("ds", "1.10.0"), ("ds", "2.0.0-rc.1")]
    assert [r.version for r in proj.releases.list("aa")] == ["0.1.0"]
    assert proj.releases.resolve("ds").version == "1.10.0"
    assert proj.releases.resolve("ds", "~1.9").version == "1.9.0"
    assert proj.releases.resolve("ds", ">=2.0.0-rc.1").version == "2.0.0-rc.1"
    with pytest.raises(UnknownRelease) as info:
        proj.releases.resolve("ds", "^3")
    assert info.value.exit_code == 4 and "'ds'" in str(info.value)
    with pytest.raises(UnknownRelease):
        proj.releases.resolve("nope")
    with pytest.raises(UnknownRelease, match="known versions"):
        proj.releases.get("ds", "1.0.0")


def test_to_record_has_chunk_lists_from_the_catalog(proj):
    rec = proj.releases.create("ds", version="1.0.0").to_record()
    assert rec["format"] == 1 and rec["title"] == "ds" and rec["version"] == "1.0.0"
    json.dumps(rec)  # plain JSON
    for f in rec["files"]:
        info = q.get_file(proj.catalog, f["id"])
        assert f["chunks"] == info.chunk_ids and f["size"] == info.size


def _record(proj):
    return proj.releases.create("ds", version="1.0.0").to_record()


def test_import_record_same_content_is_a_noop(proj, tmp_path):
    rec = _record(proj)
    assert proj.releases.import_record(copy.deepcopy(rec)).version == "1.0.0"
    assert len(proj.releases.list()) == 1
    changed = copy.deepcopy(rec)
    other = next(f for f in changed["files"] if f["path"] == "data/a.csv")
    other["path"] = "data/renamed.csv"
    with pytest.raises(ReleaseConflict) as info:
        proj.releases.import_record(changed)
    assert info.value.exit_code == 8


def test_import_record_adds_a_release_whose_content_is_stored(proj):
    rec = _record(proj)
    rec["version"] = "0.5.0"  # older than the local one: imports need not increase
    rec["metadata"] = {"from": "remote"}
    rel = proj.releases.import_record(rec)
    assert rel.version == "0.5.0" and rel.metadata == {"from": "remote"}
    assert rel.created_at == rec["created_at"] and rel.author == rec["author"]
    assert rel.to_record() == rec


@pytest.mark.parametrize("path", ["../evil", "/etc/passwd", "a/../../b", ".ws/catalog.db", "a//b", ".ws",
                                  "README.md/..", "data/..", "data/./x", "data/x\x00"])
def test_import_record_refuses_paths_outside_the_workspace(proj, path):
    rec = _record(proj)
    rec["version"] = "2.0.0"
    rec["files"][-1]["path"] = path  # after safe paths in the same folders
    with pytest.raises(PathOutsideWorkspace) as info:
        proj.releases.import_record(rec)
    assert info.value.exit_code == 5
    assert [r.version for r in proj.releases.list()] == ["1.0.0"]


def test_import_record_refuses_symlinked_parents(proj, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (proj.root / "link").symlink_to(outside)
    rec = _record(proj)
    rec["version"] = "2.0.0"
    rec["files"][0]["path"] = "link/x"
    with pytest.raises(PathOutsideWorkspace, match="symlink"):
        proj.releases.import_record(rec)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r["files"][0].update(id="ABC"),
        lambda r: r["files"][0].update(sha256="0" * 64),
        lambda r: r["files"][0].update(size=-1),
        lambda r: r["files"][0].update(chunks=["zz"]),
        lambda r: r.update(version="1.0"),
        lambda r: r.update(format=99),
        lambda r: r.update(files=[]),
        lambda r: r["files"].append(dict(r["files"][0])),
        lambda r: r.update(commit="HEAD"),
        lambda r: r.update(created_at="yesterday"),
    ],
)
def test_import_record_refuses_malformed_records(proj, mutate):
    rec = _record(proj)
    rec["version"] = "2.0.0"
    mutate(rec)
    with pytest.raises((InvalidReleaseRecord, InvalidVersion, InvalidArgument)):
        proj.releases.import_record(rec)
    assert [r.version for r in proj.releases.list()] == ["1.0.0"]


def test_import_record_needs_the_content_stored_first(proj):
    rec = _record(proj)
    rec["version"] = "2.0.0"
    rec["files"][0]["id"] = rec["files"][0]["sha256"] = "ab" * 32
    rec["files"][0]["chunks"] = ["ab" * 32]  # a consistent record, whose content is not here
    with pytest.raises(Exception, match="not stored locally") as info:
        proj.releases.import_record(rec)
    assert info.value.exit_code == 6


def _store(ws, data: bytes) -> str:
    """Store content the way a pull does (packs + file row), with no commit holding it."""
    import time

    with ws.store.writer() as w:
        d = w.add_bytes(data)
        w.seal()
        with ws.catalog.write():
            w.record(time.time_ns())
            q.add_files(ws.catalog, [q.FileInfo(d.id, d.size, d.chunk_ids)])
    return d.id


def test_gc_keeps_content_that_only_a_release_holds(proj):
    rec = _record(proj)
    released = _store(proj, b"R" * 5000)
    dropped = _store(proj, b"D" * 5000)
    rec["version"] = "2.0.0"
    rec["files"] = [{"path": "pulled.bin", "id": released, "sha256": released, "size": 5000, "mode": 0o644,
                     "chunks": q.get_file(proj.catalog, released).chunk_ids}]
    proj.releases.import_record(rec)
    proj.gc()
    assert q.known_files(proj.catalog, [released, dropped]) == {released}
    info = q.get_file(proj.catalog, released)
    assert b"".join(proj.store.iter_file(info)) == b"R" * 5000


# -- command line -------------------------------------------------------------
def test_cli_create_list_show(proj, cli):
    write(proj.root, "data/a.csv", "dirty\n")  # uncommitted: the release takes the commit
    res = cli(proj.root, "release", "create", "ds", "--bump", "minor", "-m", "hello")
    assert res.exit_code == 0, res.output
    assert "ds@0.1.0" in res.output and proj.head()[1][:12] in res.output
    res = cli(proj.root, "release", "create", "ds", "--version", "1.0.0", "--json")
    data = json.loads(res.output)
    assert data["version"] == "1.0.0" and data["file_count"] == 3
    res = cli(proj.root, "release", "list", "--json")
    assert [r["version"] for r in json.loads(res.output)] == ["0.1.0", "1.0.0"]
    res = cli(proj.root, "release", "list")
    assert "0.1.0" in res.output and "1.0.0" in res.output
    res = cli(proj.root, "release", "show", "ds@^0.1", "--json")
    shown = json.loads(res.output)
    assert shown["version"] == "0.1.0" and shown["description"] == "hello"
    assert {f["path"] for f in shown["files"]} == {"README.md", "data/a.csv", "data/tmp/scratch.bin"}
    res = cli(proj.root, "release", "show", "ds")
    assert "release ds@1.0.0" in res.output and "data/a.csv" in res.output


@pytest.mark.parametrize(
    "args, code, text",
    [
        (["release", "show", "ds@9"], 4, "no version matches"),
        (["release", "show", "nope"], 4, "no release named"),
        (["release", "show", "ds@>>1"], 2, "invalid version expression"),
        (["release", "create", "ds"], 2, "exactly one"),
        (["release", "create", "ds", "--bump", "huge"], 2, "invalid bump"),
        (["release", "create", "ds", "--version", "1.0"], 2, "invalid version"),
        (["release", "create", "ds", "--version", "0.0.1"], 2, "must be greater"),
        (["release", "create", "ds", "--version", "1.0.0"], 8, "already exists"),
        (["release", "create", "../x", "--version", "2.0.0"], 2, "invalid release name"),
    ],
)
def test_cli_errors_are_one_line_with_exit_codes(proj, run_ws, args, code, text):
    proj.releases.create("ds", version="1.0.0")
    res = run_ws(proj.root, *args)
    assert res.returncode == code, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ws: error:") and text in lines[0]


def test_cli_malformed_mapping_exits_9(proj, run_ws):
    write(proj.root, "releases/ds.toml", "include = 5\n")
    res = run_ws(proj.root, "release", "create", "ds", "--version", "1.0.0")
    assert res.returncode == 9
    assert "releases/ds.toml" in res.stderr and "'include'" in res.stderr


def test_concurrent_bumps_get_distinct_versions(proj):
    procs = [subprocess.Popen([*ws_exe(), "release", "create", "ds", "--bump", "patch", "--json"],
                              cwd=proj.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert all(rc == 0 for _, _, rc in results), [e for _, e, _ in results]
    versions = sorted(json.loads(o)["version"] for o, _, _ in results)
    assert versions == ["0.0.1", "0.0.2", "0.0.3", "0.0.4"]


_segment = st.sampled_from(["a", "b.txt", ".", "..", "", ".ws", "x y", "\\", "\x00", "~", "..."])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_segment, min_size=1, max_size=5).map("/".join), st.booleans())
def test_accepted_record_paths_always_land_inside_the_workspace(proj, path, absolute):
    from workspace.releases.records import validate_record

    path = "/" + path if absolute else path
    rec = {"format": 1, "title": "ds", "version": "1.0.0", "created_at": "2026-01-01T00:00:00+00:00",
           "files": [{"path": path, "id": "ab" * 32, "sha256": "ab" * 32, "size": 1, "mode": 0o644,
                      "chunks": ["ab" * 32]}]}
    try:
        validate_record(rec, proj.root)
    except PathOutsideWorkspace:
        return
    full = os.path.normpath(os.path.join(proj.root, path))
    assert full.startswith(str(proj.root) + os.sep)
    assert not full.startswith(str(proj.root / ".ws"))
    assert "\x00" not in path  # a backslash is an ordinary character in POSIX names


def test_cli_show_prints_description_metadata_and_checksums(proj, cli):
    write(proj.root, "releases/ds.toml", 'description = "Survey"\ninclude = ["data/a.csv"]\n[metadata]\nlicense = "MIT"\n')
    rel = proj.releases.create("ds", version="1.0.0")
    res = cli(proj.root, "release", "show", "ds@1.0.0")
    assert res.exit_code == 0, res.output
    assert "Survey" in res.output and "license: MIT" in res.output
    assert f"{rel.files[0].sha256}" in res.output and "data/a.csv" in res.output
    res = cli(proj.root, "release", "list", "nope")
    assert res.exit_code == 0 and "no releases named 'nope'" in res.output


def test_local_and_remote_records_share_one_digest(proj):
    """One definition of 'same files': a release's digest equals the digest of its record."""
    from sync.remote import record_digest
    from workspace.objects.hashing import release_digest

    rel = proj.releases.list()[0] if proj.releases.list() else proj.releases.create("one", version="1.0.0")
    record = rel.to_record()
    assert rel.digest == record_digest(record)
    shuffled = [(f["path"], f["id"], f["size"], f["mode"]) for f in reversed(record["files"])]
    assert release_digest(shuffled) == rel.digest
