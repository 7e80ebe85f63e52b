"""``ws jobs``: list, show, logs (with --follow), prune, validate, and the Typer-free --json fast path."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

import pytest

from catalog import jobs as cj
from tests.conftest import write, ws_exe

REQUIRED = {"id", "name", "state", "backend", "params", "exit_code", "submitted_at", "finished_at"}


def seed(ws, *, pid: int | None = None) -> dict:
    """Three recorded jobs in one workflow: SUCCEEDED, FAILED and RUNNING, with log files."""
    wf = cj.create_workflow(ws.catalog, ["align"], supervisor_pid=pid or os.getpid(),
                            supervisor_host=os.uname().nodename)
    ids = cj.add_jobs(ws.catalog, wf, [
        {"name": "align", "key": f"k{i}", "backend": "local", "command": f"align {s}", "params": {"s": s},
         "log_dir": f".ws/jobs/{s}", "outputs": [f"out/{s}/"], "resources": {"cpus": 2}}
        for i, s in enumerate("abc")])
    for s in "abc":
        write(ws.root, f".ws/jobs/{s}/stdout", f"out {s}\n")
        write(ws.root, f".ws/jobs/{s}/stderr", f"err {s}\n")
    cj.set_state(ws.catalog, ids[0], "RUNNING", backend_id="1@x")
    cj.set_state(ws.catalog, ids[0], "SUCCEEDED", exit_code=0)
    cj.set_state(ws.catalog, ids[1], "FAILED", "exit 3", exit_code=3)
    cj.set_state(ws.catalog, ids[2], "RUNNING")
    return {"wf": wf, "ok": ids[0], "failed": ids[1], "running": ids[2]}


def one_line_error(res, code: int, *words: str) -> None:
    assert res.exit_code == code, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ws: error: "), res.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_empty_list(ws, cli):
    res = cli(ws.root, "jobs")
    assert res.exit_code == 0 and "no jobs recorded" in res.stdout
    assert json.loads(cli(ws.root, "jobs", "--json").stdout) == []


def test_list_table_json_and_filters(ws, cli):
    ids = seed(ws)
    res = cli(ws.root, "jobs")
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "STATE"] and len(lines) == 4
    assert ids["failed"] in lines[2] and "FAILED" in lines[2] and "s=b" in lines[2]
    rows = json.loads(cli(ws.root, "jobs", "--json").stdout)
    assert [r["id"] for r in rows] == [ids["ok"], ids["failed"], ids["running"]]
    assert REQUIRED <= set(rows[0]) and rows[0]["params"] == {"s": "a"} and rows[1]["exit_code"] == 3
    assert rows[0]["finished_at"].endswith("Z") and rows[2]["finished_at"] is None
    failed = json.loads(cli(ws.root, "jobs", "list", "--state", "failed", "--json").stdout)
    assert [r["id"] for r in failed] == [ids["failed"]]
    assert json.loads(cli(ws.root, "jobs", "--name", "other", "--json").stdout) == []
    by_wf = json.loads(cli(ws.root, "jobs", "--workflow", "latest", "--json").stdout)
    assert len(by_wf) == 3 and by_wf[0]["workflow"] == ids["wf"]


def test_list_errors(ws, cli):
    one_line_error(cli(ws.root, "jobs", "--state", "DONE"), 2, "unknown job state 'DONE'")
    one_line_error(cli(ws.root, "jobs", "--workflow", "ffff"), 4, "unknown workflow")


def test_show(ws, cli):
    ids = seed(ws)
    res = cli(ws.root, "jobs", "show", ids["failed"][:6])
    assert res.exit_code == 0, res.output
    assert f"job {ids['failed']}  align  FAILED" in res.stdout
    assert "exit code:    3" in res.stdout and "resources:    cpus=2" in res.stdout
    assert "PENDING" in res.stdout and "exit 3" in res.stdout  # events with their detail
    data = json.loads(cli(ws.root, "jobs", "show", ids["ok"], "--json").stdout)
    assert [e["state"] for e in data["events"]] == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert data["logs"]["stdout"].endswith(".ws/jobs/a/stdout") and data["durations"]["running_s"] >= 0
    assert data["workflow"]["id"] == ids["wf"] and data["backend_id"] == "1@x"


def test_show_links_the_output_commit(ws, cli):
    ids = seed(ws)
    write(ws.root, "out/a/result.txt", "42")
    c = ws.commit("outputs of align", ["out/a"], provenance={"job": {"id": ids["ok"]}}, cwd=str(ws.root)).commit
    cj.update_job(ws.catalog, ids["ok"], output_commit=c.id)
    res = cli(ws.root, "jobs", "show", ids["ok"])
    assert f"outputs in commit {c.id[:12]}" in res.stdout and f"ws show {c.id[:12]}" in res.stdout
    info = json.loads(cli(ws.root, "jobs", "show", ids["ok"], "--json").stdout)["output_commit_info"]
    assert info["id"] == c.id and info["provenance"] == {"job": {"id": ids["ok"]}}


def test_show_unknown_and_ambiguous(ws, cli):
    one_line_error(cli(ws.root, "jobs", "show", "abcdef"), 4, "unknown job 'abcdef'")
    one_line_error(cli(ws.root, "jobs", "show", "not-hex"), 4, "unknown job")
    wf = cj.create_workflow(ws.catalog, ["a"], supervisor_pid=os.getpid())
    cj.add_jobs(ws.catalog, wf, [{"id": f"ab{i}000000000", "name": "a", "key": "k", "backend": "local",
                                  "command": "x"} for i in range(2)])
    one_line_error(cli(ws.root, "jobs", "show", "ab"), 4, "ambiguous")
    assert cli(ws.root, "jobs", "show", "ab1").exit_code == 0


def test_logs(ws, cli):
    ids = seed(ws)
    assert cli(ws.root, "jobs", "logs", ids["failed"]).stdout == "out b\n"
    assert cli(ws.root, "jobs", "logs", ids["failed"], "--stderr").stdout == "err b\n"
    assert cli(ws.root, "jobs", "logs", ids["ok"], "--follow").stdout == "out a\n"  # already final: no wait
    os.unlink(ws.root / ".ws/jobs/c/stdout")
    assert cli(ws.root, "jobs", "logs", ids["running"]).stdout == ""
    one_line_error(cli(ws.root, "jobs", "logs", "0000ff"), 4, "unknown job")


def _read_until(proc, text: str, timeout: float = 20.0) -> str:
    """Read the subprocess's stdout until ``text`` appears (select with a deadline, no sleeps)."""
    got = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in got:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {text!r}; got {got!r}"
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"stream closed before {text!r}; got {got!r}"
            got += chunk
    return got.decode()


