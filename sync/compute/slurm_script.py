"""From submit requests to the files sbatch runs: batch scripts, per-job run scripts, and the submit records.

One job attempt (a group of one) is one plain batch job named
``ws-<job id>-<attempt>``; its files live in the job's log folder:

- ``slurm-batch.sh``: the batch script (``#SBATCH`` lines, setup lines, then the run script);
- ``slurm-run.sh``: what the job runs: its own record, its environment, ``cd``, the command;
- ``slurm-submit``: the submit record (JSON: attempt, job name, array index, batch folder),
  written *before* sbatch so that ``find`` can tell "never submitted" from "submitted";
- ``slurm-job``: ``id=<slurm id> attempt=<n>``, written by the run script when the job starts;
- ``stdout``/``stderr``: appended by Slurm itself (``--output``/``--error``, ``--open-mode=append``).

A group of several requests with the same resources is one job array
(``--array=0-N%K``) named ``ws-<name>-<token>``, whose batch folder
``<jobs dir>/slurm/<token>/`` holds ``array.sh`` and ``dirs/<index>``: a
symlink to the member's log folder. Each array task runs
``dirs/$SLURM_ARRAY_TASK_ID/slurm-run.sh`` and Slurm writes its output to
``dirs/%a/stdout``, i.e. into the member's own log folder. Every batch folder
(the log folder of a single job) also holds ``submit.lock``, flocked while sbatch
runs, and ``sbatch-id``: the id sbatch printed (or ``refused``) and the job name.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import uuid
from dataclasses import dataclass, field

from sync.compute.base import SubmitRequest
from sync.errors import BackendError

SUBMIT_RECORD = "slurm-submit"
JOB_RECORD = "slurm-job"
RUN_SCRIPT = "slurm-run.sh"
BATCH_SCRIPT = "slurm-batch.sh"
ARRAY_SCRIPT = "array.sh"
LOCK = "submit.lock"
SBATCH_ID = "sbatch-id"
REFUSED = "refused"  # in sbatch-id instead of an id: sbatch said no, nothing was submitted


@dataclass
class SlurmSettings:
    """The backend options that shape a batch script."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    sbatch_options: list[str] = field(default_factory=list)  # extra '#SBATCH' lines, e.g. '--constraint=a100'
    setup: list[str] = field(default_factory=list)  # shell lines before the job: 'module load python/3.11'
    array_throttle: int | None = None  # at most K members of an array run at once (--array=...%K)


@dataclass
class Batch:
    """One sbatch call's worth of requests: a plain job (one request) or an array."""

    requests: list[SubmitRequest]
    folder: str  # where the batch script, the lock and sbatch's answer live
    name: str  # the Slurm job name

    @property
    def is_array(self) -> bool:
        return len(self.requests) > 1

    @property
    def script(self) -> str:
        return os.path.join(self.folder, ARRAY_SCRIPT if self.is_array else BATCH_SCRIPT)

    def ids(self, sbatch_id: str) -> list[str]:
        """The backend id of each request, given the id sbatch printed."""
        return [f"{sbatch_id}_{i}" for i in range(len(self.requests))] if self.is_array else [sbatch_id]


def group_key(request: SubmitRequest) -> tuple:
    """Requests with the same key share one array: same spec name and the same resources."""
    return (request.name, request.cpus, request.memory_mb, request.walltime_s, request.gpus, request.nodes,
            request.disk_mb)


def single_name(request: SubmitRequest) -> str:
    """The Slurm job name of one attempt: ``ws-<job id>-<attempt>`` (how ``find`` recognizes it)."""
    return f"ws-{request.job_id}-{request.attempt}"


def plan_batch(requests: list[SubmitRequest]) -> Batch:
    """Where a group's files go and what its Slurm job is called."""
    for r in requests:
        for what, path in (("log_dir", r.log_dir), ("workdir", r.workdir)):
            if "\n" in path or "\r" in path:
                raise BackendError(f"job {r.job_id}: the {what} {path!r} has a line break; Slurm cannot use it")
    if len(requests) == 1:
        return Batch(requests, os.path.abspath(requests[0].log_dir), single_name(requests[0]))
    token = uuid.uuid4().hex[:10]
    parent = os.path.dirname(os.path.abspath(requests[0].log_dir))
    return Batch(requests, os.path.join(parent, "slurm", token), f"ws-{requests[0].name}-{token}")


def write_batch(batch: Batch, settings: SlurmSettings) -> None:
    """Write every file of a batch (run scripts, submit records, links, the batch script) before sbatch runs."""
    os.makedirs(batch.folder, exist_ok=True)
    if batch.is_array:
        dirs = os.path.join(batch.folder, "dirs")
        os.makedirs(dirs, exist_ok=True)
    for index, r in enumerate(batch.requests):
        log_dir = os.path.abspath(r.log_dir)
        os.makedirs(log_dir, exist_ok=True)
        _write(os.path.join(log_dir, RUN_SCRIPT), run_script(r))
        record = {"attempt": r.attempt, "name": batch.name, "batch": batch.folder,
                  "index": index if batch.is_array else None}
        _write(os.path.join(log_dir, SUBMIT_RECORD), json.dumps(record) + "\n")
        if batch.is_array:
            os.symlink(log_dir, os.path.join(dirs, str(index)))
    _write(batch.script, batch_script(batch, settings))


