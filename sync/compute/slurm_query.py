"""Talking to Slurm's commands: run one with a clear error, and parse squeue, sacct, scontrol and jobcomp output.

Every command goes through :func:`run`, which turns what can go wrong into
one line: :class:`BackendUnavailable` when the command is missing or the
controller cannot be reached (nothing was decided; try again later), a
:class:`BackendError` when Slurm refused the request (a bad partition).

Records are plain dicts keyed by Slurm's field names; ``key`` is the id ws
uses for the job: ``1234`` for a job, ``1234_5`` for member 5 of array 1234.
"""

from __future__ import annotations

import os
import re
import subprocess

from sync.compute.base import BackendUnavailable
from sync.errors import BackendError

# squeue -O fields, in this order; '|' ends each field (none of them can contain one)
SQUEUE_FIELDS = ("JobArrayID", "ArrayJobID", "ArrayTaskID", "State", "Reason", "exit_code", "StartTime", "EndTime",
                 "TimeLimit")
SACCT_FIELDS = ("JobID", "State", "ExitCode", "Start", "End", "Timelimit", "Reason", "JobName")
# what Slurm's clients print when the controller is down or slow: worth retrying later
_UNREACHABLE = ("unable to contact slurm controller", "socket timed out", "connection refused",
                "zero bytes were transmitted", "communication connection failure", "slurm_load_jobs error: unable",
                "slurmctld not responding", "temporarily unavailable", "slurm is currently being reconfigured")
_INVALID_ID = "invalid job id specified"


def run(argv: list[str], timeout_s: float, env: dict | None = None, pass_fds: tuple = ()) -> str:
    """Run a Slurm command; its stdout, or one clear error (see the module docstring)."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env,
                              stdin=subprocess.DEVNULL, pass_fds=pass_fds)
    except FileNotFoundError:
        raise BackendError(f"{argv[0]} not found on PATH: install the Slurm client commands "
                           f"(Debian: slurm-client) or run ws on a machine that has them") from None
    except subprocess.TimeoutExpired:
        raise BackendUnavailable(f"{argv[0]} did not answer within {timeout_s:g}s") from None
    except OSError as exc:
        raise BackendError(f"cannot run {argv[0]}: {exc}") from None
    if proc.returncode != 0:
        message = one_line(proc.stderr) or f"exited {proc.returncode}"
        low = message.lower()
        if _INVALID_ID in low and not proc.stdout.strip():
            return ""  # every id asked about is unknown: not an error for a status query
        if any(s in low for s in _UNREACHABLE):
            raise BackendUnavailable(f"{argv[0]}: {message}")
        raise BackendError(f"{argv[0]}: {message}")
    return proc.stdout


def one_line(text: str) -> str:
    """The meaningful lines of a command's stderr, joined into one (the last error says the most)."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "fatal" in ln.lower()]
    picked = errors[-2:] if errors else lines[-1:]
    return "; ".join(dict.fromkeys(picked))


def parse_squeue(text: str) -> list[dict]:
    """Records from ``squeue -h -O <SQUEUE_FIELDS with '|' after each>``."""
    out = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < len(SQUEUE_FIELDS):
            continue
        rec = dict(zip(SQUEUE_FIELDS, (p.strip() for p in parts)))
        rec["key"] = rec["JobArrayID"]
        out.append(rec)
    return out


def squeue_format() -> str:
    """The ``-O`` argument that :func:`parse_squeue` reads."""
    return ",".join(f"{f}:|" for f in SQUEUE_FIELDS)


def parse_sacct(text: str) -> list[dict]:
    """Records from ``sacct -n -P -X -o <SACCT_FIELDS>``; array ranges (``12_[3-5]``) give one record per member."""
    out = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < len(SACCT_FIELDS):
            continue
        rec = dict(zip(SACCT_FIELDS, parts))
        for key in expand_ids(rec["JobID"]):
            out.append({**rec, "key": key})
    return out


def expand_ids(text: str) -> list[str]:
    """``12_[3-5,9]`` -> 12_3, 12_4, 12_5, 12_9; ``12_7`` and ``12`` as they are (a throttle ``%K`` is dropped)."""
    m = re.fullmatch(r"(\d+)_\[([^\]]*)\]", text.strip())
    if not m:
        return [text.strip()]
    base, ranges = m.group(1), m.group(2).split("%")[0]
    keys = []
    for part in ranges.split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            keys.extend(f"{base}_{i}" for i in range(int(lo), int(hi or lo) + 1))
    return keys


def compress_ids(ids: list[str]) -> list[str]:
    """Job ids for scancel: array members folded into ``A_[1-3,7]`` ranges, plain jobs as they are."""
    members: dict[str, list[int]] = {}
    plain = []
    for bid in ids:
        base, sep, index = bid.partition("_")
        if sep and index.isdigit():
            members.setdefault(base, []).append(int(index))
        else:
            plain.append(bid)
    out = list(dict.fromkeys(plain))
    for base, indices in members.items():
        runs: list[list[int]] = []
        for i in sorted(set(indices)):
            if runs and i == runs[-1][1] + 1:
                runs[-1][1] = i
            else:
                runs.append([i, i])
        out.append(f"{base}_[{','.join(f'{a}-{b}' if a != b else str(a) for a, b in runs)}]")
    return out


def parse_key_values(text: str) -> dict[str, str]:
    """``Key=Value Key2=Value2`` (scontrol -o, the completion record, show config lines) into a dict.

    Values run to the next `` Key=``, so a value may hold spaces (paths, ``Reason=...``).
    """
    out: dict[str, str] = {}
    for m in re.finditer(r"(?:^|\s)([A-Za-z][\w/:]*)=(.*?)(?=\s+[A-Za-z][\w/:]*=|\s*$)", text.strip()):
        out[m.group(1)] = m.group(2)
    return out


def parse_config(text: str) -> dict[str, str]:
    """``scontrol show config`` (``Key = Value`` lines) into a dict."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


def jobcomp_key(rec: dict) -> str:
    """The ws id of one completion record: ``A_i`` for an array member, the job id otherwise."""
    array_id, task = rec.get("ArrayJobId"), rec.get("ArrayTaskId")
    if array_id and task and task.isdigit():
        return f"{array_id}_{task}"
    return rec.get("JobId", "")


class JobcompReader:
    """Reads a ``jobcomp/filetxt`` completion record incrementally (it only grows); the latest record per job wins."""

    def __init__(self, path: str):
        self.path = path
        self.offset = 0
        self.inode = None
        self.records: dict[str, dict] = {}
        self.by_name: dict[str, tuple[str, str]] = {}  # job name -> (base id: the array id for arrays, WorkDir)

    def read(self) -> dict[str, dict]:
        """Every record so far, by ws id; raises OSError when the file cannot be read."""
        st = os.stat(self.path)
        if st.st_ino != self.inode or st.st_size < self.offset:  # replaced or truncated: start again
            self.inode, self.offset, self.records, self.by_name = st.st_ino, 0, {}, {}
        if st.st_size == self.offset:
            return self.records
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self.offset += end
        for line in data[:end].decode("utf-8", errors="replace").splitlines():
            rec = parse_key_values(line)
            key = jobcomp_key(rec)
            if key:
                self.records[key] = rec
                if rec.get("Name"):
                    self.by_name[rec["Name"]] = (key.partition("_")[0], rec.get("WorkDir", ""))
        return self.records
