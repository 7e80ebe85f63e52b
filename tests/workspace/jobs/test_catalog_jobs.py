"""The jobs catalog on real SQLite files: rows, events, filters, keys, pruning, speed, concurrent writers."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from catalog import jobs as cj
from catalog.db import Catalog


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "catalog.db")
    c.ensure_schema(create=True)
    yield c
    c.close()


def _job(name="align", **kw):
    return {"name": name, "key": kw.pop("key", "k-" + name), "backend": "local", "command": f"run {name}", **kw}


def test_add_and_get(cat):
    wf = cj.create_workflow(cat, ["align"], supervisor_pid=123, supervisor_host="h")
    [jid] = cj.add_jobs(cat, wf, [_job(params={"s": "a"}, resources={"cpus": 2}, outputs=["out/a/"],
                                       depends_on=[], priority=3)])
    job = cj.get_job(cat, jid)
    assert len(jid) == 12 and int(jid, 16) >= 0
    assert job["state"] == "PENDING" and job["workflow_id"] == wf and job["params"] == {"s": "a"}
    assert job["resources"] == {"cpus": 2} and job["outputs"] == ["out/a/"] and job["priority"] == 3
    assert job["submitted_at"].endswith("Z") and job["finished_at"] is None
    assert cj.get_workflow(cat, wf)["specs"] == ["align"] and cj.latest_workflow(cat) == wf
    assert [e["state"] for e in cj.job_events(cat, jid)] == ["PENDING"]
    assert cj.get_job(cat, "000000000000") is None


def test_set_state_updates_row_and_appends_events(cat):
    [jid] = cj.add_jobs(cat, cj.create_workflow(cat, ["a"]), [_job()])
    assert cj.set_state(cat, jid, "QUEUED", backend_id="42")
    assert cj.set_state(cat, jid, "RUNNING", "attempt 1", attempts=1)
    assert cj.set_state(cat, jid, "SUCCEEDED", exit_code=0, output_commit="c" * 64)
    job = cj.get_job(cat, jid)
    assert job["state"] == "SUCCEEDED" and job["backend_id"] == "42" and job["exit_code"] == 0
    assert job["started_ns"] <= job["finished_ns"] and job["started_at"] and job["finished_at"]
    events = cj.job_events(cat, jid)
    assert [e["state"] for e in events] == ["PENDING", "QUEUED", "RUNNING", "SUCCEEDED"]
    assert events[2]["detail"] == "attempt 1" and events[3]["time"].endswith("Z")
    # a late transition from a state the job left no longer applies
    assert not cj.set_state(cat, jid, "FAILED", only_from=cj.ACTIVE_STATES)
    assert cj.get_job(cat, jid)["state"] == "SUCCEEDED" and len(cj.job_events(cat, jid)) == 4
    with pytest.raises(ValueError):
        cj.set_state(cat, jid, "EXPLODED")
    with pytest.raises(ValueError):
        cj.set_state(cat, jid, "FAILED", colour="red")


def test_iso_time():
    assert cj.iso_time(0) == "1970-01-01T00:00:00.000Z"
    assert cj.iso_time(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123Z"
    assert cj.iso_time(None) is None


def test_filters_and_json_listing_agree(cat):
    wf1 = cj.create_workflow(cat, ["a"])
    wf2 = cj.create_workflow(cat, ["b"])
    ids1 = cj.add_jobs(cat, wf1, [_job("a", params={"i": i}) for i in range(3)])
    ids2 = cj.add_jobs(cat, wf2, [_job("b", reason='quote " and \\ backslash')])
    cj.set_state(cat, ids1[1], "FAILED", exit_code=2)
    assert [j["id"] for j in cj.list_jobs(cat)] == ids1 + ids2
    assert [j["id"] for j in cj.list_jobs(cat, state="FAILED")] == [ids1[1]]
    assert [j["id"] for j in cj.list_jobs(cat, state=["FAILED", "PENDING"], name="a")] == [ids1[0], ids1[1], ids1[2]]
    assert [j["id"] for j in cj.list_jobs(cat, workflow=wf2)] == ids2
    listed = json.loads(cj.list_jobs_json(cat))
    assert cj.list_job_summaries(cat, name="a") == listed[:3]
    full = cj.list_jobs(cat)
    for short, long in zip(listed, full):
        for k in ("id", "name", "state", "backend", "params", "exit_code", "submitted_at", "finished_at", "reason"):
            assert short[k] == long[k], k
    assert listed[1]["exit_code"] == 2 and listed[3]["reason"] == 'quote " and \\ backslash'
    assert json.loads(cj.list_jobs_json(cat, name="zzz")) == []
    assert cj.count_by_state(cat) == {"PENDING": 3, "FAILED": 1}
    assert cj.match_job_ids(cat, ids1[0][:12]) == [ids1[0]]


def test_stored_listing_follows_every_write(cat):
    wf = cj.create_workflow(cat, ["a"])
    a, b, c = cj.add_jobs(cat, wf, [_job(key=str(i), params={"i": i}) for i in range(3)])
    cj.set_state(cat, a, "RUNNING", backend_id="77")
    cj.set_states(cat, [a, b], "FAILED", "boom", only_from=cj.ACTIVE_STATES + ("PENDING",), exit_code=9)
    cj.update_job(cat, c, output_commit="f" * 64, reason="why")
    stored = json.loads(cj.list_jobs_json(cat))
    # rows written by an older ws have no stored entry: the same JSON is built on the fly
    cat.conn.execute("UPDATE jobs SET listing = NULL")
    assert json.loads(cj.list_jobs_json(cat)) == stored
    assert stored[0]["backend_id"] == "77" and stored[1]["exit_code"] == 9 and stored[2]["reason"] == "why"
    assert [r["state"] for r in stored] == ["FAILED", "FAILED", "PENDING"]


def test_succeeded_with_key_and_jobs_in_states(cat):
    wf = cj.create_workflow(cat, ["a"])
    a, b, c = cj.add_jobs(cat, wf, [_job(key="K1"), _job(key="K1", priority=5), _job(key="K2")])
    assert cj.succeeded_with_key(cat, "K1") is None
    cj.set_state(cat, a, "FAILED")
    cj.set_state(cat, b, "SUCCEEDED")
    assert cj.succeeded_with_key(cat, "K1") == b and cj.succeeded_with_key(cat, "K2") is None
    assert [j["id"] for j in cj.jobs_in_states(cat, ["PENDING"])] == [c]
    assert {j["id"] for j in cj.jobs_in_states(cat, cj.FINAL_STATES)} == {a, b}


def test_prune_keeps_active_and_recent(cat):
    now = time.time_ns()
    old_wf = cj.create_workflow(cat, ["a"], created_ns=now - 10**12)
    old = cj.add_jobs(cat, old_wf, [_job(log_dir=".ws/jobs/x"), _job()], now_ns=now - 10**12)
    cj.set_state(cat, old[0], "SUCCEEDED", time_ns=now - 10**12)
    new_wf = cj.create_workflow(cat, ["a"])
    [recent] = cj.add_jobs(cat, new_wf, [_job()])
    cj.set_state(cat, recent, "FAILED")
    gone = cj.prune(cat, now - 10**9)
    assert gone == [{"id": old[0], "log_dir": ".ws/jobs/x"}]
    assert cj.get_job(cat, old[0]) is None and cj.job_events(cat, old[0]) == []
    assert cj.get_job(cat, old[1])["state"] == "PENDING"  # still active: never pruned
    assert cj.get_workflow(cat, old_wf) is not None  # it still has a job
    cj.set_state(cat, old[1], "CANCELLED", time_ns=now - 10**12)
    assert [g["id"] for g in cj.prune(cat, now - 10**9)] == [old[1]]
    assert cj.get_workflow(cat, old_wf) is None and cj.get_workflow(cat, new_wf) is not None


def test_update_job_and_workflow(cat):
    wf = cj.create_workflow(cat, ["a"])
    [jid] = cj.add_jobs(cat, wf, [_job()])
    cj.update_job(cat, jid, log_dir="/tmp/x", environment={"host": "h"}, started_ns=0)
    job = cj.get_job(cat, jid)
    assert job["environment"] == {"host": "h"} and job["started_at"] == "1970-01-01T00:00:00.000Z"
    assert len(cj.job_events(cat, jid)) == 1
    cj.update_workflow(cat, wf, state="SUCCEEDED", supervisor_pid=7)
    assert cj.get_workflow(cat, wf)["state"] == "SUCCEEDED"
    assert [w["id"] for w in cj.list_workflows(cat, state="SUCCEEDED")] == [wf]
    with pytest.raises(ValueError):
        cj.update_job(cat, jid, state="FAILED")


def test_listing_20k_jobs_as_json(cat):
    """Every job once, oldest first, as list_jobs has them (speed: tests/bench/bench_timings.py)."""
    wf = cj.create_workflow(cat, ["a"])
    cj.add_jobs(cat, wf, [_job(f"n{i % 5}", key=str(i), params={"i": i}) for i in range(20_000)])
    listed = json.loads(cj.list_jobs_json(cat))
    assert [j["params"]["i"] for j in listed] == list(range(20_000))
    assert [j["id"] for j in listed] == [j["id"] for j in cj.list_jobs(cat)]
    assert {j["name"] for j in json.loads(cj.list_jobs_json(cat, name="n3"))} == {"n3"}


WRITER = """
import sys
from catalog.db import Catalog
from catalog import jobs as cj
cat = Catalog(sys.argv[1])
for jid in sys.argv[2].split(","):
    cj.set_state(cat, jid, "RUNNING")
    cj.set_state(cat, jid, "SUCCEEDED", exit_code=0)
