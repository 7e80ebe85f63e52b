"""The local backend's memory limits, each mechanism forced: a cgroup (OUT_OF_MEMORY) and RLIMIT_AS (FAILED)."""

from __future__ import annotations

import sys
import time

import pytest

from sync.compute import local_limits, registry
from sync.compute.base import FAILED, OUT_OF_MEMORY, SUCCEEDED, SubmitRequest, UnsatisfiableRequest
from sync.errors import BackendError


def _run(backend, root, job_id: str, mb: int, limit_mb: int):
    req = SubmitRequest(job_id=job_id, name=job_id, workdir=str(root), log_dir=str(root / job_id),
                        command=f"{sys.executable} -c 'x = bytearray({mb} * 1024 * 1024)'", memory_mb=limit_mb)
    bid = backend.submit(req)
    deadline = time.monotonic() + 60
    while not (st := backend.status([bid])[bid]).final and time.monotonic() < deadline:
        backend.wait([bid], 0.2)
    return st


@pytest.mark.skipif(not local_limits.cgroup_available(), reason="no writable cgroup v1 memory controller here")
def test_cgroup_limit_reports_out_of_memory(tmp_path):
    backend = registry.get("local", root=tmp_path, memory="cgroup")
    try:
        over = _run(backend, tmp_path, "over", 1024, 100)
        within = _run(backend, tmp_path, "within", 16, 200)
    finally:
        backend.close()
    assert over.state == OUT_OF_MEMORY and over.exit_code == 137 and "100 MiB" in over.reason
    assert within.state == SUCCEEDED


def test_rlimit_fallback_fails_the_job_as_an_ordinary_error(tmp_path):
    backend = registry.get("local", root=tmp_path, memory="rlimit")
    try:
        over = _run(backend, tmp_path, "over", 1024, 200)
        within = _run(backend, tmp_path, "within", 16, 400)
    finally:
        backend.close()
    assert over.state == FAILED and over.exit_code == 1  # Python's MemoryError: nothing says "memory"
    err = (tmp_path / "over" / "stderr").read_text()
    assert "MemoryError" in err and "ws: memory limited to 200 MiB of address space (RLIMIT_AS)" in err
    assert within.state == SUCCEEDED


def test_memory_none_records_but_does_not_enforce(tmp_path):
    backend = registry.get("local", root=tmp_path, memory="none")
    try:
        assert _run(backend, tmp_path, "free", 64, 16).state == SUCCEEDED
    finally:
        backend.close()


def test_unknown_memory_mode_is_refused(tmp_path):
    with pytest.raises(BackendError, match="memory must be one of"):
        registry.get("local", root=tmp_path, memory="magic")


@pytest.mark.skipif(local_limits.gpu_count() > 0, reason="this machine has gpus")
def test_gpus_beyond_the_machine_are_refused_before_anything_starts(tmp_path):
    backend = registry.get("local", root=tmp_path)
    with pytest.raises(UnsatisfiableRequest) as info:
        backend.check_resources(gpus=2)
    assert info.value.exit_code == 9 and info.value.resource == "gpus" and "this machine has 0" in str(info.value)
    with pytest.raises(UnsatisfiableRequest):
        backend.submit(SubmitRequest(job_id="g", name="g", command="true", workdir=str(tmp_path),
                                     log_dir=str(tmp_path / "g"), gpus=1))
    assert not (tmp_path / "g").exists()
