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
