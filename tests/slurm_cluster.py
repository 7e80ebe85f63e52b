"""A real single-node Slurm for the tests: the session fixture ``slurm_cluster`` and helpers.

``scripts/slurm-up.sh`` installs (Debian's slurmctld, slurmd, slurm-client,
munge) and starts the cluster; it is idempotent and serialized by a lock, so
each pytest-xdist worker calls it once. Without Slurm the tests that need it
skip and say why, except under ``CI=true``, where a missing Slurm fails them.

Import the fixture into a test module or conftest: ``from tests.slurm_cluster
import slurm_cluster  # noqa: F401``.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UP = ROOT / "scripts" / "slurm-up.sh"
POLL_S = "0.3"  # squeue at most every 0.3 s in tests (WS_SLURM_POLL_INTERVAL), for every backend instance


@dataclass
class SlurmCluster:
    conf: str
    config: dict[str, str]

    @property
    def enforces_memory(self) -> bool:
        """Whether the node's kernel enforces --mem (task/cgroup): a job over it ends OUT_OF_MEMORY."""
        return self.config.get("TaskPlugin", "").find("task/cgroup") >= 0

    def run(self, *argv: str) -> str:
        """A Slurm command against this cluster; its stdout."""
        return subprocess.run(list(argv), capture_output=True, text=True, check=True, timeout=60,
                              env={**os.environ, "SLURM_CONF": self.conf}).stdout


def _unavailable(message: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs a real Slurm: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    """A running single-node Slurm; SLURM_CONF and a short poll interval exported for this test process."""
    if os.geteuid() != 0:
        _unavailable("the Slurm test cluster needs root (it installs and starts slurmctld/slurmd)")
    try:
        proc = subprocess.run(["bash", str(UP)], capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        _unavailable("scripts/slurm-up.sh did not finish within 10 minutes")
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        _unavailable(f"Slurm could not be installed or started (scripts/slurm-up.sh: {tail})")
    conf = proc.stdout.strip().splitlines()[-1]
    os.environ["SLURM_CONF"] = conf
    os.environ["WS_SLURM_POLL_INTERVAL"] = POLL_S
    from sync.compute.slurm_query import parse_config

    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60)
    return SlurmCluster(conf, parse_config(out.stdout))


def poll(predicate, timeout: float = 30.0, every: float = 0.05):
    """Poll a real condition with a deadline (no sleeps as synchronization); returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)
