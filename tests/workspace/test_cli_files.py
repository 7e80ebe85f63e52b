"""The ws CLI for versioned files: Typer runner for output shapes, real subprocesses end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import data_packs, write


@pytest.fixture
def proj(tmp_path, cli):
    r = cli(tmp_path, "init", "proj")
    assert r.exit_code == 0, r.output
    return tmp_path / "proj"


def test_status_commit_log_json(proj, cli):
    write(proj, "a.txt", "hello\n")
    r = cli(proj, "status", "--json")
    data = json.loads(r.output)
    assert data == {"branch": "main", "head": None, "added": ["a.txt"], "modified": [], "deleted": []}
    r = cli(proj, "commit", "-m", "first", "--json")
    assert r.exit_code == 0, r.output
    cid = json.loads(r.output)["commit"]["id"]
    log = json.loads(cli(proj, "log", "--json").output)
    assert [c["id"] for c in log] == [cid]
    assert set(log[0]) >= {"id", "parent", "message", "author", "time"}
    assert log[0]["author"] == "Test User <test@example.org>"


def test_commit_nothing_is_a_message_not_a_commit(proj, cli):
    r = cli(proj, "commit", "-m", "empty")
    assert r.exit_code == 1 and "nothing to commit" in r.output


def test_diff_show_ls_cat(proj, cli):
    write(proj, "t.txt", "one\n")
    cli(proj, "commit", "-m", "one")
    write(proj, "t.txt", "two\n")
    r = cli(proj, "diff")
    assert "-one" in r.output and "+two" in r.output
    r = cli(proj, "diff", "--stat")
    assert "modified" in r.output and "t.txt" in r.output
    cli(proj, "commit", "-m", "two")
    d = json.loads(cli(proj, "diff", "HEAD~1", "HEAD", "--json").output)
    assert [c["change"] for c in d["changes"]] == ["modified"]
    assert "two" in cli(proj, "show").output
    assert cli(proj, "cat", "HEAD~1:t.txt").output == "one\n"
    assert cli(proj, "ls").output.split() == ["t.txt"]


def test_branch_switch_checkout_restore(proj, cli):
    write(proj, "a.txt", "1")
    cli(proj, "commit", "-m", "one")
    assert cli(proj, "branch", "exp").exit_code == 0
    assert cli(proj, "switch", "exp").exit_code == 0
    branches = json.loads(cli(proj, "branch", "--json").output)
    assert [b["name"] for b in branches if b["current"]] == ["exp"]
    write(proj, "a.txt", "dirty")
    r = cli(proj, "checkout", "main")
    assert r.exit_code == 0  # same content in main: the edit is carried over
    write(proj, "b.txt", "2")
    cli(proj, "commit", "-m", "two")
    write(proj, "b.txt", "dirty")
    r = cli(proj, "checkout", "HEAD~1")
    assert r.exit_code == 8 and "uncommitted" in r.output
    assert cli(proj, "restore", "b.txt").exit_code == 0
    assert (proj / "b.txt").read_text() == "2"


@pytest.mark.parametrize("args,code,needle", [
    (["log", "--ref", "nope"], 4, "unknown ref"),
    (["cat", "HEAD:missing"], 4, "does not exist"),
    (["commit", "-m", "x", "../../outside"], 5, "outside the workspace"),
    (["checkout", "deadbeef"], 4, "unknown ref"),
    (["branch", "bad..name"], 2, "invalid branch name"),
])
def test_errors_are_one_line_with_exit_code(proj, run_ws, args, code, needle):
    write(proj, "a.txt", "1")
    run_ws(proj, "commit", "-m", "one", check=True)
    proc = run_ws(proj, *args)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ws: error:") and needle in lines[0]


def test_not_a_workspace(tmp_path, run_ws):
    proc = run_ws(tmp_path, "status")
    assert proc.returncode == 3 and "not a ws workspace" in proc.stderr
    proc = run_ws(tmp_path, "log")
    assert proc.returncode == 3


def test_end_to_end_in_subprocess_from_subfolder(tmp_path, run_ws):
    run_ws(tmp_path, "init", "p", check=True)
    proj = tmp_path / "p"
    write(proj, "deep/er/file.bin", os.urandom(1_000_000))
    sub = proj / "deep"
    run_ws(sub, "commit", "-m", "from a subfolder", check=True)
    st = json.loads(run_ws(sub, "status", "--json", check=True).stdout)
    assert st["added"] == [] and st["head"]
    assert run_ws(proj, "fsck", check=True).stdout.strip().endswith("ok")
    proc = run_ws(proj, "init")
    assert proc.returncode == 8


def test_fsck_exit_code_on_damage(tmp_path, run_ws):
    run_ws(tmp_path, "init", "p", check=True)
    proj = tmp_path / "p"
    write(proj, "x.bin", os.urandom(50_000))
    run_ws(proj, "commit", "-m", "one", check=True)
    [pack] = [Path(p) for p in data_packs(proj)]
    data = bytearray(pack.read_bytes())
    data[1000] ^= 0xFF
    pack.write_bytes(bytes(data))
    proc = run_ws(proj, "fsck")
    assert proc.returncode == 6 and "x.bin" in proc.stderr


def test_help_teaches(cli, tmp_path):
    r = cli(tmp_path, "--help")
    assert r.exit_code == 0 and "ws init" in r.output
    r = cli(tmp_path, "commit", "--help")
    assert "Example" in r.output


def test_malformed_config_is_one_line_exit_9(tmp_path, run_ws):
    run_ws(tmp_path, "init", "p", check=True)
    proj = tmp_path / "p"
    (proj / ".ws/config.toml").write_text("[core\nbroken = ")
    write(proj, "a.txt", "1")
    proc = run_ws(proj, "commit", "-m", "x")
    assert proc.returncode == 9, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "config.toml" in proc.stderr
    assert run_ws(proj, "log", "--json", check=True).stdout.strip() == "[]"  # nothing half-written


def test_cat_paths_with_colons_and_branch_d_without_name(proj, cli):
    write(proj, "a:b.txt", "colon")
    cli(proj, "commit", "-m", "one")
    assert cli(proj, "cat", "a:b.txt").output == "colon"
    assert cli(proj, "cat", "HEAD:a:b.txt").output == "colon"
    r = cli(proj, "branch", "-d")
    assert r.exit_code == 2


def test_mode_change_in_plain_diff_and_bad_folder_names(proj, cli):
    p = write(proj, "run.sh", "echo")
    cli(proj, "commit", "-m", "one")
    os.chmod(p, 0o755)
    assert "mode change 644 -> 755 run.sh" in cli(proj, "diff").output
    bad = os.path.join(os.fsencode(proj), b"dir\xfe")
    os.mkdir(bad)
    with open(os.path.join(bad, b"f.txt"), "wb") as f:
        f.write(b"x")
    r = cli(proj, "status", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["modified"] == ["run.sh"]
