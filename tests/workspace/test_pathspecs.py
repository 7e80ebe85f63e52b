"""One pathspec matcher (git's wildmatch: '*' stops at '/', '**' does not) for ls, status, restore, diff, spec inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import write
from workspace import pathspecs

FILES = ["data/x.txt", "data/sub/y.txt", "data/z.csv", "top.txt", "other/data/w.txt"]


@pytest.mark.parametrize("pattern, expected", [
    ("data/*.txt", ["data/x.txt"]),
    ("data/**/*.txt", ["data/sub/y.txt", "data/x.txt"]),
    ("**/data/*.txt", ["data/x.txt", "other/data/w.txt"]),
    ("*.txt", ["data/sub/y.txt", "data/x.txt", "other/data/w.txt", "top.txt"]),
    ("data", ["data/sub/y.txt", "data/x.txt", "data/z.csv"]),
    ("data/", ["data/sub/y.txt", "data/x.txt", "data/z.csv"]),
    ("data/sub", ["data/sub/y.txt"]),
    ("data/?.csv", ["data/z.csv"]),
    ("data/[xz].*", ["data/x.txt", "data/z.csv"]),
    ("top.txt", ["top.txt"]),
    ("y.txt", []),  # a plain path is a path from the root, not a name anywhere
])
def test_the_matcher(pattern, expected):
    assert sorted(pathspecs.compile([pattern]).filter(FILES)) == expected


def test_patterns_from_a_subfolder_are_relative_to_it(ws):
    (ws.root / "data").mkdir()

    def rel(p):
        return ws.rel(p, ws.root / "data")

    assert pathspecs.resolve("*.txt", rel) == "data/**/*.txt"
    assert pathspecs.resolve("sub/*.txt", rel) == "data/sub/*.txt"
    assert pathspecs.resolve("../top.txt", rel) == "top.txt"
    spec = pathspecs.compile([pathspecs.resolve("*.txt", rel)])
    assert spec.filter(FILES) == ["data/x.txt", "data/sub/y.txt"]


@pytest.fixture
def tree(ws):
    for p in FILES:
        write(ws.root, p, p + "\n")
    ws.commit("files")
    return ws


def test_ls_star_does_not_cross_folders(tree, run_ws):
    def ls(*args):
        return run_ws(tree.root, "ls", *args, check=True).stdout.split()

    assert ls("HEAD", "data/*.txt") == ["data/x.txt"]
    assert ls("data/*.txt") == ["data/x.txt"]
    assert ls("HEAD", "data/**/*.txt") == ["data/sub/y.txt", "data/x.txt"]
    assert ls("*.csv") == ["data/z.csv"]


def test_status_takes_pathspecs(tree, run_ws):
    for p in FILES:
        write(tree.root, p, "changed\n")
    write(tree.root, "data/new.txt", "new\n")
    st = json.loads(run_ws(tree.root, "status", "data/*.txt", "--json", check=True).stdout)
    assert st["modified"] == ["data/x.txt"] and st["added"] == ["data/new.txt"] and st["deleted"] == []
    st = json.loads(run_ws(tree.root / "data", "status", "*.txt", "--json", check=True).stdout)
    assert st["modified"] == ["data/sub/y.txt", "data/x.txt"]  # relative to the current folder, any depth
    text = run_ws(tree.root, "status", "data/sub", check=True).stdout
    assert "modified: data/sub/y.txt" in text and "data/x.txt" not in text


def test_diff_takes_pathspecs(tree, run_ws):
    for p in FILES:
        write(tree.root, p, "changed\n")
    d = json.loads(run_ws(tree.root, "diff", "-p", "data/*.txt", "--json", check=True).stdout)
    assert [e["path"] for e in d["changes"]] == ["data/x.txt"]
    d = json.loads(run_ws(tree.root, "diff", "-p", "data/**/*.txt", "-p", "top.txt", "--json", check=True).stdout)
    assert [e["path"] for e in d["changes"]] == ["data/sub/y.txt", "data/x.txt", "top.txt"]


def test_restore_takes_pathspecs(tree, run_ws):
    for p in FILES:
        write(tree.root, p, "changed\n")
    proc = run_ws(tree.root, "restore", "data/*.txt", check=True)
    assert proc.stdout.strip() == "Restored 1 file(s) from HEAD"
    assert (tree.root / "data/x.txt").read_text() == "data/x.txt\n"
    assert (tree.root / "data/sub/y.txt").read_text() == "changed\n"
    proc = run_ws(tree.root, "restore", "data/*.bin")
    assert proc.returncode == 4 and "pattern 'data/*.bin' matches no file in HEAD" in proc.stderr


def test_spec_inputs_star_does_not_cross_folders(tree, run_ws):
    write(tree.root, "jobs/count.yaml", "name: count\ncommand: cat data/*.txt > n.out\n"
                                        "inputs: ['data/*.txt']\noutputs: [n.out]\n")
    write(tree.root, "jobs/deep.yaml", "name: deep\ncommand: cat data/*.txt > d.out\n"
                                       "inputs: ['data/**/*.txt']\noutputs: [d.out]\n")
    shallow = tree.jobs.expand(["count"])
    deep = tree.jobs.expand(["deep"])
    assert sorted(shallow[0].input_ids) == ["data/x.txt"]
    assert sorted(deep[0].input_ids) == ["data/sub/y.txt", "data/x.txt"]


def test_plain_status_does_not_import_pathspec(tree):
    code = ("import sys\nsys.argv = ['ws', 'status']\nfrom workspace.cli.entry import main\n"
            "try:\n    main()\nfinally:\n    print('pathspec' in sys.modules, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tree.root, capture_output=True, text=True, timeout=120)
    assert proc.stderr.strip().splitlines()[-1] == "False", proc.stderr
