"""``ws jobs cancel --reason`` and ``ws jobs delete``: recorded in the catalog and in the job records under .ws/."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import write


def _json(run_ws, root, *args):
    proc = run_ws(root, *args, "--json")
    assert proc.returncode == 0, (args, proc.stderr)
    return json.loads(proc.stdout)


def _rebuild(run_ws, root: Path) -> None:
    db = root / ".ws" / "catalog.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.unlink()
    run_ws(root, "fsck", "--rebuild-catalog", check=True)


def test_cancel_reason_delete_and_rebuild(tmp_path, run_ws):
    run_ws(tmp_path, "init", "p", check=True)
    root = tmp_path / "p"
    write(root, "jobs/done.yaml", 'name: done\ncommand: "mkdir -p out && echo {x} > out/{x}.txt"\n'
                                  'outputs: ["out/{x}.txt"]\nparams: {x: [a, b]}\n')
    write(root, "jobs/slow.yaml", "name: slow\ncommand: while [ ! -e go ]; do sleep 0.05; done\n")
    finished = _json(run_ws, root, "run", "done", "--wait")["jobs"]
    slow = _json(run_ws, root, "run", "slow")["jobs"][0]["id"]

    refused = run_ws(root, "jobs", "delete", slow)
    assert refused.returncode == 1 and refused.stderr.startswith("ws: error: ")
    assert f"ws jobs cancel {slow}" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1

    assert _json(run_ws, root, "jobs", "cancel", slow, "--reason", "wrong genome, see #12")["cancelled"] == [slow]
    shown = _json(run_ws, root, "jobs", "show", slow)
    assert shown["state"] == "CANCELLED" and shown["reason"] == "cancelled by user: wrong genome, see #12"
    assert "wrong genome, see #12" in run_ws(root, "jobs", "show", slow, check=True).stdout

    a, b = sorted(finished, key=lambda j: j["params"]["x"])
    log_dir = root / ".ws" / "jobs" / a["id"]
    assert log_dir.is_dir()
    res = _json(run_ws, root, "jobs", "delete", a["id"])
    assert res == {"deleted": [a["id"]], "kept_commits": [a["output_commit"]]}
    assert not log_dir.exists()
    assert run_ws(root, "jobs", "show", a["id"]).returncode == 4
    assert a["output_commit"] in {c["id"] for c in _json(run_ws, root, "log")}  # its outputs stay in history

    _rebuild(run_ws, root)
    ids = {j["id"]: j for j in _json(run_ws, root, "jobs")}
    assert a["id"] not in ids and b["id"] in ids and slow in ids
    assert _json(run_ws, root, "jobs", "show", slow)["reason"] == "cancelled by user: wrong genome, see #12"

    # a whole workflow deleted stays deleted too, and pruned jobs as well
    _json(run_ws, root, "jobs", "delete", b["id"])
    _json(run_ws, root, "jobs", "prune", "--before", "0s")
    _rebuild(run_ws, root)
    assert _json(run_ws, root, "jobs") == []


def test_delete_unknown_job_and_empty_reason(tmp_path, run_ws):
    run_ws(tmp_path, "init", "p", check=True)
    root = tmp_path / "p"
    missing = run_ws(root, "jobs", "delete", "abcdef")
    assert missing.returncode == 4 and missing.stderr.startswith("ws: error: ")
    write(root, "jobs/one.yaml", "name: one\ncommand: 'true'\n")
    job = _json(run_ws, root, "run", "one", "--wait")["jobs"][0]["id"]
    empty = run_ws(root, "jobs", "cancel", job, "--reason", " ")
    assert empty.returncode == 2 and empty.stderr.startswith("ws: error: ")
