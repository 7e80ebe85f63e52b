"""The execution engine on real workspaces, real processes and a real catalog.

Most tests run the supervisor in-process (``wait=True``); the detached ones
spawn the real ``ws jobs supervise`` and poll the catalog with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from catalog import jobs as cj
from tests.conftest import write
from workspace.jobs import engine, liveness


def spec(ws, name: str, body: str) -> None:
    write(ws.root, f"jobs/{name}.yaml", f"name: {name}\n" + body)


def run(ws, name: str, **kw) -> dict:
    kw.setdefault("wait", True)
    return engine.run_spec(ws, name, cwd=str(ws.root), **kw)


def by_params(res: dict, key: str) -> dict:
    return {j["params"][key]: j for j in res["jobs"]}


def poll(predicate, timeout: float = 20.0):
    """Poll a condition with a deadline (no sleeps as synchronization)."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def set_max_cpus(ws, n: int) -> None:
    cfg = dict(ws.config)
    cfg["jobs"] = {"max_cpus": n}
    ws.save_config(cfg)


def test_sweep_runs_and_commits_outputs_with_provenance(ws):
    spec(ws, "hello", 'command: mkdir -p out && echo "hi {who}" > out/{who}.txt\n'
                      'outputs: ["out/{who}.txt"]\nparams: {who: [a, b]}\n')
    res = run(ws, "hello")
    assert res["state"] == "SUCCEEDED"
    jobs = by_params(res, "who")
    assert {j["state"] for j in jobs.values()} == {"SUCCEEDED"}
    for who, job in jobs.items():
        commit = ws.get_commit(job["output_commit"])
        prov = commit.provenance
        assert prov["job"]["id"] == job["id"] and prov["job"]["name"] == "hello"
        assert prov["params"] == {"who": who} and prov["spec"] == "jobs/hello.yaml"
        assert prov["key"] == job["key"] and prov["exit_code"] == 0 and prov["backend"] == "local"
        assert "python" in prov["environment"]
        assert ws.read(commit.id, f"out/{who}.txt") == f"hi {who}\n".encode()
    events = [e["state"] for e in cj.job_events(ws.catalog, jobs["a"]["id"])]
    assert events == ["PENDING", "QUEUED", "RUNNING", "SUCCEEDED"]  # QUEUED: the recorded intent to submit


def test_succeeded_key_is_skipped_unless_forced(ws):
    spec(ws, "once", "command: echo run >> count.txt\n")
    first = run(ws, "once")["jobs"][0]
    second = run(ws, "once")["jobs"][0]
    assert second["state"] == "SKIPPED" and first["id"] in second["reason"]
    forced = run(ws, "once", force=True)["jobs"][0]
    assert forced["state"] == "SUCCEEDED"
    assert (ws.root / "count.txt").read_text().count("run") == 2


def test_failure_blocks_dependents_with_reason(ws):
    spec(ws, "first", "command: exit 3\n")
    spec(ws, "second", "command: touch second-ran\ndepends_on: [first]\n")
    res = run(ws, "second")
    states = {j["name"]: j for j in res["jobs"]}
    assert states["first"]["state"] == "FAILED" and states["first"]["exit_code"] == 3
    assert states["second"]["state"] == "CANCELLED"
    assert states["first"]["id"] in states["second"]["reason"] and "FAILED" in states["second"]["reason"]
    assert not (ws.root / "second-ran").exists()
    assert res["state"] == "FAILED"


def test_ignore_failures_lets_dependents_run(ws):
    spec(ws, "sweep", "command: exit {code}\nparams: {code: [0, 1]}\npolicies: {ignore_failures: true}\n")
    spec(ws, "after", "command: touch after-ran\ndepends_on: [sweep]\n")
    res = run(ws, "after")
    assert {j["name"]: j["state"] for j in res["jobs"] if j["name"] == "after"} == {"after": "SUCCEEDED"}
    assert (ws.root / "after-ran").exists()


def test_retry_with_backoff_then_success(ws):
    spec(ws, "flaky", "command: echo x >> tries; test $(wc -l < tries) -ge 3\n"
                      "policies: {retries: 3, backoff: 0.05}\n")
    job = run(ws, "flaky")["jobs"][0]
    assert job["state"] == "SUCCEEDED" and job["attempts"] == 3
    details = [e["detail"] or "" for e in cj.job_events(ws.catalog, job["id"])]
    assert sum("retrying in" in d for d in details) == 2
    assert any("retrying in 0.1s" in d for d in details)  # exponential: 0.05, then 0.1


