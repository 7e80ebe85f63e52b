"""``ws jobs``: what ran, from the catalog alone (list, show, logs, prune, validate).

``jobs_app`` is the Typer group; ``ws run`` and ``ws jobs cancel|wait|rerun|refresh``
(workspace.cli.run) attach their commands to it.
"""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from workspace.cli import app
from workspace.cli.common import JSON, open_workspace as _ws
from workspace.cli.output import emit_json, err, out

STATE = typer.Option(None, "--state", "-s", help="Only jobs in this state (PENDING, QUEUED, RUNNING, SUCCEEDED, "
                     "FAILED, CANCELLED, SKIPPED, LOST, OUT_OF_MEMORY).", metavar="STATE")
NAME = typer.Option(None, "--name", "-n", help="Only jobs of this spec.", metavar="NAME")
WORKFLOW = typer.Option(None, "--workflow", "-w", help="Only jobs of this workflow (id, prefix or 'latest').",
                        metavar="ID")
LABEL = typer.Option(None, "--label", "-l", metavar="KEY=VALUE",
                     help="Only jobs whose spec has this label (repeatable: every one must match).")

jobs_app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    help="What ran: list jobs, show one, read its logs, prune old records, validate specs.\n\n"
    "Every command answers from the catalog without contacting a backend "
    "('ws jobs refresh' asks the backends).",
)
app.add_typer(jobs_app, name="jobs")


@jobs_app.callback()
def _jobs(ctx: typer.Context, state: Optional[str] = STATE, name: Optional[str] = NAME,
          workflow: Optional[str] = WORKFLOW, label: Optional[List[str]] = LABEL, json_: bool = JSON) -> None:
    """List recorded jobs (the same as 'ws jobs list').

    Examples: ws jobs      ws jobs --state FAILED      ws jobs --name align --json      ws jobs -l project=x
    """
    if ctx.invoked_subcommand is None:
        _print_list(state, name, workflow, label, json_)


@jobs_app.command("list")
def list_(state: Optional[str] = STATE, name: Optional[str] = NAME, workflow: Optional[str] = WORKFLOW,
          label: Optional[List[str]] = LABEL, json_: bool = JSON) -> None:
    """List recorded jobs, oldest first.

    A job whose backend could not be reached at the last status request shows
    its last known state marked stale (text: 'RUNNING?' and a note below the
    table; JSON: a "stale" object with since, error and error_at).

    JSON: a list of objects with id, name, state, backend, params, labels, exit_code, submitted_at,
    finished_at, ... and "stale" on stale jobs.
    """
    _print_list(state, name, workflow, label, json_)


def _print_list(state: Optional[str], name: Optional[str], workflow: Optional[str], labels: Optional[List[str]],
                json_: bool) -> None:
    ws = _ws()
    if json_:
        sys.stdout.write(ws.jobs.list_json(state, name, workflow, labels or None) + "\n")
        return
    rows = ws.jobs.list(state, name, workflow, labels or None)
    if not rows:
        out("no jobs recorded" + (" matching the filters" if state or name or workflow or labels else ""))
        return
    _plain_table(["ID", "NAME", "STATE", "BACKEND", "EXIT", "SUBMITTED", "FINISHED", "PARAMS"],
                 [[r["id"], r["name"], r["state"] + ("?" if r.get("stale") else ""), r["backend"],
                   "-" if r["exit_code"] is None else str(r["exit_code"]),
                   _short_time(r["submitted_at"]), _short_time(r["finished_at"]), _params(r["params"])]
                  for r in rows])
    stale: dict[str, dict] = {}
    for r in rows:
        if r.get("stale"):
            stale.setdefault(r["backend"], r["stale"])
    for backend, info in stale.items():
        out(f"?: stale: backend {backend} unreachable, {_stale_text(info)}")


def _stale_text(stale: dict) -> str:
    """A job's ``stale`` object in words (the listing's footnote and ``ws jobs show`` say it the same way)."""
    since = _short_time(stale["since"]) if stale["since"] else "never"
    return f"last answer {since}; last error ({_short_time(stale['error_at'])}): {stale['error']}"