def batch_script(batch: Batch, settings: SlurmSettings) -> str:
    """The sbatch script of a batch: ``#SBATCH`` lines from the request and the options, setup, then the job(s)."""
    first = batch.requests[0]
    if batch.is_array:
        out = _pattern(os.path.join(batch.folder, "dirs")) + "/%a/stdout"
        err = _pattern(os.path.join(batch.folder, "dirs")) + "/%a/stderr"
        throttle = f"%{settings.array_throttle}" if settings.array_throttle else ""
        head = [f"--array=0-{len(batch.requests) - 1}{throttle}"]
    else:
        out = _pattern(os.path.join(batch.folder, "stdout"))
        err = _pattern(os.path.join(batch.folder, "stderr"))
        head = []
    lines = [f"--job-name={batch.name}", *head, f"--output={_quote(out)}", f"--error={_quote(err)}",
             "--open-mode=append", f"--chdir={_quote(first.workdir)}", *resource_options(first)]
    lines += [f"--{opt}={_quote(value)}" for opt, value in
              (("partition", settings.partition), ("account", settings.account), ("qos", settings.qos)) if value]
    lines += [_sbatch_line(extra) for extra in settings.sbatch_options]
    body = ["#!/bin/sh", *(f"#SBATCH {ln}" for ln in lines)]
    if batch.is_array:
        body.append(f"# written by ws: {len(batch.requests)} jobs of {first.name}; member i runs dirs/i/{RUN_SCRIPT}")
    else:
        body.append(f"# written by ws: job {first.job_id} attempt {first.attempt} ({first.name})")
    body += settings.setup
    if batch.is_array:
        dirs = shlex.quote(os.path.join(batch.folder, "dirs"))
        body.append(f'exec /bin/sh {dirs}/"$SLURM_ARRAY_TASK_ID"/{RUN_SCRIPT}')
    else:
        body.append(f"exec /bin/sh {shlex.quote(os.path.join(batch.folder, RUN_SCRIPT))}")
    return "\n".join(body) + "\n"


def resource_options(r: SubmitRequest) -> list[str]:
    """``--cpus-per-task``, ``--mem`` (MiB), ``--time`` (whole minutes, rounded up), ``--gres=gpu:N``,
    ``--nodes`` (more than one), ``--tmp`` (scratch disk, MiB)."""
    opts = [f"--cpus-per-task={max(1, int(r.cpus))}"]
    if r.nodes and r.nodes > 1:
        opts.append(f"--nodes={int(r.nodes)}")
    if r.disk_mb:
        opts.append(f"--tmp={int(math.ceil(r.disk_mb))}M")
    if r.memory_mb:
        opts.append(f"--mem={int(math.ceil(r.memory_mb))}M")
    if r.walltime_s:
        opts.append(f"--time={max(1, int(math.ceil(r.walltime_s / 60)))}")
    if r.gpus:
        opts.append(f"--gres=gpu:{int(r.gpus)}")
    return opts


def run_script(r: SubmitRequest) -> str:
    """What one job attempt runs inside its allocation: its record, its environment, cd, then the command."""
    log_dir = os.path.abspath(r.log_dir)
    env = {**r.env, "WS_JOB_ID": r.job_id, "WS_JOB_ATTEMPT": str(r.attempt)}
    for key in env:
        if not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise BackendError(f"job {r.job_id}: {key!r} is not a valid environment variable name")
    lines = [
        f"# ws job {r.job_id} attempt {r.attempt}",
        'ws_id=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}',
        f"printf 'id=%s attempt=%s\\n' \"${{ws_id:-$SLURM_JOB_ID}}\" {r.attempt} > "
        f"{shlex.quote(os.path.join(log_dir, JOB_RECORD))}",
        *(f"export {k}={shlex.quote(str(v))}" for k, v in env.items()),
        f"cd {shlex.quote(r.workdir)} || exit 125",
        f"exec /bin/sh -c {shlex.quote(r.command)}",
    ]
    return "\n".join(lines) + "\n"


def read_submit_record(log_dir: str) -> dict | None:
    """The submit record of the latest attempt sent from ``log_dir``, or None."""
    try:
        with open(os.path.join(log_dir, SUBMIT_RECORD)) as f:
            rec = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("attempt"), int) else None


def read_job_record(log_dir: str) -> tuple[str | None, int | None]:
    """(Slurm id, attempt) the job wrote when it started, or (None, None)."""
    try:
        with open(os.path.join(log_dir, JOB_RECORD)) as f:
            text = f.read()
    except FileNotFoundError:
        return None, None
    if not text.endswith("\n"):
        return None, None  # still being written
    fields = dict(p.split("=", 1) for p in text.split() if "=" in p)
    try:
        return fields["id"] or None, int(fields["attempt"])
    except (KeyError, ValueError):
        return None, None


def read_sbatch_id(folder: str, name: str) -> str | None:
    """The id sbatch printed for the batch called ``name`` in ``folder``, once recorded."""
    try:
        with open(os.path.join(folder, SBATCH_ID)) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    parts = text.split()
    if not text.endswith("\n") or len(parts) != 2 or parts[1] != name:
        return None  # half written, or left by an earlier attempt in the same folder
    return parts[0]


def write_sbatch_id(folder: str, sbatch_id: str, name: str) -> None:
    """Record the id sbatch printed (and the job name it belongs to) next to the batch script."""
    _write(os.path.join(folder, SBATCH_ID), f"{sbatch_id} {name}\n")


def _write(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _pattern(path: str) -> str:
    return path.replace("%", "%%")  # sbatch reads %j, %a, ... in file names


def _quote(value: str) -> str:
    """A value for an ``#SBATCH`` line: sbatch splits on blanks and honours double quotes."""
    if '"' in value or "\n" in value:
        raise BackendError(f"Slurm cannot take {value!r} in a batch script (a double quote or line break)")
    return f'"{value}"' if any(c.isspace() for c in value) else value


def _sbatch_line(option: str) -> str:
    option = option.strip()
    if option.startswith("#SBATCH"):
        option = option[len("#SBATCH"):].strip()
    if "\n" in option:
        raise BackendError(f"an sbatch option cannot span lines: {option!r}")
    return option
