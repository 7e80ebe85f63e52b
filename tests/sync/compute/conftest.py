"""Fixtures of the Slurm backend tests: the real single-node cluster (tests/slurm_cluster.py)."""

from tests.slurm_cluster import slurm_cluster  # noqa: F401  (a session fixture)