def _plain_table(columns: list[str], rows: list[list[str]]) -> None:
    """Aligned columns without rich: a table of 100,000 jobs must print in a second, not a minute."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    lines = [fmt.format(*columns)] + [fmt.format(*r) for r in rows]
    sys.stdout.write("\n".join(lines) + "\n")


def _params(params: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) if params else "-"


def _short_time(iso: Optional[str]) -> str:
    return iso[:19].replace("T", " ") if iso else "-"


@jobs_app.command()
def show(job_id: str = typer.Argument(..., help="Job id (or a unique prefix)."), json_: bool = JSON) -> None:
    """Show one job: state, command, resources, events with times, logs and the commit of its outputs."""
    job = _ws().jobs.show(job_id)
    if json_:
        emit_json(job)
        return
    out(f"job {job['id']}  {job['name']}  {job['state']}" + ("  (stale)" if job.get("stale") else ""))
    for label, value in _show_lines(job):
        out(f"  {label + ':':<14}{value}")
    out("  events:")
    for ev in job["events"]:
        out(f"    {_short_time(ev['time'])}  {ev['state']:<10}{ev['detail'] or ''}")
    info = job["output_commit_info"]
    if info:
        out(f"  outputs in commit {info['id'][:12]}" + (f"  {info.get('message')}" if info.get("message") else "")
            + f"   (ws show {info['id'][:12]})")


def _show_lines(job: dict) -> list[tuple[str, str]]:
    d = job["durations"]
    lines = [
        ("command", job["command"]),
        ("params", _params(job["params"])),
        ("spec", job["spec_path"] or "-"),
        ("workflow", job["workflow_id"]),
        ("backend", f"{job['backend']}" + (f" ({job['backend_id']})" if job["backend_id"] else "")),
        ("attempts", str(job["attempts"])),
        ("exit code", "-" if job["exit_code"] is None else str(job["exit_code"])),
        ("resources", _params({k: v for k, v in job["resources"].items() if v not in (None, 0)})),
        ("queued", _secs(d["queued_s"])),
        ("ran", _secs(d["running_s"])),
        ("input commit", job["input_commit"] or "-"),
        ("outputs", ", ".join(job["outputs"]) or "-"),
        ("stdout", job["logs"]["stdout"] or "-"),
        ("stderr", job["logs"]["stderr"] or "-"),
    ]
    env = job.get("environment") or {}
    if env:
        lines.append(("ran on", ", ".join(f"{k}={env[k]}" for k in ("host", "user", "python", "platform") if k in env)))
    if job.get("labels"):
        lines.insert(3, ("labels", _params(job["labels"])))
    if job.get("container"):
        c = job["container"]
        lines.insert(3, ("container", c["image"] + (f" ({c['runtime']})" if c.get("runtime") else "")))
    if job.get("artifacts"):
        lines.append(("artifacts", ", ".join(job["artifacts"])))
    if job["reason"]:
        lines.insert(1, ("reason", job["reason"]))
    stale = job.get("stale")
    if stale:
        lines.insert(1, ("stale", f"backend unreachable; {_stale_text(stale)}"))
    if job.get("depends_on"):
        lines.append(("depends on", ", ".join(job["depends_on"])))
    return lines


def _secs(s: Optional[float]) -> str:
    if s is None:
        return "-"
    if s < 120:
        return f"{s:.1f}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m{int(s % 60):02d}s"


@jobs_app.command()
def logs(job_id: str = typer.Argument(..., help="Job id (or a unique prefix)."),
         stderr: bool = typer.Option(False, "--stderr", help="Show stderr instead of stdout."),
         follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the job ends.")) -> None:
    """Print the stdout (or stderr) a job wrote, from the log files recorded in the catalog.

    With --follow, prints as the log grows until the job ends (at once for a job
    that already ended), then exits with the job's state: 0 when it succeeded
    (or was skipped), 1 otherwise (failed, cancelled, lost, out of memory). A job
    that did not succeed gets a line on stderr with its state and exit code and
    the last lines of its stderr; an empty stdout is said, with where stderr is.

    Example: ws jobs logs 3f2a --follow
    """
    ws = _ws()
    if not follow:
        sys.stdout.write(ws.jobs.logs(job_id, stderr))
        return
    for chunk in ws.jobs.follow(job_id, stderr):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    end = ws.jobs.log_end(job_id)
    _tell_end(end, stderr)
    if not end["ok"]:
        raise typer.Exit(1)


def _tell_end(end: dict, followed_stderr: bool) -> None:
    """After --follow: how the job ended, on stderr (stdout keeps only the log)."""
    if end["ok"]:
        if not followed_stderr and not end["stdout_bytes"]:
            err(f"ws: job {end['id']} {end['state']}; it wrote nothing on stdout "
                f"(stderr: {end['stderr']}, 'ws jobs logs {end['id']} --stderr')")
        return
    how = f"exit code {end['exit_code']}" if end["exit_code"] is not None else (end["reason"] or "no exit code")
    if end["reason"] and end["exit_code"] is not None and end["reason"] != how:
        how += f": {end['reason']}"
    err(f"ws: job {end['id']} {end['state']} ({how})")
    if followed_stderr:
        return
    if not end["stdout_bytes"]:
        err("its stdout is empty")
    if end["stderr_tail"]:
        err(f"last {len(end['stderr_tail'])} line(s) of its stderr ({end['stderr']}):")
        for line in end["stderr_tail"]:
            err(f"  {line}")
    else:
        err(f"its stderr is empty too ({end['stderr']})" if not end["stdout_bytes"]
            else f"its stderr ({end['stderr']}) is empty")


@jobs_app.command()
def prune(before: str = typer.Option(..., "--before", help="Date (2026-01-31, ISO time) or age (30d, 12h).",
                                     metavar="DATE"),
          json_: bool = JSON) -> None:
    """Forget finished jobs older than DATE and delete their logs (running jobs are kept).

    Example: ws jobs prune --before 30d
    """
    gone = _ws().jobs.prune(before)
    if json_:
        emit_json({"pruned": [g["id"] for g in gone]})
        return
    out(f"pruned {len(gone)} job{'s' if len(gone) != 1 else ''}")


@jobs_app.command("validate")
def validate_(spec: Optional[str] = typer.Argument(None, help="Spec name or YAML path (default: every jobs/*.yaml)."),
              json_: bool = JSON) -> None:
    """Check specs without running anything: fields, templates, inputs, dependencies, backends.

    Every problem names the file, the field and what is wrong. Exit code 9 when a spec is invalid.
    """
    import os

    reports = _ws().jobs.validate(spec, cwd=os.getcwd())
    bad = [r for r in reports if not r["ok"]]
    if json_:
        emit_json(reports)
    else:
        for r in reports:
            if r["ok"]:
                out(f"ok    {r['path'] or r['name']}: {r['jobs']} job{'s' if r['jobs'] != 1 else ''}")
        for r in bad:
            err(f"ws: error: {r['error']}")
    if bad:
        raise typer.Exit(bad[0]["exit_code"])