def test_retries_exhausted_fail(ws):
    spec(ws, "bad", "command: exit 7\npolicies: {retries: 1, backoff: 0}\n")
    job = run(ws, "bad")["jobs"][0]
    assert job["state"] == "FAILED" and job["attempts"] == 2 and job["exit_code"] == 7


def test_timeout_kills_and_fails(ws):
    spec(ws, "slow", "command: sleep 30\npolicies: {timeout: 0.3}\n")
    job = run(ws, "slow")["jobs"][0]  # not killed, it would end SUCCEEDED after 30 s
    assert job["state"] == "FAILED" and "timed out" in job["reason"]


def test_missing_output_fails_with_reason(ws):
    spec(ws, "liar", 'command: "true"\noutputs: [never.txt]\n')
    job = run(ws, "liar")["jobs"][0]
    assert job["state"] == "FAILED" and "never.txt" in job["reason"] and "missing" in job["reason"]


def test_concurrency_limit_and_priority(ws):
    set_max_cpus(ws, 1)
    # submitted in name order (p1, p3, p5); started in priority order
    for p in (1, 5, 3):
        spec(ws, f"p{p}", f"command: echo {p} >> order.txt\npolicies: {{priority: {p}}}\n")
    spec(ws, "all", "command: 'true'\ndepends_on: [p1, p5, p3]\n")
    run(ws, "all")
    assert (ws.root / "order.txt").read_text().split() == ["5", "3", "1"]


def test_cpu_limit_bounds_parallelism(ws):
    set_max_cpus(ws, 2)
    spec(ws, "par", "command: mkdir -p run; ls run | wc -l >> seen; touch run/{i}; sleep 0.3; rm run/{i}\n"
                    "params: {i: [1, 2, 3, 4, 5, 6]}\n")
    run(ws, "par")
    seen = [int(x) for x in (ws.root / "seen").read_text().split()]
    assert len(seen) == 6 and max(seen) <= 1  # at most one other job running when each started


def test_big_job_runs_alone(ws):
    set_max_cpus(ws, 2)
    spec(ws, "wide", "command: mkdir -p run; ls run | wc -l >> seen; touch run/{i}; sleep 0.2; rm run/{i}\n"
                     "params: {i: [1, 2, 3]}\nresources: {cpus: 2}\n")
    run(ws, "wide")
    assert max(int(x) for x in (ws.root / "seen").read_text().split()) == 0


def test_max_queue_fails_jobs_that_wait_too_long(ws):
    set_max_cpus(ws, 1)
    spec(ws, "hog", "command: sleep 1\npolicies: {priority: 9}\n")
    spec(ws, "impatient", "command: 'true'\npolicies: {max_queue: 0.2}\n")
    spec(ws, "both", "command: 'true'\ndepends_on: [hog, impatient]\n")
    res = run(ws, "both")
    job = next(j for j in res["jobs"] if j["name"] == "impatient")
    assert job["state"] == "FAILED" and "max_queue" in job["reason"]


