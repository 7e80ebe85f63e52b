"""The Slurm backend: sbatch (one job array per sweep), squeue for many jobs in one call, scancel, log files.

Jobs run in the workspace folder, which on a cluster is a shared file system:
the batch script, each job's run script and the output files live in the
job's log folder (see :mod:`sync.compute.slurm_script` for the layout), so
``ws jobs logs --follow`` reads what Slurm writes while the job runs.

Ids are Slurm's: ``1234`` for a job, ``1234_5`` for member 5 of array 1234.
:meth:`SlurmBackend.status` asks ``squeue -t all`` once for every id (live
jobs and those Slurm still remembers, ``MinJobAge``), at most once per
``poll_interval_s``; ids squeue no longer knows are read from ``sacct`` when
the cluster keeps accounting, else from the job completion record
(``JobCompType=jobcomp/filetxt``) when it is readable here. States and reasons
are mapped in :mod:`sync.compute.slurm_states`.

Options are constructor keywords (strings are accepted, as from a config
file), and nothing is contacted before the first operation.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import replace

from sync.compute import slurm_query as sq
from sync.compute import slurm_script as ss
from sync.compute.base import (CANCELLED, LOST, QUEUED, BackendStatus, BackendUnavailable, ComputeBackend,
                               InvalidBackendOption, SubmitRequest)
from sync.compute.slurm_states import exit_from_pair, exit_from_wait_status, parse_time, to_status
from sync.errors import BackendError

DEFAULT_POLL_S = 5.0  # at most one squeue per this many seconds (env WS_SLURM_POLL_INTERVAL overrides)
DEFAULT_MAX_ARRAY = 1001  # Slurm's default MaxArraySize, when the cluster's cannot be read
CANCEL_CHUNK = 200  # ids per scancel call
_BENIGN_CANCEL = ("already complet", "invalid job id")  # scancel on jobs that already ended


class SlurmBackend(ComputeBackend):
    """Runs jobs on a Slurm cluster through its commands (``sbatch``, ``squeue``, ``sacct``, ``scontrol``, ``scancel``).

    Options: ``partition``, ``account``, ``qos``; ``sbatch_options`` (extra
    ``#SBATCH`` lines, e.g. ``["--constraint=a100"]``); ``setup`` (shell lines
    run before each job, e.g. ``["module load python/3.11"]``);
    ``array_throttle`` (``K`` in ``--array=0-N%K``); ``poll_interval_s`` (the
    least time between two squeue calls); ``max_array_size`` (default: the
    cluster's ``MaxArraySize``); ``command_timeout_s``; ``slurm_conf`` (a
    ``SLURM_CONF`` for the commands this backend runs).
    """

    name = "slurm"
    starts_at_once = False
    enforces_walltime = True  # --time: Slurm stops the job (TIMEOUT)
    fetches_artifacts = True  # on the login node, into the job's workdir (the compute nodes share it)

    def __init__(self, partition: str | None = None, account: str | None = None, qos: str | None = None,
                 sbatch_options=None, setup=None, array_throttle=None, poll_interval_s=None, max_array_size=None,
                 command_timeout_s=60.0, slurm_conf: str | None = None):
        self.settings = ss.SlurmSettings(partition=_text(partition), account=_text(account), qos=_text(qos),
                                         sbatch_options=_lines("sbatch_options", sbatch_options),
                                         setup=_lines("setup", setup),
                                         array_throttle=_number("array_throttle", array_throttle, int, 1))
        if poll_interval_s is None or poll_interval_s == "":
            poll_interval_s = os.environ.get("WS_SLURM_POLL_INTERVAL") or DEFAULT_POLL_S
        self.poll_interval_s = _number("poll_interval_s", poll_interval_s, float, 0)
        self.max_array_size = _number("max_array_size", max_array_size, int, 1)
        self.command_timeout_s = _number("command_timeout_s", command_timeout_s, float, 1) or 60.0
        self.slurm_conf = _text(slurm_conf)
        self._config: dict | None = None
        self._cache: dict[str, BackendStatus] = {}
        self._last_poll: float | None = None
        self._logs: dict[str, tuple[str, str]] = {}  # ids submitted here -> (stdout, stderr)
        self._names: dict[str, str | None] = {}  # find(): Slurm job name -> base id (None: never submitted)
        self._jobcomp: sq.JobcompReader | None = None

    # -- running commands ----------------------------------------------------------
    def _run(self, argv: list[str], pass_fds: tuple = ()) -> str:
        env = None
        if self.slurm_conf:
            env = {**os.environ, "SLURM_CONF": self.slurm_conf}
        return sq.run(argv, self.command_timeout_s, env, pass_fds)

    def cluster_config(self) -> dict[str, str]:
        """``scontrol show config``, read once per instance (accounting, MaxArraySize, the completion record)."""
        if self._config is None:
            self._config = sq.parse_config(self._run(["scontrol", "show", "config"]))
        return self._config

    def _array_limit(self) -> int:
        if self.max_array_size:
            return self.max_array_size
        try:
            return int(self.cluster_config().get("MaxArraySize", DEFAULT_MAX_ARRAY))
        except ValueError:
            return DEFAULT_MAX_ARRAY

    def check(self) -> list[tuple[str, bool, str]]:
        """The controller answers, the partition exists, and sbatch accepts partition, account and qos.

        The last is ``sbatch --test-only``: Slurm validates the job against the
        user's associations (so the credentials: munge and the account) and
        submits nothing.
        """
        out: list[tuple[str, bool, str]] = []
        try:
            config = self.cluster_config()
            out.append(("controller", True, f"slurmctld of cluster {config.get('ClusterName', '?')} answers"))
        except BackendError as exc:
            return [("controller", False, str(exc))]
        partition = self.settings.partition
        try:
            names = [p.strip().rstrip("*") for p in self._run(["sinfo", "-h", "-o", "%P"]).split()]
            if partition and partition not in names:
                out.append(("partition", False, f"no partition '{partition}' (partitions: {', '.join(names)})"))
            else:
                out.append(("partition", True, f"partition {partition or 'default'} exists"))
        except BackendError as exc:
            out.append(("partition", False, str(exc)))
        argv = ["sbatch", "--test-only", "--wrap", "true", "-o", "/dev/null"]
        for flag, value in (("--partition", partition), ("--account", self.settings.account),
                            ("--qos", self.settings.qos)):
            if value:
                argv.append(f"{flag}={value}")
        try:
            self._run(argv)
            out.append(("submit", True, "sbatch --test-only accepts a job (partition, account, qos)"))
        except BackendError as exc:
            out.append(("submit", False, str(exc)))
        return out

    # -- submitting ----------------------------------------------------------------
    def check_request(self, request: SubmitRequest) -> None:
        """Slurm honours several nodes (``--nodes``) and scratch disk (``--tmp``); the rest as the default says."""
        if request.nodes > 1:
            request = replace(request, nodes=1)  # asked for with --nodes: not a reason to refuse
        super().check_request(request)

    def submit(self, request: SubmitRequest) -> str:
        """Submit one attempt as a plain batch job named ``ws-<job id>-<attempt>``."""
        result = self.submit_many([request])[0]
        if isinstance(result, BackendError):
            raise result
        return result

    def submit_many(self, requests: list[SubmitRequest]) -> list[str | BackendError]:
        """One sbatch per group of requests that share a name and resources: a job array when there are several."""
        groups: dict[tuple, list[int]] = {}
        results: list[str | BackendError] = [BackendError("not submitted")] * len(requests)
        fetched: dict[tuple, BackendError | None] = {}  # a sweep's members share their artifacts: fetched once
        for i, r in enumerate(requests):
            try:
                self.check_request(r)  # a container...: refused, alone
                if r.artifacts:  # fetched here, on the login node: the compute nodes share the file system
                    self._fetch_artifacts(r, fetched)
            except BackendError as exc:
                results[i] = exc
                continue
            groups.setdefault(ss.group_key(r), []).append(i)
        down: BackendError | None = None  # once the cluster is unreachable, the other groups wait too
        for indices in groups.values():
            for chunk in self._chunks(indices, down):
                ids: list[str | BackendError]
                if down is not None:
                    ids = [down] * len(chunk)
                else:
                    try:
                        ids = list(self._submit_batch([requests[i] for i in chunk]))
                    except BackendUnavailable as exc:
                        down = exc
                        ids = [exc] * len(chunk)
                    except BackendError as exc:
                        ids = [exc] * len(chunk)
                for i, result in zip(chunk, ids):
                    results[i] = result
        return results

    @staticmethod
    def _fetch_artifacts(request: SubmitRequest, fetched: dict) -> None:
        from sync.compute.artifacts import fetch_artifacts

        key = (tuple(request.artifacts), request.workdir)
        if key not in fetched:
            try:
                fetch_artifacts(request.artifacts, request.workdir)
                fetched[key] = None
            except BackendError as exc:
                fetched[key] = exc
        if fetched[key] is not None:
            raise fetched[key]

    def _chunks(self, indices: list[int], down) -> list[list[int]]:
        """A group split into arrays no larger than the cluster allows."""
        if len(indices) == 1 or down is not None:
            return [indices]
        try:
            limit = self._array_limit()
        except BackendError:
            limit = DEFAULT_MAX_ARRAY  # sbatch will say what is wrong, with its own words
        return [indices[i:i + limit] for i in range(0, len(indices), limit)]

    def _submit_batch(self, requests: list[SubmitRequest]) -> list[str]:
        batch = ss.plan_batch(requests)
        try:
            ss.write_batch(batch, self.settings)
            lock = os.open(os.path.join(batch.folder, ss.LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise BackendError(f"cannot write the batch script for {batch.name}: {exc}") from exc
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # sbatch inherits it: held until sbatch is done, even if we die
            out = self._run(["sbatch", "--parsable", batch.script], pass_fds=(lock,))
        except BackendUnavailable:
            raise  # it may have been submitted all the same (a timeout): find() asks Slurm by name
        except BackendError:
            ss.write_sbatch_id(batch.folder, ss.REFUSED, batch.name)  # find(): certainly never submitted
            raise
        finally:
            os.close(lock)
        sbatch_id = out.strip().split(";")[0]
        if not sbatch_id.isdigit():
            raise BackendError(f"sbatch printed no job id for {batch.name}: {out.strip()[:200]!r}")
        ss.write_sbatch_id(batch.folder, sbatch_id, batch.name)
        ids = batch.ids(sbatch_id)
        for bid, r in zip(ids, requests):
            self._logs[bid] = (os.path.join(r.log_dir, "stdout"), os.path.join(r.log_dir, "stderr"))
        return ids

    # -- finding an attempt ------------------------------------------------------------
    def find(self, request: SubmitRequest) -> str | None:
        """The id of attempt ``request.attempt``: from the job's own record, sbatch's answer, or its job name."""
        record = ss.read_submit_record(request.log_dir)
        if record is None or record["attempt"] != request.attempt:
            return None  # this attempt never got as far as sbatch
        started, attempt = ss.read_job_record(request.log_dir)
        if started and attempt == request.attempt:
            return started
        folder, name, index = record.get("batch") or request.log_dir, record.get("name") or "", record.get("index")
        self._wait_for_sbatch(folder, request)
        base = ss.read_sbatch_id(folder, name)
        if base is None:
            stdout = None if index is not None else os.path.join(os.path.abspath(request.log_dir), "stdout")
            base = self._find_by_name(name, stdout, request.workdir)
        if base is None or base == ss.REFUSED:
            return None
        return f"{base}_{index}" if index is not None else base

    def _wait_for_sbatch(self, folder: str, request: SubmitRequest) -> None:
        """Wait while an sbatch for this batch still runs (its submitter may have died meanwhile)."""
        try:
            fd = os.open(os.path.join(folder, ss.LOCK), os.O_RDONLY)
        except FileNotFoundError:
            return
        deadline = time.monotonic() + self.command_timeout_s + 5
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise BackendUnavailable(f"job {request.job_id} attempt {request.attempt}: sbatch is "
                                                 f"still running after {self.command_timeout_s:g}s") from None
                    time.sleep(0.05)  # a rare recovery path: poll the lock with a deadline
        finally:
            os.close(fd)

    def _find_by_name(self, name: str, stdout: str | None, workdir: str) -> str | None:
        """The Slurm id (array id for arrays) of our job called ``name``: squeue, then sacct or the completion record.

        Array names carry a random token; a plain job's name (``ws-<job id>-<attempt>``)
        could be another workspace's, so its output file (squeue) or folder must match too.
        """
        if name in self._names:
            return self._names[name]
        out = self._run(["squeue", "-h", "-t", "all", f"--name={name}", "-O", "ArrayJobID:|,StdOut:|"])
        found = next((parts[0].strip() for parts in (ln.split("|") for ln in out.splitlines() if ln.strip())
                      if stdout is None or parts[1].strip() == stdout), None)
        if found is None and self._accounting():
            out = self._run(["sacct", "-n", "-P", "-X", "-S", "now-30days", f"--name={name}", "-o", "JobID,WorkDir"])
            found = next((parts[0].split("_")[0] for parts in (ln.split("|") for ln in out.splitlines() if "|" in ln)
                          if stdout is None or parts[1] == workdir), None)
        if found is None and self._jobcomp_reader() is not None:
            try:
                self._jobcomp.read()
                base, where = self._jobcomp.by_name.get(name, (None, None))
                found = base if stdout is None or where == workdir else None
            except OSError:
                pass
        self._names[name] = found
        return found

    # -- status ------------------------------------------------------------------------
    def status(self, backend_ids: list[str]) -> dict[str, BackendStatus]:
        """Every id in one squeue call (at most one per ``poll_interval_s``); the rest from sacct or jobcomp."""
        if not backend_ids:
            return {}
        now = time.monotonic()
        if self._last_poll is not None and now - self._last_poll < self.poll_interval_s:
            if all(b in self._cache or b in self._logs for b in backend_ids):  # rate limited: what we know
                return {b: self._cache.get(b) or BackendStatus(QUEUED, reason="submitted") for b in backend_ids}
        statuses = self._poll(list(dict.fromkeys(backend_ids)))
        self._cache.update(statuses)
        self._last_poll = now
        return {b: statuses[b] for b in backend_ids}

    def _poll(self, ids: list[str]) -> dict[str, BackendStatus]:
        valid = [b for b in ids if _is_slurm_id(b)]
        out = {b: BackendStatus(LOST, reason=f"{b!r} is not a Slurm job id") for b in ids if not _is_slurm_id(b)}
        if not valid:
            return out
        bases = sorted({b.partition("_")[0] for b in valid}, key=int)
        text = self._run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(bases), "-O", sq.squeue_format()])
        records = {rec["key"]: rec for rec in sq.parse_squeue(text)}
        arrays = {rec["ArrayJobID"] for rec in records.values()} | set(records)
        unknown = []
        for b in valid:
            rec = records.get(b)
            if rec is not None:
                code, sig = exit_from_wait_status(rec["exit_code"])
                out[b] = to_status(rec["State"], rec["Reason"], code, sig, parse_time(rec["StartTime"]),
                                   parse_time(rec["EndTime"]), rec["TimeLimit"])
            else:
                unknown.append(b)
        finished = self._finished(unknown) if unknown else {}
        for b in unknown:
            if b in finished:
                out[b] = finished[b]
            elif "_" in b and b.partition("_")[0] in arrays:
                # Slurm drops an array member cancelled while pending without any record of it
                out[b] = BackendStatus(CANCELLED, reason="cancelled while pending (scancel)")
            else:
                out[b] = BackendStatus(LOST, reason=f"Slurm no longer knows job {b} (it forgets finished jobs "
                                                    f"after MinJobAge; no accounting or completion record here)")
        return out

    def _accounting(self) -> bool:
        kind = self.cluster_config().get("AccountingStorageType", "accounting_storage/none")
        return kind not in ("", "accounting_storage/none", "(null)")

    def _jobcomp_reader(self) -> sq.JobcompReader | None:
        if self._jobcomp is None:
            cfg = self.cluster_config()
            path = cfg.get("JobCompLoc", "")
            if cfg.get("JobCompType") == "jobcomp/filetxt" and path and os.access(path, os.R_OK):
                self._jobcomp = sq.JobcompReader(path)
        return self._jobcomp

    def _finished(self, ids: list[str]) -> dict[str, BackendStatus]:
        """Jobs squeue no longer lists: from sacct (accounting) or the job completion record."""
        out = {}
        if self._accounting():
            fields = ",".join(sq.SACCT_FIELDS)
            text = self._run(["sacct", "-n", "-P", "-X", "-j", ",".join(ids), "-o", fields])
            for rec in sq.parse_sacct(text):
                if rec["key"] in ids:
                    code, sig = exit_from_pair(rec["ExitCode"])
                    out[rec["key"]] = to_status(rec["State"], rec["Reason"], code, sig, parse_time(rec["Start"]),
                                                parse_time(rec["End"]), rec["Timelimit"])
            return out
        reader = self._jobcomp_reader()
        if reader is None:
            return out
        try:
            records = reader.read()
        except OSError:
            return out
        for b in ids:
            rec = records.get(b)
            if rec is not None:
                code, sig = exit_from_pair(rec.get("ExitCode"))
                out[b] = to_status(rec.get("JobState", ""), None, code, sig, parse_time(rec.get("StartTime")),
                                   parse_time(rec.get("EndTime")), rec.get("TimeLimit"))
        return out

    # -- cancel, logs --------------------------------------------------------------------
    def cancel(self, backend_ids: list[str]) -> None:
        """scancel, array members folded into ranges (``1234_[0-999]``); jobs that already ended are ignored."""
        targets = sq.compress_ids([b for b in backend_ids if _is_slurm_id(b)])
        for start in range(0, len(targets), CANCEL_CHUNK):
            try:
                self._run(["scancel", *targets[start:start + CANCEL_CHUNK]])
            except BackendUnavailable:
                raise
            except BackendError as exc:
                if not any(s in str(exc).lower() for s in _BENIGN_CANCEL):
                    raise
        self._last_poll = None  # the next status asks Slurm again

    def logs(self, backend_id: str) -> tuple[str, str]:
        """The job's output files (in its log folder); from ``scontrol show job`` for jobs submitted elsewhere."""
        if backend_id in self._logs:
            return self._logs[backend_id]
        if not _is_slurm_id(backend_id):
            raise BackendError(f"not a Slurm job id: {backend_id!r}")
        rec = sq.parse_key_values(self._run(["scontrol", "show", "job", "-o", backend_id]))
        if not rec.get("StdOut"):
            raise BackendError(f"Slurm no longer knows job {backend_id}; its logs are in the job's log folder")
        base, _, index = backend_id.partition("_")
        return tuple(os.path.realpath(_expand_pattern(rec.get(k) or rec["StdOut"], base, index))  # type: ignore
                     for k in ("StdOut", "StdErr"))


def _is_slurm_id(bid: str) -> bool:
    base, sep, index = bid.partition("_")
    return base.isdigit() and (not sep or index.isdigit())


def _expand_pattern(path: str, array_id: str, index: str) -> str:
    """The few filename patterns ws writes (``%a``, ``%A``, ``%%``), for Slurm versions that show them unexpanded."""
    return path.replace("%%", "\0").replace("%a", index).replace("%A", array_id).replace("\0", "%")


def _text(value) -> str | None:
    return str(value).strip() or None if value is not None else None


def _lines(option: str, value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [ln.strip() for ln in value.splitlines() if ln.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    raise InvalidBackendOption(f"slurm backend: option {option} must be a list of lines, not {value!r}")


def _number(option: str, value, kind, minimum):
    if value is None or value == "":
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise InvalidBackendOption(f"slurm backend: option {option} must be a number, not {value!r}") from None
    if number < minimum:
        raise InvalidBackendOption(f"slurm backend: option {option} must be at least {minimum}, not {value!r}")
    return number
