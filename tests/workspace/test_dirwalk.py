"""The forked status walk: the helper process is reaped and the pipe closed on every path.

Each case runs in a fresh interpreter, because DirWalk forks only when the
process has a single thread (a pytest worker may not) and because "this
process has no child left" is only meaningful in a process of our own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import errno, json, os, sys
    from pathlib import Path
    from workspace.tree.dirwalk import DirWalk
    from workspace.tree.ignore import IgnoreRules

    root, deep = sys.argv[1], sys.argv[2] == "deep"

    def too_deep(base):
        # a chain of folders whose path is longer than PATH_MAX: scandir on it fails (ENAMETOOLONG)
        fd = os.open(base, os.O_RDONLY)
        for _ in range(25):
            os.mkdir("d" * 200, dir_fd=fd)
            inner = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.close(fd)

    for i in range(6):
        top = os.path.join(root, f"t{i}")
        os.makedirs(top)
        open(os.path.join(top, "f.txt"), "w").write("x")
        if deep:
            too_deep(top)  # in every top folder, so the parent's share fails whatever the split
    fds = sorted(os.listdir("/proc/self/fd"))
    walk = DirWalk(root, IgnoreRules(Path(root)), parallel=True)
    forked = walk.pid is not None
    error = None
    try:
        digests, _detail = walk.finish()
        walked = sorted(digests)
    except OSError as exc:
        error, walked = errno.errorcode.get(exc.errno), None
    try:
        os.waitpid(-1, os.WNOHANG)
        children_left = True  # running or a zombie: nobody reaped it
    except ChildProcessError:
        children_left = False
    leaked = sorted(set(os.listdir("/proc/self/fd")) - set(fds))
    print(json.dumps({"forked": forked, "error": error, "walked": walked,
                      "children_left": children_left, "leaked_fds": leaked}))
""")


def _run(tmp_path, mode: str) -> dict:
    root = tmp_path / "tree"
    root.mkdir()
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(root), mode], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_helper_is_reaped_after_a_normal_walk(tmp_path):
    out = _run(tmp_path, "plain")
    assert out["forked"] and out["error"] is None
    assert out["walked"] == [f"t{i}" for i in range(6)]
    assert not out["children_left"] and out["leaked_fds"] == []


def test_helper_is_reaped_when_a_folder_cannot_be_read(tmp_path):
    out = _run(tmp_path, "deep")
    assert out["forked"] and out["error"] == "ENAMETOOLONG"  # the walk's error still reaches the caller
    assert not out["children_left"], "the forked helper was left behind (running or a zombie)"
    assert out["leaked_fds"] == [], "the pipe from the helper was not closed"


SPLIT = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from workspace.tree.dirwalk import DirWalk
    from workspace.tree.ignore import IgnoreRules

    root = sys.argv[1]
    rules = IgnoreRules(Path(root))
    serial = DirWalk(root, rules).finish()
    out = {}
    for label, known in (("unknown", {}), ("known", dict(serial[0]))):
        walk = DirWalk(root, rules, known, parallel=True)
        shares = [len(walk.theirs), len(walk.mine)]
        digests, detail = walk.finish()
        out[label] = {"shares": shares, "same": digests == serial[0] and detail == (serial[1] if not known else {})}
    print(json.dumps(out))
""")


def test_one_big_folder_is_split_between_helper_and_parent(tmp_path):
    """All files under data/ (one top-level folder): the walk lists data/ and shares its subfolders."""
    for i in range(40):
        sub = tmp_path / "data" / f"p{i:02d}" / ("inner" if i % 4 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        for k in range(1 + i % 3):
            (sub / f"f{k}.txt").write_text(f"{i} {k}\n")
    (tmp_path / "top.txt").write_text("top\n")
    proc = subprocess.run([sys.executable, "-c", SPLIT, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for label in ("unknown", "known"):
        theirs, mine = out[label]["shares"]
        assert out[label]["same"], label  # the same digests and listings as one walk on one process
        assert theirs > 0 and mine > 0 and theirs > mine, (label, theirs, mine)  # the helper takes ~3/5


# relist (the watcher's path) walks no helper: these run in the test process.

def _old_outermost(dirs) -> list[str]:
    """The pairwise definition relist used before (quadratic): kept here as the reference."""
    def below(d, top):
        return not top or d == top or d.startswith(top + "/")
    subtrees = sorted(set(dirs))
    return [d for i, d in enumerate(subtrees) if not any(below(d, s) for s in subtrees[:i])]


def test_outermost_subtrees_match_the_pairwise_definition():
    from workspace.tree.dirwalk import _in_any, _outermost

    cases = [[], ["a"], ["a", "a/b", "a/b/c", "ab", "ab/c", "b/c", "b"], ["x/y", "x/y/z", "x", "x-y/z"],
             ["", "a", "a/b"], ["a/b/c", "a/b", "d/e/f", "d"]]
    for dirs in cases:
        tops = _outermost(dirs)
        assert sorted(tops) == _old_outermost(dirs), dirs
        for d in ["", "a", "a/b", "a/b/c/d", "ab", "ab/c", "b", "b/c", "x", "x/y/z", "x-y", "x-y/z", "d/e", "q"]:
            expected = any(not s or d == s or d.startswith(s + "/") for s in tops)
            assert _in_any(d, tops) == expected, (dirs, d)


def test_relist_with_nested_dirty_subtrees_gives_what_a_full_walk_gives(tmp_path):
    from pathlib import Path

    from workspace.tree.dirwalk import DirWalk, relist
    from workspace.tree.ignore import IgnoreRules

    for d in ["a/b/c", "a/bc", "ab/c", "d/e"]:
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "f.txt").write_text(d)
    (tmp_path / "top.txt").write_text("top")
    rules = IgnoreRules(Path(tmp_path))
    before, _ = DirWalk(str(tmp_path), rules).finish()
    (tmp_path / "a/b/c/g.txt").write_text("new")
    (tmp_path / "a/b/c/h").mkdir()
    (tmp_path / "a/b/c/h/i.txt").write_text("new")
    (tmp_path / "ab/c/f.txt").write_text("changed")
    after, after_detail = DirWalk(str(tmp_path), rules).finish()
    for dirty in ([["a/b", True], ["a/b/c", True], ["a", True], ["ab", True]],
                  [["a/b/c", True], ["a/b/c/h", True], ["ab/c", False]],
                  [["", True], ["a", True]]):
        digests, detail, _ = relist(str(tmp_path), rules, dict(before), [""], dirty)
        assert digests == after, dirty
        assert detail == {d: after_detail[d] for d in after if before.get(d) != after[d]}, dirty


def test_relist_handles_tens_of_thousands_of_dirty_subtrees(tmp_path):
    """mkdir data/s{1..5000}/{a,b,c} under a watcher: 20,000 dirty sub-trees, as many known folders.

    Tested pairwise this took minutes; looked up by ancestors it is a moment.
    """
    from pathlib import Path

    from workspace.tree.dirwalk import relist
    from workspace.tree.ignore import IgnoreRules

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("x")
    dirty = []
    known = {}
    for i in range(5000):
        dirty.append([f"data/s{i}", True])
        dirty += [[f"data/s{i}/{c}", True] for c in "abc"]
        known[f"old/k{i}"] = b"d"
        known[f"data/s{i}/a"] = b"d"
    digests, detail, _ = relist(str(tmp_path), IgnoreRules(Path(tmp_path)), known, ["data"], dirty)
    assert digests == {**{f"old/k{i}": b"d" for i in range(5000)}, "data": digests["data"]}
    assert list(detail) == ["data"]
