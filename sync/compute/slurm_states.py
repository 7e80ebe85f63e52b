"""Slurm's job states and reasons, mapped onto ours: :func:`to_status` turns one Slurm record into a BackendStatus.

Every Slurm job state has a row in ``STATES`` (``squeue``, ``sacct`` and the
job completion record all use the same names). Final states carry a one-line
reason naming the Slurm state; pending jobs carry Slurm's pending reason
(``Resources``, ``Priority``, ``QOSMaxJobsPerUserLimit``...) followed by what
it means, so that ``ws jobs show`` says why a job waits.

Pure functions, no I/O: the parsers of :mod:`sync.compute.slurm_query` and the
tests use them alike.
"""

from __future__ import annotations

import signal
import time

from sync.compute.base import CANCELLED, FAILED, LOST, OUT_OF_MEMORY, QUEUED, RUNNING, SUCCEEDED, BackendStatus

# Slurm state -> (our state, the reason given for a final state; None: computed from the exit code)
STATES: dict[str, tuple[str, str | None]] = {
    "PENDING": (QUEUED, None),
    "REQUEUED": (QUEUED, None),
    "REQUEUE_HOLD": (QUEUED, None),
    "REQUEUE_FED": (QUEUED, None),
    "RESV_DEL_HOLD": (QUEUED, None),
    "CONFIGURING": (QUEUED, None),  # allocated, nodes still booting: nothing runs yet
    "RUNNING": (RUNNING, None),
    "COMPLETING": (RUNNING, None),  # its processes are being cleaned up: the end is not known yet
    "SUSPENDED": (RUNNING, None),
    "STOPPED": (RUNNING, None),
    "SIGNALING": (RUNNING, None),
    "STAGE_OUT": (RUNNING, None),
    "RESIZING": (RUNNING, None),
    "COMPLETED": (SUCCEEDED, None),
    "FAILED": (FAILED, None),
    "CANCELLED": (CANCELLED, "cancelled (scancel)"),
    "TIMEOUT": (FAILED, "TIMEOUT: stopped by Slurm at its time limit"),
    "OUT_OF_MEMORY": (OUT_OF_MEMORY, "OUT_OF_MEMORY: killed by Slurm at its memory limit (--mem)"),
    "NODE_FAIL": (FAILED, "NODE_FAIL: a node of the job failed"),
    "PREEMPTED": (FAILED, "PREEMPTED: stopped to make room for a higher-priority job"),
    "BOOT_FAIL": (FAILED, "BOOT_FAIL: its node failed to boot"),
    "DEADLINE": (FAILED, "DEADLINE: it could not end before its deadline (--deadline)"),
    "SPECIAL_EXIT": (FAILED, "SPECIAL_EXIT: held after a special exit code"),
    "REVOKED": (LOST, "REVOKED: another cluster of the federation runs it"),
}

# Slurm's pending reasons (squeue %r) and what they mean; prefixes cover families of limits.
PENDING_REASONS: dict[str, str] = {
    "Resources": "waiting for resources (cpus, memory, gpus) to become free",
    "Priority": "jobs of higher priority are ahead of it in the queue",
    "Dependency": "waiting for a job it depends on",
    "DependencyNeverSatisfied": "a job it depends on failed: it will never run",
    "JobArrayTaskLimit": "the array's throttle (%K) lets no more of its members run",
    "BeginTime": "its start time (--begin) is still in the future",
    "JobHeldUser": "held by its user (scontrol release)",
    "JobHeldAdmin": "held by an administrator",
    "PartitionTimeLimit": "its time limit is above the partition's",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is inactive",
    "ReqNodeNotAvail": "the nodes it needs are not available (down, drained or reserved)",
    "Reservation": "waiting for its reservation",
    "Licenses": "waiting for licenses",
    "InvalidAccount": "its account is invalid: it will never run",
    "InvalidQOS": "its QOS is invalid: it will never run",
    "BadConstraints": "its constraints can never be satisfied",
    "NodeDown": "a node it needs is down",
    "launch failed requeued held": "its launch failed; held after a requeue",
    "JobLaunchFailure": "its launch failed",
}
_REASON_PREFIXES = (
    ("QOS", "a QOS limit is reached"),
    ("AssocGrp", "a limit of its account (association) is reached"),
    ("AssocMax", "a limit of its account (association) is reached"),
    ("MaxCpuPerAccount", "a limit of its account is reached"),
)

