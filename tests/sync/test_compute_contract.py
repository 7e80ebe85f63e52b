"""One contract every compute backend passes: local, Slurm (a real single-node cluster), PROMINENCE (its
REST API served locally) and AWS Batch (moto, with a stand-in compute environment).

A backend joins by adding a fixture to ``BACKENDS`` that yields a
:class:`Harness`: how to build the backend (twice, to check that status
survives a new instance) and an id the backend has never seen.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from sync.compute import registry
from sync.compute.base import CANCELLED, FAILED, LOST, RUNNING, SUCCEEDED, ComputeBackend, SubmitRequest
from sync.errors import UnknownBackend
from tests.slurm_cluster import slurm_cluster  # noqa: F401  (a session fixture)


@dataclass
class Harness:
    make: Callable[[], ComputeBackend]
    log_root: Path
    unknown_id: str


@pytest.fixture
def local_harness(tmp_path):
    root = tmp_path / "jobs"
    root.mkdir()
    return Harness(lambda: registry.get("local", root=root, grace_s=2.0), root, "999999999@nope")


@pytest.fixture
def slurm_harness(slurm_cluster, tmp_path):
    """The real single-node Slurm (tests/slurm_cluster.py); ids are Slurm's, 999999999 was never issued."""
    root = tmp_path / "jobs"
    root.mkdir()
    return Harness(lambda: registry.get("slurm", poll_interval_s=0.2), root, "999999999")


@pytest.fixture
def prominence_harness(tmp_path):
    """PROMINENCE's REST API served locally (tests/sync/prominence_server.py), running each job's command here."""
    from tests.sync.prominence_server import running

    with running(tmp_path / "prominence", execute=True, home=tmp_path) as server:
        yield Harness(lambda: registry.get("prominence", url=server.url, token=server.token, poll_interval=0,
                                           default_image="busybox", workspace_root=tmp_path),
                      tmp_path / "jobs", "999999999")


@pytest.fixture
def batch_harness(tmp_path, batch_world):
    """AWS Batch on the moto server; each job's container command runs here (tests/sync/batch_moto.py).

    moto alone would mark every job SUCCEEDED inside SubmitJob without running
    it. The stand-in compute environment of batch_moto drives the states
    instead: RUNNABLE, STARTING, RUNNING while the generated entrypoint runs
    in a local process against the moto S3, then SUCCEEDED or FAILED with the
    exit code; terminate_job stops the process as ECS stops a container.
    ``job_root`` is the test's folder, so ``pwd`` and marker files land where
    the suite looks; each harness has its own queue and staging prefix.
    """
    import uuid

    opts = batch_world.backend_options(f"contract-{uuid.uuid4().hex[:8]}", job_queue=batch_world.new_queue(),
                                       workspace_root=tmp_path, log_root=tmp_path / "jobs", job_root=str(tmp_path))
    return Harness(lambda: registry.get("batch", **opts), tmp_path / "jobs", "00000000-0000-4000-8000-000000000000")


BACKENDS = ["local_harness", "slurm_harness", "prominence_harness", "batch_harness"]


@pytest.fixture(params=BACKENDS)
def harness(request) -> Harness:
    return request.getfixturevalue(request.param)


@pytest.fixture
def backend(harness):
    b = harness.make()
    yield b
    b.close()


def _request(harness: Harness, job_id: str, command: str, **kw) -> SubmitRequest:
    workdir = kw.pop("workdir", str(harness.log_root.parent))
    return SubmitRequest(job_id=job_id, name=f"t-{job_id}", command=command, workdir=workdir,
                         log_dir=str(harness.log_root / job_id), **kw)