def test_logs_follow_until_the_job_ends(ws):
    ids = seed(ws)
    log = ws.root / ".ws/jobs/c/stdout"
    proc = subprocess.Popen([*ws_exe(), "jobs", "logs", ids["running"][:5], "--follow"], cwd=ws.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert "out c\n" in _read_until(proc, "out c\n")
        with open(log, "a") as fh:
            fh.write("step 2\n")
        assert "step 2" in _read_until(proc, "step 2\n")
        assert proc.poll() is None  # still following: the job is RUNNING
        with open(log, "a") as fh:
            fh.write("last words\n")
        cj.set_state(ws.catalog, ids["running"], "SUCCEEDED", exit_code=0)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert b"last words\n" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_dead_supervisor_marks_running_jobs_lost(ws, run_ws):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ids = seed(ws, pid=dead.pid)
    res = run_ws(ws.root, "jobs", "logs", ids["running"], "--follow", timeout=30)
    assert res.returncode == 1 and res.stdout == "out c\n"  # follow ends: the job cannot finish any more (LOST: 1)
    assert res.stderr.startswith(f"ws: job {ids['running']} LOST")
    rows = {r["id"]: r for r in json.loads(run_ws(ws.root, "jobs", "--json", check=True).stdout)}
    assert rows[ids["running"]]["state"] == "LOST" and "supervisor" in rows[ids["running"]]["reason"]
    assert rows[ids["ok"]]["state"] == "SUCCEEDED"


def test_prune(ws, cli):
    ids = seed(ws)
    # make the finished jobs old
    old = time.time_ns() - 40 * 86400 * 10**9
    for jid in (ids["ok"], ids["failed"]):
        cj.update_job(ws.catalog, jid, finished_ns=old, submitted_ns=old)
    write(ws.root, "keep/stdout", "not ws's")  # a log_dir outside .ws/jobs is never deleted
    cj.update_job(ws.catalog, ids["failed"], log_dir="keep")
    res = cli(ws.root, "jobs", "prune", "--before", "30d")
    assert res.exit_code == 0 and "pruned 2 jobs" in res.stdout
    assert not (ws.root / ".ws/jobs/a").exists() and (ws.root / "keep/stdout").exists()
    assert [r["id"] for r in json.loads(cli(ws.root, "jobs", "--json").stdout)] == [ids["running"]]
    assert json.loads(cli(ws.root, "jobs", "prune", "--before", "2000-01-01", "--json").stdout) == {"pruned": []}
    one_line_error(cli(ws.root, "jobs", "prune", "--before", "last tuesday"), 2, "--before")


def test_validate(ws, cli):
    write(ws.root, "data/x.csv", "1")
    write(ws.root, "jobs/good.yaml", "command: run {k}\ninputs: [data/*.csv]\nparams: {k: [1, 2]}\n")
    res = cli(ws.root, "jobs", "validate")
    assert res.exit_code == 0 and "ok    jobs/good.yaml: 2 jobs" in res.stdout
    write(ws.root, "jobs/typo.yaml", "command: run\nresources: {cpus: 1, memroy: 4GB}\n")
    res = cli(ws.root, "jobs", "validate")
    assert res.exit_code == 9 and "ok    jobs/good.yaml" in res.stdout
    assert "ws: error: jobs/typo.yaml: field 'resources.memroy': unknown field" in res.stderr
    reports = json.loads(cli(ws.root, "jobs", "validate", "--json").stdout)
    assert [(r["path"], r["ok"]) for r in reports] == [("jobs/good.yaml", True), ("jobs/typo.yaml", False)]
    one_line_error(cli(ws.root, "jobs", "validate", "typo"), 9, "jobs/typo.yaml", "'resources.memroy'")
    assert cli(ws.root, "jobs", "validate", "good").exit_code == 0


@pytest.mark.parametrize("body,code,words", [
    ("command: run\ninputs: ['../secret/*']\n", 5, ["field 'inputs[0]'", "outside the workspace"]),
    ("command: run\nworkdir: /tmp\n", 5, ["field 'workdir'", "outside the workspace"]),
    ("command: run\ninputs: [nothing/*.csv]\n", 9, ["field 'inputs[0]'", "matches no file"]),
    ("command: run {x}\n", 9, ["field 'command'", "unknown template field '{x}'"]),
    ("command: run\nbackend: cloud9\n", 9, ["field 'backend'", "unknown backend 'cloud9'"]),
    ("command: run\ndepends_on: [loop2]\n", 9, ["cycle loop1 -> loop2 -> loop1"]),
])
def test_validate_one_spec_errors(ws, cli, body, code, words):
    write(ws.root, "jobs/loop2.yaml", "command: x\ndepends_on: [loop1]\n")
    write(ws.root, "jobs/loop1.yaml", body)
    one_line_error(cli(ws.root, "jobs", "validate", "jobs/loop1.yaml"), code, "jobs/loop1.yaml", *words)


def test_validate_nothing_to_validate(ws, cli):
    one_line_error(cli(ws.root, "jobs", "validate"), 4, "no spec files")
    one_line_error(cli(ws.root, "jobs", "validate", "ghost"), 4, "no spec named 'ghost'")


def test_fast_path_answers_like_the_full_cli(ws, cli, run_ws):
    seed(ws)
    for args in (["--json"], ["list", "--json", "--state", "FAILED"], ["--json", "--name=align", "-w", "latest"]):
        fast = run_ws(ws.root, "jobs", *args, check=True).stdout
        assert json.loads(fast) == json.loads(cli(ws.root, "jobs", *args).stdout), args
    res = run_ws(ws.root, "jobs", "--json", "--state", "NOPE")
    assert res.returncode == 2 and res.stderr.startswith("ws: error: unknown job state")
    res = run_ws(ws.root.parent, "jobs", "--json")
    assert res.returncode == 3 and "not a ws workspace" in res.stderr


def test_fast_path_parser():
    from workspace.cli.jobs_fast import parse

    assert parse(["--json"]) == {}
    assert parse(["list", "--json", "-s", "FAILED", "--name=x"]) == {"state": "FAILED", "name": "x"}
    assert parse([]) is None  # the table goes through Typer
    assert parse(["--json", "--help"]) is None
    assert parse(["show", "x", "--json"]) is None
    assert parse(["--json", "--state"]) is None
    assert parse(["--json", "--state", "A", "--state", "B"]) is None