_MISSING_TIMES = {"", "N/A", "NONE", "None", "Unknown", "(null)"}
_SLURM_SIGNALS = {125: "its memory limit", 126: "an out-of-memory event"}  # Slurm's own pseudo-signals


def pending_reason(code: str | None) -> str | None:
    """``pending: CODE (meaning)`` for a Slurm pending reason; None when Slurm gives none."""
    code = (code or "").strip().strip("()")
    if not code or code == "None":
        return None
    meaning = PENDING_REASONS.get(code)
    if meaning is None:
        meaning = next((text for prefix, text in _REASON_PREFIXES if code.startswith(prefix)), None)
    return f"pending: {code} ({meaning})" if meaning else f"pending: {code}"


def parse_time(text: str | None) -> int | None:
    """Nanoseconds since the epoch for Slurm's local ``YYYY-MM-DDTHH:MM:SS``; None for N/A, Unknown, NONE."""
    text = (text or "").strip()
    if text in _MISSING_TIMES:
        return None
    try:
        return int(time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S")) * 1_000_000_000)
    except ValueError:
        return None


def exit_from_wait_status(raw: str | int | None) -> tuple[int | None, int | None]:
    """(exit code, signal) from squeue's ``exit_code`` field, a raw wait status (768 = exit 3, 9 = SIGKILL)."""
    try:
        value = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None, None
    if value & 0x7F:
        return None, value & 0x7F
    return (value >> 8) & 0xFF, None


def exit_from_pair(text: str | None) -> tuple[int | None, int | None]:
    """(exit code, signal) from sacct's and the completion record's ``CODE:SIGNAL``."""
    code, _, sig = (text or "").partition(":")
    try:
        code_i, sig_i = int(code), int(sig or 0)
    except ValueError:
        return None, None
    return (None, sig_i) if sig_i else (code_i, None)


def _exit_code(code: int | None, sig: int | None) -> int | None:
    if sig:
        return 128 + sig if sig < 64 else None  # shell convention; Slurm's pseudo-signals are not exits
    return code


def _exit_reason(code: int | None, sig: int | None) -> str:
    if sig and sig < 64:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"exit code {128 + sig} (killed by {name})"
    if sig:
        return f"killed by Slurm ({_SLURM_SIGNALS.get(sig, f'signal {sig}')})"
    return f"exit code {code}"


def to_status(state: str, reason: str | None = None, code: int | None = None, sig: int | None = None,
              started_ns: int | None = None, finished_ns: int | None = None,
              time_limit: str | None = None) -> BackendStatus:
    """Our status for one Slurm record: its state, Slurm's reason code, exit code/signal, times, time limit."""
    base = (state or "").split()[0].rstrip("+") if state else ""  # sacct: "CANCELLED by 0", "RUNNING+"
    ours, text = STATES.get(base, (None, None))
    if ours is None:  # a state this version does not know: keep polling, and say so
        return BackendStatus(QUEUED, reason=f"Slurm reports state {base or '?'}, which ws does not know")
    if ours == QUEUED:
        return BackendStatus(QUEUED, reason=pending_reason(reason) if base == "PENDING" else
                             f"{base.lower()}: {pending_reason(reason) or 'waiting to start again'}")
    if ours == RUNNING:
        why = None if base in ("RUNNING", "COMPLETING") else base.lower()
        return BackendStatus(RUNNING, started_ns=started_ns, reason=why)
    exit_code = _exit_code(code, sig)
    if finished_ns and started_ns and finished_ns < started_ns:
        finished_ns = started_ns
    if ours == SUCCEEDED:
        return BackendStatus(SUCCEEDED, exit_code if exit_code is not None else 0, started_ns, finished_ns)
    if text is None:  # FAILED: the exit code says it all
        text = _exit_reason(code, sig)
        if reason and reason not in ("None", "NonZeroExitCode", "RaisedSignal"):
            text += f" (Slurm: {reason})"
    elif base == "TIMEOUT" and time_limit and time_limit not in _MISSING_TIMES:
        text += f" of {time_limit}"
    return BackendStatus(ours, exit_code, started_ns, finished_ns, text)
