"""Compute backends: where jobs run (local processes today; Slurm, AWS Batch, PROMINENCE later).

Every backend implements :class:`sync.compute.base.ComputeBackend` and is found
by name through :mod:`sync.compute.registry`.
"""