def test_environment_is_recorded(ws, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    spec(ws, "envy", "command: echo $OMP_NUM_THREADS > omp.txt\nenv: {OMP_NUM_THREADS: '3'}\n")
    job = run(ws, "envy")["jobs"][0]
    env = job["environment"]
    assert env["python"] and env["host"] and env["ws_version"] and env["command"].startswith("echo")
    assert env["env"]["OMP_NUM_THREADS"] == "3" and env["env"]["CUDA_VISIBLE_DEVICES"] == "7"
    assert "SECRET_TOKEN" not in json.dumps(env)
    assert (ws.root / "omp.txt").read_text().strip() == "3"


class _Collector(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_collector():
    _Collector.bodies = []
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Collector.bodies
    server.shutdown()
    server.server_close()


def test_notify_command_and_url(ws, http_collector):
    url, bodies = http_collector
    spec(ws, "tell", "command: exit {c}\nparams: {c: [0, 2]}\n"
                     f"notify: {{on: [finished], command: 'cat >> notes.jsonl; echo >> notes.jsonl; "
                     f"echo $WS_JOB_STATE >> states.txt', url: '{url}'}}\n")
    res = run(ws, "tell")
    notes = [json.loads(line) for line in (ws.root / "notes.jsonl").read_text().splitlines() if line.strip()]
    job_notes = {n["params"]["c"]: n["state"] for n in notes if n["kind"] == "job"}
    assert job_notes == {0: "SUCCEEDED", 2: "FAILED"}
    assert [n["state"] for n in notes if n["kind"] == "workflow"] == ["FAILED"]
    assert sorted((ws.root / "states.txt").read_text().split()) == ["FAILED", "FAILED", "SUCCEEDED"]
    assert sorted(b["kind"] for b in bodies) == ["job", "job", "workflow"]
    assert {b["id"] for b in bodies if b["kind"] == "workflow"} == {res["workflow"]}


def test_notify_only_on_failed(ws):
    spec(ws, "quiet", "command: exit {c}\nparams: {c: [0, 1]}\n"
                      "notify: {on: [failed], command: 'echo $WS_EVENT_KIND $WS_JOB_ID $WS_JOB_EXIT_CODE >> failed.txt'}\n")
    res = run(ws, "quiet")
    failed = next(j for j in res["jobs"] if j["state"] == "FAILED")
    lines = (ws.root / "failed.txt").read_text().splitlines()
    assert lines == [f"job {failed['id']} 1", "workflow"]  # nothing for the job that succeeded


def test_rerun_failed_runs_only_failed_jobs(ws):
    spec(ws, "needs", "command: test -f ok-{n}\nparams: {n: [1, 2]}\n")
    write(ws.root, "ok-1", "")
    res = run(ws, "needs")
    assert sorted(j["state"] for j in res["jobs"]) == ["FAILED", "SUCCEEDED"]
    write(ws.root, "ok-2", "")
    new_wf = engine.rerun_failed(ws, res["workflow"], wait=True)
    rerun = cj.list_jobs(ws.catalog, workflow=new_wf)
    assert [(j["params"], j["state"]) for j in rerun] == [({"n": 2}, "SUCCEEDED")]
    with pytest.raises(engine.NothingToRerun):
        engine.rerun_failed(ws, new_wf)


def test_detached_run_returns_at_once_and_finishes(ws):
    # the job cannot end before the test creates 'go': run_spec must return while it runs
    spec(ws, "bg", "command: while [ ! -e go ]; do sleep 0.05; done; echo done > bg.txt\noutputs: [bg.txt]\n")
    res = run(ws, "bg", wait=False)
    assert all(j["state"] in ("PENDING", "QUEUED", "RUNNING") for j in res["jobs"])
    write(ws.root, "go", "")
    wf = cj.get_workflow(ws.catalog, res["workflow"])
    assert wf["supervisor_pid"] and wf["supervisor_pid"] != os.getpid()
    rows = engine.wait(ws, [res["workflow"]], timeout=30)
    assert rows[0]["state"] == "SUCCEEDED" and rows[0]["output_commit"]
    assert poll(lambda: cj.get_workflow(ws.catalog, res["workflow"])["state"] == "SUCCEEDED")


def test_cancel_running_detached_job(ws):
    spec(ws, "long", "command: touch started; sleep 60\n")
    spec(ws, "later", "command: touch later-ran\ndepends_on: [long]\n")
    res = run(ws, "later", wait=False)
    long_id = next(j["id"] for j in res["jobs"] if j["name"] == "long")
    assert poll(lambda: (ws.root / "started").exists())
    assert engine.cancel(ws, [long_id[:6]]) == [long_id]
    rows = engine.wait(ws, [res["workflow"]], timeout=30)
    states = {r["name"]: r["state"] for r in rows}
    assert states == {"long": "CANCELLED", "later": "CANCELLED"}
    assert not (ws.root / "later-ran").exists()
    assert engine.cancel(ws, [long_id]) == []  # already final


def test_dead_supervisor_marks_jobs_lost_then_refresh_recovers(ws):
    spec(ws, "gate", "command: while [ ! -f go ]; do sleep 0.02; done; echo out > gate.txt\noutputs: [gate.txt]\n")
    res = run(ws, "gate", wait=False)
    jid = res["jobs"][0]["id"]
    assert poll(lambda: cj.get_job(ws.catalog, jid)["state"] == "RUNNING")
    pid = cj.get_workflow(ws.catalog, res["workflow"])["supervisor_pid"]
    os.kill(pid, signal.SIGKILL)
    assert poll(lambda: liveness.mark_lost(ws) == 1 or cj.get_job(ws.catalog, jid)["state"] == "LOST")
    job = cj.get_job(ws.catalog, jid)
    assert job["state"] == "LOST" and str(pid) in job["reason"]
    assert liveness.mark_lost(ws) == 0  # cheap and idempotent
    write(ws.root, "go", "")
    assert poll(lambda: any(c["new"] == "SUCCEEDED" for c in engine.refresh(ws)))
    job = cj.get_job(ws.catalog, jid)
    assert job["state"] == "SUCCEEDED" and job["output_commit"]
    assert ws.read(job["output_commit"], "gate.txt") == b"out\n"


def test_concurrent_workflows_all_commits_land(ws):
    spec(ws, "w1", "command: echo {i} > a{i}.txt\noutputs: ['a{i}.txt']\nparams: {i: [1, 2, 3, 4]}\n")
    spec(ws, "w2", "command: echo {i} > b{i}.txt\noutputs: ['b{i}.txt']\nparams: {i: [1, 2, 3, 4]}\n")
    r1 = run(ws, "w1", wait=False)
    r2 = run(ws, "w2", wait=False)
    rows = engine.wait(ws, [r1["workflow"], r2["workflow"]], timeout=60)
    assert {r["state"] for r in rows} == {"SUCCEEDED"}
    assert len({r["output_commit"] for r in rows}) == 8
    names = {e.path for e in ws.ls()}
    assert names >= {f"{p}{i}.txt" for p in "ab" for i in range(1, 5)}


def test_wait_times_out(ws):
    spec(ws, "nap", "command: sleep 30\n")
    res = run(ws, "nap", wait=False)
    with pytest.raises(engine.WaitTimedOut):
        engine.wait(ws, [res["workflow"]], timeout=0.3)
    engine.cancel(ws, all_jobs=True)
    assert engine.wait(ws, [res["workflow"]], timeout=30)[0]["state"] == "CANCELLED"


def test_unknown_backend_submits_nothing(ws):
    from sync.errors import UnknownBackend

    spec(ws, "x", "command: 'true'\n")
    with pytest.raises(Exception) as info:
        run(ws, "x", backend="nowhere")
    assert info.value.exit_code == 9
    assert isinstance(info.value, UnknownBackend) or "nowhere" in str(info.value)
    assert cj.list_jobs(ws.catalog) == []


def test_workdir_is_used_and_must_stay_inside(ws):
    from workspace.errors import PathOutsideWorkspace

    (ws.root / "sub").mkdir()
    spec(ws, "inside", "command: pwd > where.txt\nworkdir: sub\n")
    run(ws, "inside")
    assert (ws.root / "sub" / "where.txt").read_text().strip() == str(ws.root / "sub")
    spec(ws, "outside", "command: pwd\nworkdir: ../elsewhere\n")
    with pytest.raises(PathOutsideWorkspace):
        run(ws, "outside")
    assert [j["name"] for j in cj.list_jobs(ws.catalog)] == ["inside"]


def test_reused_supervisor_pid_is_not_taken_for_the_supervisor(ws):
    import subprocess

    from workspace.jobs.liveness import start_ticks

    stranger = subprocess.Popen(["sleep", "30"])
    try:
        wf = cj.create_workflow(ws.catalog, ["x"], supervisor_pid=stranger.pid, supervisor_host=os.uname().nodename)
        jid = cj.add_jobs(ws.catalog, wf, [{"name": "x", "key": "k", "backend": "local", "command": "true",
                                            "state": "RUNNING"}])[0]
        folder = ws.layout.jobs_dir / f"wf-{wf}"
        folder.mkdir(parents=True)
        (folder / "supervisor.pid").write_text(f"{stranger.pid} {start_ticks(stranger.pid)}\n")
        assert liveness.mark_lost(ws) == 0  # the recorded process itself: alive
        (folder / "supervisor.pid").write_text(f"{stranger.pid} {start_ticks(stranger.pid) - 1}\n")
        assert liveness.mark_lost(ws) == 1
        assert "another process" in cj.get_job(ws.catalog, jid)["reason"]
    finally:
        stranger.kill()
        stranger.wait()


def test_all_skipped_run_ends_without_a_supervisor_process(ws):
    spec(ws, "done", "command: 'true'\n")
    run(ws, "done")
    res = run(ws, "done", wait=False)
    assert res["state"] == "SUCCEEDED" and [j["state"] for j in res["jobs"]] == ["SKIPPED"]


def test_refresh_hands_still_running_lost_jobs_to_a_new_supervisor(ws):
    spec(ws, "slowgate", "command: while [ ! -f go ]; do sleep 0.02; done; echo y > sg.txt\noutputs: [sg.txt]\n")
    res = run(ws, "slowgate", wait=False)
    jid = res["jobs"][0]["id"]
    assert poll(lambda: cj.get_job(ws.catalog, jid)["state"] == "RUNNING")
    old_pid = cj.get_workflow(ws.catalog, res["workflow"])["supervisor_pid"]
    os.kill(old_pid, signal.SIGKILL)
    assert poll(lambda: liveness.mark_lost(ws) == 1 or cj.get_job(ws.catalog, jid)["state"] == "LOST")
    assert engine.refresh(ws) in ([{"id": jid, "old": "LOST", "new": "RUNNING"}], [])
    assert cj.get_job(ws.catalog, jid)["state"] == "RUNNING"
    assert cj.get_workflow(ws.catalog, res["workflow"])["supervisor_pid"] != old_pid
    write(ws.root, "go", "")
    job = engine.wait(ws, [jid], timeout=30)[0]
    assert job["state"] == "SUCCEEDED" and ws.read(job["output_commit"], "sg.txt") == b"y\n"
    events = [e["detail"] or "" for e in cj.job_events(ws.catalog, jid)]
    assert any("adopted" in d for d in events)


def test_one_status_call_per_poll_for_all_running_jobs(ws):
    from sync.compute import registry
    from sync.compute.local import LocalBackend

    calls: list[int] = []

    class CountingLocal(LocalBackend):  # the real local backend, with its status calls counted
        def status(self, backend_ids):
            calls.append(len(backend_ids))
            return super().status(backend_ids)

    registry.register("counting-local", CountingLocal)
    try:
        set_max_cpus(ws, 3)
        spec(ws, "trio", "command: sleep 0.3\nparams: {i: [1, 2, 3]}\nbackend: counting-local\n")
        res = run(ws, "trio")
    finally:
        registry._BACKENDS.pop("counting-local", None)
    assert {j["state"] for j in res["jobs"]} == {"SUCCEEDED"}
    assert max(calls) == 3  # the three running jobs asked about together


def test_notify_on_started(ws):
    spec(ws, "hey", "command: 'true'\nnotify: {on: [started], command: 'echo $WS_JOB_STATE >> started.txt'}\n")
    run(ws, "hey")
    assert (ws.root / "started.txt").read_text().split() == ["RUNNING"]


def test_changing_one_input_reruns_only_its_job(ws):
    for s in "ab":
        write(ws.root, f"data/{s}.txt", s)
    spec(ws, "per", "command: cat data/{s}.txt >> ran.txt\ninputs: ['data/{s}.txt']\nparams: {s: [a, b]}\n")
    assert {j["state"] for j in run(ws, "per")["jobs"]} == {"SUCCEEDED"}
    write(ws.root, "data/b.txt", "b2")
    states = {j["params"]["s"]: j["state"] for j in run(ws, "per")["jobs"]}
    assert states == {"a": "SKIPPED", "b": "SUCCEEDED"}
    text = (ws.root / "ran.txt").read_text()  # the first run's two jobs may finish in either order
    assert sorted(text[:2]) == ["a", "b"] and text[2:] == "b2"


def test_durations_are_never_negative(ws):
    spec(ws, "fast", "command: 'true'\nparams: {i: [1, 2, 3, 4, 5]}\n")
    for job in run(ws, "fast")["jobs"]:
        assert job["submitted_ns"] <= job["started_ns"] <= job["finished_ns"]


def test_failing_notification_is_logged_and_does_not_fail_the_job(ws):
    spec(ws, "grumpy", "command: 'true'\nnotify: {on: [finished], command: 'echo nope >&2; exit 3'}\n")
    res = run(ws, "grumpy")
    assert res["jobs"][0]["state"] == "SUCCEEDED" and res["state"] == "SUCCEEDED"
    log = (ws.layout.jobs_dir / f"wf-{res['workflow']}" / "supervisor.log").read_text()
    assert "notify command exited 3: nope" in log


def test_folder_outputs_are_committed(ws):
    spec(ws, "dir", "command: mkdir -p res/{s} && echo 1 > res/{s}/x && echo 2 > res/{s}/y\n"
                    "outputs: ['res/{s}/']\nparams: {s: [p]}\n")
    job = run(ws, "dir")["jobs"][0]
    assert job["state"] == "SUCCEEDED"
    assert sorted(e.path for e in ws.ls(job["output_commit"])) == ["res/p/x", "res/p/y"]
