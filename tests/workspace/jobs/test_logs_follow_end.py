"""``ws jobs logs ID --follow`` on a job that ended: the log, then how it ended, and the job's state as exit code."""

from __future__ import annotations

import json

from tests.conftest import write


def _run(ws, run_ws, name: str, command: str) -> str:
    write(ws.root, f"jobs/{name}.yaml", f"name: {name}\ncommand: {json.dumps(command)}\n")
    res = json.loads(run_ws(ws.root, "run", name, "--wait", "--json").stdout)
    [job] = res["jobs"]
    return job["id"]


def test_follow_a_failed_job_shows_the_tail_of_stderr_and_exits_1(ws, run_ws):
    jid = _run(ws, run_ws, "bad", "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line$i >&2; done; exit 3")
    proc = run_ws(ws.root, "jobs", "logs", jid, "--follow", timeout=60)
    assert proc.returncode == 1
    assert proc.stdout == ""
    err = proc.stderr.splitlines()
    assert err[0] == f"ws: job {jid} FAILED (exit code 3)"
    assert "its stdout is empty" in err
    assert any(ln.startswith("last 10 line(s) of its stderr (") and ln.endswith("/stderr):") for ln in err)
    assert err[-10:] == [f"  line{i}" for i in range(3, 13)]
    # following stderr itself prints it, then one line on how the job ended
    proc = run_ws(ws.root, "jobs", "logs", jid, "--follow", "--stderr", timeout=60)
    assert proc.returncode == 1 and proc.stdout.splitlines()[-1] == "line12"
    assert proc.stderr.splitlines() == [f"ws: job {jid} FAILED (exit code 3)"]


def test_follow_a_job_that_succeeded_silently_says_where_stderr_is(ws, run_ws):
    jid = _run(ws, run_ws, "quiet", "echo note >&2")
    proc = run_ws(ws.root, "jobs", "logs", jid, "--follow", timeout=60)
    assert proc.returncode == 0 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"ws: job {jid} SUCCEEDED; it wrote nothing on stdout (stderr: ")
    assert f"'ws jobs logs {jid} --stderr'" in line
    jid = _run(ws, run_ws, "talk", "echo hello")
    proc = run_ws(ws.root, "jobs", "logs", jid, "--follow", timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "hello\n", "")
