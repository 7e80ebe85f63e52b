"""Jobs: specs in the workspace (spec), expanding sweeps and DAGs (expand), the Python API (api).

Kept empty of imports: ``sync`` imports :mod:`workspace.jobs.spec` and must not
pull in anything else through this package.
"""