def _wait_final(backend: ComputeBackend, ids: list[str], timeout: float = 30.0) -> dict:
    """Poll (with the backend's own wait) until every job is final or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        st = backend.status(ids)
        if all(s.final for s in st.values()) or time.monotonic() > deadline:
            return st
        backend.wait(ids, 0.2)


def _read(backend: ComputeBackend, backend_id: str) -> tuple[str, str]:
    out, err = backend.logs(backend_id)
    return tuple(Path(x).read_text() if os.path.exists(x) else x for x in (out, err))


def test_success_captures_output(backend, harness):
    bid = backend.submit(_request(harness, "ok", "echo hello; echo oops >&2"))
    st = _wait_final(backend, [bid])[bid]
    assert st.state == SUCCEEDED and st.exit_code == 0
    assert st.finished_ns and st.started_ns and st.finished_ns >= st.started_ns
    out, err = _read(backend, bid)
    assert out.strip() == "hello" and err.strip() == "oops"


def test_failure_reports_exit_code(backend, harness):
    bid = backend.submit(_request(harness, "bad", "exit 3"))
    st = _wait_final(backend, [bid])[bid]
    assert st.state == FAILED and st.exit_code == 3 and "3" in st.reason


def test_env_and_workdir(backend, harness, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    bid = backend.submit(_request(harness, "env", 'echo "$GREETING $(pwd)"', workdir=str(wd),
                                  env={"GREETING": "hi"}))
    _wait_final(backend, [bid])
    assert _read(backend, bid)[0].strip() == f"hi {wd}"


def test_status_of_many_in_one_call(backend, harness):
    ids = [backend.submit(_request(harness, f"m{i}", f"exit {i % 2}")) for i in range(6)]
    st = _wait_final(backend, ids)
    assert set(st) == set(ids)
    assert [st[b].state for b in ids] == [SUCCEEDED, FAILED] * 3


def test_running_then_cancel(backend, harness, tmp_path):
    marker = tmp_path / "started"
    bid = backend.submit(_request(harness, "long", f"touch {marker}; sleep 60"))
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        backend.wait([bid], 0.05)
    assert backend.status([bid])[bid].state == RUNNING
    backend.cancel([bid])
    st = _wait_final(backend, [bid], timeout=10)[bid]
    assert st.state == CANCELLED  # (how fast: tests/bench/bench_timings.py)


def test_cancel_kills_the_whole_group_even_if_term_is_ignored(backend, harness, tmp_path):
    pidfile = tmp_path / "child.pid"
    bid = backend.submit(_request(harness, "stubborn", f"trap '' TERM; sleep 60 & echo $! > {pidfile}; wait"))
    deadline = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        backend.wait([bid], 0.05)
    child = int(pidfile.read_text())
    backend.cancel([bid])
    assert _wait_final(backend, [bid], timeout=15)[bid].state == CANCELLED
    deadline = time.monotonic() + 5
    while _pid_running(child) and time.monotonic() < deadline:
        backend.wait([], 0.05)
    assert not _pid_running(child), "a grandchild survived the cancel"


def test_cancel_of_finished_job_is_harmless(backend, harness):
    bid = backend.submit(_request(harness, "quick", "true"))
    _wait_final(backend, [bid])
    backend.cancel([bid])
    assert backend.status([bid])[bid].state == SUCCEEDED


def test_status_survives_a_new_backend_instance(backend, harness):
    bid = backend.submit(_request(harness, "persist", "exit 4"))
    _wait_final(backend, [bid])
    other = harness.make()
    try:
        st = other.status([bid])[bid]
    finally:
        other.close()
    assert st.state == FAILED and st.exit_code == 4


def test_unknown_id_is_lost(backend, harness):
    assert backend.status([harness.unknown_id])[harness.unknown_id].state == LOST


def test_registry_names_and_unknown():
    assert "local" in registry.names()
    with pytest.raises(UnknownBackend) as info:
        registry.get("no-such-backend")
    assert info.value.exit_code == 9 and "no-such-backend" in str(info.value)


def _pid_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


# -- find: idempotent submission ---------------------------------------------------------
# The supervisor records its intent, submits, then records the backend id. If it dies
# in between, a new process must find what was started from the job id and attempt alone.
def test_find_locates_a_submitted_attempt_from_a_new_instance(backend, harness, tmp_path):
    marker = tmp_path / "found-started"
    req = _request(harness, "findme", f"touch {marker}; sleep 60", attempt=2)
    bid = backend.submit(req)
    other = harness.make()
    try:
        assert other.find(req) == bid
        assert other.find(_request(harness, "findme", "sleep 60", attempt=3)) is None  # a later attempt
        assert other.find(_request(harness, "never-submitted", "true")) is None
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            backend.wait([bid], 0.05)
        assert other.status([bid])[bid].state == RUNNING
        other.cancel([bid])  # the instance that found it can stop it
        assert _wait_final(other, [bid], timeout=15)[bid].state == CANCELLED
    finally:
        other.close()


def test_find_still_locates_a_finished_attempt(backend, harness):
    req = _request(harness, "finished", "exit 6")
    bid = backend.submit(req)
    _wait_final(backend, [bid])
    other = harness.make()
    try:
        found = other.find(req)
        assert found == bid
        st = other.status([found])[found]
    finally:
        other.close()
    assert st.state == FAILED and st.exit_code == 6


def test_find_does_not_mistake_an_earlier_attempt(backend, harness):
    first = _request(harness, "again", "exit 1", attempt=1)
    bid = backend.submit(first)
    _wait_final(backend, [bid])
    assert backend.find(_request(harness, "again", "exit 1", attempt=2)) is None
    second = backend.submit(_request(harness, "again", "true", attempt=2))
    assert backend.find(_request(harness, "again", "true", attempt=2)) == second
    assert _wait_final(backend, [second])[second].state == SUCCEEDED
