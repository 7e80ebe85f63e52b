"""What a job ran with: command line, host, user, Python and ws versions, selected env vars.

Only variables named explicitly are recorded (a fixed list, the job's own
``env`` and config ``[jobs] record_env``), never the whole environment, so
that secrets in the submitting shell do not end up in the catalog.
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
import sys

DEFAULT_VARS = ("PATH", "VIRTUAL_ENV", "CONDA_DEFAULT_ENV", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
                "PYTHONPATH", "LANG", "SLURM_JOB_ID")
_WS_VERSION: str | None = None


def ws_version() -> str:
    """The installed ws package version (looked up once per process)."""
    global _WS_VERSION
    if _WS_VERSION is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            _WS_VERSION = version("ws")
        except PackageNotFoundError:  # running from a source tree without metadata
            _WS_VERSION = "unknown"
    return _WS_VERSION


def base_environment(extra_vars: list[str] | tuple[str, ...] = ()) -> dict:
    """The part of the environment shared by every job of one ``ws run``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers (KeyError before Python 3.13)
        user = os.environ.get("USER", "unknown")
    names = list(dict.fromkeys([*DEFAULT_VARS, *extra_vars]))
    return {
        "argv": list(sys.argv),
        "host": socket.gethostname(),
        "user": user,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "ws_version": ws_version(),
        "env": {k: os.environ[k] for k in names if k in os.environ},
    }


def job_environment(base: dict, command: str, job_env: dict[str, str], workdir: str) -> dict:
    """One job's record: the shared part plus its command line, workdir and the env it set."""
    rec = dict(base)
    rec["command"] = command
    rec["workdir"] = workdir
    rec["env"] = {**base.get("env", {}), **job_env}
    return rec