"""


def test_concurrent_writers_lose_nothing(cat):
    wf = cj.create_workflow(cat, ["a"])
    ids = cj.add_jobs(cat, wf, [_job(key=str(i)) for i in range(60)])
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, cat.path, ",".join(ids[i::3])]) for i in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert cj.count_by_state(cat) == {"SUCCEEDED": 60}
    assert all(len(cj.job_events(cat, j)) == 3 for j in ids)


@pytest.mark.parametrize("state", ["QUEUED", "RUNNING", "LOST"])
def test_the_stale_object_is_the_same_in_the_json_listing_and_in_show(cat, state):
    """``ws jobs --json`` (built by SQLite) and ``ws jobs show`` (Python) format one outage the same way."""
    wf = cj.create_workflow(cat, ["a"])
    [jid] = cj.add_jobs(cat, wf, [_job("a", state=state)])
    cj.record_poll(cat, "local", now_ns=1_700_000_020_999_999_999)  # last answer, ms digits that float rounding
    cj.record_poll(cat, "local", error="unreachable", now_ns=1_700_000_021_000_000_123)  # would shift
    [listed] = json.loads(cj.list_jobs_json(cat))
    shown = cj.stale_info(cat, "local", state)
    assert listed["stale"] == shown == {"since": "2023-11-14T22:13:40.999Z", "error": "unreachable",
                                        "error_at": "2023-11-14T22:13:41.000Z"}, (listed["stale"], shown)
