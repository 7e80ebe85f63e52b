"""The Slurm backend against a real single-node Slurm: arrays, time and memory limits, cancels, pending reasons, errors.

The compute contract suite (tests/sync/test_compute_contract.py) runs on the
same cluster; these tests cover what only Slurm has. Every wait polls a real
condition with a deadline.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from sync.compute import slurm_script as ss
from sync.compute.base import (CANCELLED, FAILED, OUT_OF_MEMORY, QUEUED, RUNNING, SUCCEEDED, BackendStatus,
                               BackendUnavailable, SubmitRequest)
from sync.compute.slurm import SlurmBackend
from sync.errors import BackendError
from tests.slurm_cluster import poll

POLL = 0.2


def _req(tmp_path: Path, job_id: str, command: str, **kw) -> SubmitRequest:
    kw.setdefault("name", "sweep")
    return SubmitRequest(job_id=job_id, command=command, workdir=str(tmp_path),
                         log_dir=str(tmp_path / "jobs" / job_id), **kw)


def _final(backend: SlurmBackend, ids: list[str], timeout: float = 60.0) -> dict[str, BackendStatus]:
    def done():
        st = backend.status(ids)
        return st if all(s.final for s in st.values()) else None

    st = poll(done, timeout, every=POLL)
    assert st, f"not final after {timeout:g}s: {backend.status(ids)}"
    return st


def _squeue(cluster, *args: str) -> list[str]:
    return [ln for ln in cluster.run("squeue", "-h", *args).splitlines() if ln.strip()]


@pytest.mark.slow
def test_a_sweep_is_one_array_with_one_sbatch_call(slurm_cluster, tmp_path):
    backend = SlurmBackend(poll_interval_s=POLL)
    reqs = [_req(tmp_path, f"m{i}", f"echo member {i}; exit $(( {i} % 3 == 2 ))") for i in range(12)]
    reqs.append(_req(tmp_path, "big", "echo big", memory_mb=300))  # other resources: a job of its own
    ids = backend.submit_many(reqs)
    arrays = {bid.partition("_")[0] for bid in ids[:12]}
    assert len(arrays) == 1 and [bid.partition("_")[2] for bid in ids[:12]] == [str(i) for i in range(12)]
    assert "_" not in ids[12]
    names = {ln.split("|")[0] for ln in _squeue(slurm_cluster, "-t", "all", "-j", arrays.pop(), "-O", "Name:|")}
    assert len(names) == 1 and names.pop().startswith("ws-sweep-")  # one Slurm job: the array
    st = _final(backend, ids, timeout=120)
    assert [st[b].state for b in ids[:12]] == [FAILED if i % 3 == 2 else SUCCEEDED for i in range(12)]
    assert st[ids[12]].state == SUCCEEDED
    for i, r in enumerate(reqs[:12]):  # each member's output in its own log folder
        assert Path(r.log_dir, "stdout").read_text() == f"member {i}\n"


def test_arrays_are_split_at_the_cluster_limit(slurm_cluster, tmp_path):
    backend = SlurmBackend(poll_interval_s=POLL, max_array_size=3)
    ids = backend.submit_many([_req(tmp_path, f"c{i}", "true") for i in range(7)])
    assert len({b.partition("_")[0] for b in ids}) == 3
    assert {s.state for s in _final(backend, ids).values()} == {SUCCEEDED}


@pytest.mark.slow
def test_a_job_over_its_time_limit_ends_timeout(slurm_cluster, tmp_path):
    # --time is whole minutes and slurmctld checks limits every 30 s: this takes 60-90 s
    backend = SlurmBackend(poll_interval_s=1.0)
    bid = backend.submit(_req(tmp_path, "slow", "echo started; sleep 600", walltime_s=30))
    st = _final(backend, [bid], timeout=150)[bid]
    assert st.state == FAILED and st.reason.startswith("TIMEOUT") and "1:00" in st.reason
    assert "DUE TO TIME LIMIT" in Path(tmp_path, "jobs", "slow", "stderr").read_text()


def test_a_job_over_its_memory_ends_out_of_memory(slurm_cluster, tmp_path):
    if not slurm_cluster.enforces_memory:
        pytest.skip("this node cannot enforce --mem (no task/cgroup: no writable cgroup v1 memory controller); "
                    "docs/backends.md says what a real cluster does")
    backend = SlurmBackend(poll_interval_s=POLL)
    hog = "python3 -c 'x = [bytearray(10 << 20) for _ in range(30)]; print(\"survived\")'"
    ok = "python3 -c 'x = bytearray(10 << 20); print(\"fits\")'"
    ids = backend.submit_many([_req(tmp_path, "hog", hog, memory_mb=100, name="hog"),
                               _req(tmp_path, "ok", ok, memory_mb=100, name="fits")])
    st = _final(backend, ids)
    assert st[ids[0]].state == OUT_OF_MEMORY and "memory limit" in st[ids[0]].reason
    assert st[ids[1]].state == SUCCEEDED
    assert "survived" not in Path(tmp_path, "jobs", "hog", "stdout").read_text()


def test_cancel_of_a_pending_array(slurm_cluster, tmp_path):
    later = SlurmBackend(poll_interval_s=POLL, sbatch_options=["--begin=now+1hour"])
    ids = later.submit_many([_req(tmp_path, f"p{i}", "echo never") for i in range(5)])
    try:
        assert {s.state for s in later.status(ids).values()} == {QUEUED}
        reason = poll(lambda: later.status(ids)[ids[0]].reason)  # set at the scheduler's next look at the job
        assert reason.startswith("pending: BeginTime (its start time (--begin) is still in the future)")
        later.cancel(ids[:2])  # a pending member or two, then the rest of the array
        fresh = SlurmBackend(poll_interval_s=POLL)
        st = fresh.status(ids)
        assert [st[b].state for b in ids] == [CANCELLED, CANCELLED, QUEUED, QUEUED, QUEUED]
        fresh.cancel(ids[2:])
        st = _final(SlurmBackend(), ids)
        assert {s.state for s in st.values()} == {CANCELLED}
        assert not any(Path(tmp_path, "jobs", f"p{i}", "stdout").exists() for i in range(5))
    finally:
        later.cancel(ids)  # an assertion that failed must not leave an array queued for an hour


def test_cancel_of_a_running_array_stops_every_member(slurm_cluster, tmp_path):
    backend = SlurmBackend(poll_interval_s=POLL)
    ids = backend.submit_many([_req(tmp_path, f"r{i}", f"touch {tmp_path}/started{i}; sleep 300") for i in range(4)])
    try:
        assert poll(lambda: {s.state for s in backend.status(ids).values()} >= {RUNNING}), "nothing started"
    finally:
        backend.cancel(ids)
    assert {s.state for s in _final(backend, ids, timeout=30).values()} == {CANCELLED}


def test_find_answers_from_squeue_when_sbatch_id_was_never_recorded(slurm_cluster, tmp_path):
    # a supervisor killed right after sbatch: the batch folder has no sbatch-id and no member started yet
    later = SlurmBackend(poll_interval_s=POLL, sbatch_options=["--begin=now+1hour"])
    reqs = [_req(tmp_path, f"f{i}", "true", attempt=2) for i in range(3)]
    reqs.append(_req(tmp_path, "single", "true", attempt=2, cpus=2))  # a plain job, found by name and output file
    ids = later.submit_many(reqs)
    for r in (reqs[0], reqs[3]):
        os.unlink(os.path.join(ss.read_submit_record(r.log_dir)["batch"], ss.SBATCH_ID))
    try:
        fresh = SlurmBackend()
        assert [fresh.find(r) for r in reqs] == ids
        assert fresh.find(_req(tmp_path, "f0", "true", attempt=1)) is None
        assert fresh.find(_req(tmp_path, "f0", "true", attempt=3)) is None
    finally:
        later.cancel(ids)


def test_logs_and_status_from_a_fresh_instance(slurm_cluster, tmp_path):
    backend = SlurmBackend(poll_interval_s=POLL)
    ids = backend.submit_many([_req(tmp_path, f"l{i}", f"echo out{i}; echo err{i} >&2") for i in range(2)])
    _final(backend, ids)
    fresh = SlurmBackend()
    out, err = fresh.logs(ids[1])
    assert out == str(tmp_path / "jobs" / "l1" / "stdout") and Path(err).read_text() == "err1\n"
    # the job completion record says the same as squeue (it is what answers once squeue forgot a job)
    assert fresh._finished(ids) == fresh.status(ids)


def test_options_partition_setup_and_extra_lines_reach_the_job(slurm_cluster, tmp_path):
    backend = SlurmBackend(poll_interval_s=POLL, partition="debug", setup=["export FROM_SETUP=module-ok"],
                           sbatch_options=["--comment=from-ws"])
    bid = backend.submit(_req(tmp_path, "opt", 'echo "$FROM_SETUP $SLURM_JOB_PARTITION"'))
    assert _final(backend, [bid])[bid].state == SUCCEEDED
    assert Path(tmp_path, "jobs", "opt", "stdout").read_text() == "module-ok debug\n"
    assert _squeue(slurm_cluster, "-t", "all", "-j", bid, "-O", "Comment:|") == ["from-ws|"]


def test_a_bad_partition_is_one_clear_error_and_nothing_is_started(slurm_cluster, tmp_path):
    backend = SlurmBackend(partition="no-such-partition")
    result = backend.submit_many([_req(tmp_path, "bad", "true")])[0]
    assert isinstance(result, BackendError) and not isinstance(result, BackendUnavailable)
    assert "Invalid partition" in str(result) and "\n" not in str(result)
    assert SlurmBackend().find(_req(tmp_path, "bad", "true")) is None


def test_an_unreachable_controller_is_unavailable_not_a_refusal(slurm_cluster, tmp_path):
    with socket.socket() as s:  # a port where no slurmctld listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path / "dead.conf"
    conf.write_text(Path(slurm_cluster.conf).read_text() + f"SlurmctldPort={port}\nMessageTimeout=2\n")
    dead = SlurmBackend(slurm_conf=str(conf), command_timeout_s=15)
    with pytest.raises(BackendUnavailable):
        dead.status(["1"])
    results = dead.submit_many([_req(tmp_path, "u1", "true"), _req(tmp_path, "u2", "true", memory_mb=50)])
    assert all(isinstance(r, BackendUnavailable) for r in results)
    assert subprocess.run(["squeue", "-h"], capture_output=True).returncode == 0  # the real cluster is fine
