"""``ws run`` and ``ws jobs cancel|wait|rerun|refresh`` (plus the hidden ``ws jobs supervise``).

Each command parses, makes one call into the API (``ws.run``, ``ws.jobs``) and
formats the answer. ``ws run`` is detached by default: it records the jobs,
starts a supervisor in its own session and returns at once.
"""

from __future__ import annotations

from typing import List, Optional

import typer
from typer.core import TyperCommand

from workspace.cli import app
from workspace.cli.common import JSON, open_workspace as _ws
from workspace.cli.jobs import jobs_app
from workspace.cli.output import emit_json, emit_json_stream, err, out, table

OK = ("SUCCEEDED", "SKIPPED")


def _params(params: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) if params else "-"


def _brief(row: dict) -> dict:
    keys = ("id", "name", "state", "backend", "params", "command", "exit_code", "reason", "output_commit",
            "depends_on")
    return {k: row.get(k) for k in keys}


class _CommandAfterDashes(TyperCommand):
    """Keeps what follows ``--`` apart (``ctx.meta["ws_command"]``): click alone cannot tell
    ``ws run align`` from ``ws run -- align``."""

    def parse_args(self, ctx, args):
        if "--" in args:
            i = args.index("--")
            ctx.meta["ws_command"] = list(args[i + 1:])
            args = list(args[:i])
        return super().parse_args(ctx, args)


@app.command(cls=_CommandAfterDashes)
def run(
    ctx: typer.Context,
    spec: Optional[str] = typer.Argument(None, help="Spec name (jobs/NAME.yaml) or path to a YAML spec; "
                                         "none when a command follows '--'."),
    param: Optional[List[str]] = typer.Option(
        None, "--param", "-p", metavar="KEY=V1,V2",
        help="Sweep a parameter over these values (repeatable; the jobs are the product). Values are one CSV row: "
        "quote a value holding a comma, -p 'msg=\"a,b\",c'. On a spec, replaces the values of the parameter "
        "it declares."),
    param_file: Optional[str] = typer.Option(
        None, "--param-file", metavar="FILE",
        help="Parameter records, one job each: a .csv file (header row = names) or .jsonl (one JSON object a "
        "line). On a spec, they replace its params."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help="Run on this backend instead of the spec's."),
    input_: Optional[List[str]] = typer.Option(None, "--input", "-i", metavar="PATH",
                                               help="With '-- COMMAND': a file, folder or glob it reads "
                                               "(repeatable; part of the job key)."),
    output: Optional[List[str]] = typer.Option(None, "--output", "-o", metavar="PATH",
                                               help="With '-- COMMAND': a file or folder it writes, committed "
                                               "with provenance when it succeeds (repeatable)."),
    resources: Optional[str] = typer.Option(None, "--resources", metavar="K=V,...",
                                            help="With '-- COMMAND': what each job asks for, e.g. "
                                            "cpus=2,memory=4G,walltime=1h,gpus=1."),
    name: Optional[str] = typer.Option(None, "--name", metavar="NAME",
                                       help="With '-- COMMAND': the jobs' name (default: the program's name)."),
    save: Optional[str] = typer.Option(None, "--save", metavar="NAME",
                                       help="With '-- COMMAND': write the equivalent spec to jobs/NAME.yaml "
                                       "instead of running (then: ws run NAME)."),
    wait: bool = typer.Option(False, "--wait/--detach", help="Stay until every job ended (default: detach)."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Print the jobs that would run; record nothing."),
    force: bool = typer.Option(False, "--force", help="Run jobs even if their key already succeeded; "
                               "with --save, replace an existing jobs/NAME.yaml."),
    json_: bool = JSON,
) -> None:
    """Run a spec's jobs (its sweep and dependencies), or a command given after '--' as jobs.

    Jobs whose key (spec, parameters, input content) already succeeded are
    recorded as SKIPPED. Detached by default: the jobs keep running after ws exits.
    A command after '--' runs exactly as a spec would (catalog record, logs,
    provenance, output commit); '{KEY}' in it is filled from --param.

    Examples: ws run align      ws run align -p sample=a,b --wait      ws run jobs/x.yaml --dry-run
    ws run -o out/ -- python train.py      ws run -p lr=0.1,0.01 -o 'out/{lr}/' -- python train.py --lr {lr}
    ws run --save train -o out/ -- python train.py
    """
    import os

    res = _ws().run_request(spec, ctx.meta.get("ws_command"), params=param, param_file=param_file, backend=backend,
                            inputs=input_, outputs=output, resources=resources, name=name, save=save, wait=wait,
                            force=force, dry_run=dry_run, cwd=os.getcwd())
    if save:
        if json_:
            emit_json(res)
        else:
            out(f"saved {res['saved']}; run it with 'ws run {res['name']}'")
        return
    if dry_run:
        _print_dry_run(res, json_)
        return
    jobs = res["jobs"]
    if json_:
        emit_json({"workflow": res["workflow"], "state": res.get("state"), "jobs": [_brief(j) for j in jobs]})
    else:
        _print_run(res, wait)
    if wait and any(j["state"] not in OK for j in jobs):
        raise typer.Exit(1)


def _print_dry_run(rows, json_: bool) -> None:
    """One line (or JSON object) per job as it is expanded: a sweep of 100,000 jobs streams in flat memory."""
    counts = {"run": 0, "skip": 0}

    def counted():
        for row in rows:
            counts["skip" if row["state"] == "SKIPPED" else "run"] += 1
            yield row

    if json_:
        emit_json_stream({"workflow": None, "state": None}, "jobs", (_brief(j) for j in counted()))
        return
    for j in counted():
        would = "skip" if j["state"] == "SKIPPED" else "run"
        out(f"{would:<4}  {j['name']}  {_params(j['params'])}  {j['command']}")
    out(f"{counts['run']} to run, {counts['skip']} skipped (dry run: nothing recorded)")


def _print_run(res: dict, wait: bool) -> None:
    jobs = res["jobs"]
    skipped = sum(j["state"] == "SKIPPED" for j in jobs)
    if not wait:
        out(f"workflow {res['workflow']}: {len(jobs) - skipped} job(s) submitted, {skipped} skipped")
        out(f"  follow with 'ws jobs --workflow {res['workflow']}' or 'ws jobs wait {res['workflow']}'")
        return
    table(["ID", "NAME", "STATE", "PARAMS", "EXIT", "REASON"],
          [[j["id"], j["name"], j["state"], _params(j["params"]), j["exit_code"], j["reason"]] for j in jobs])
    out(f"workflow {res['workflow']}: {res.get('state')}")
    bad = [j for j in jobs if j["state"] not in OK]
    if bad:
        err(f"ws: error: {len(bad)} of {len(jobs)} job(s) did not succeed")


@jobs_app.command()
def cancel(
    job_ids: Optional[List[str]] = typer.Argument(None, help="Job ids (or prefixes, or a workflow id)."),
    all_: bool = typer.Option(False, "--all", help="Cancel every pending, queued or running job."),
    reason: Optional[str] = typer.Option(None, "--reason", "-r", metavar="TEXT",
                                         help="Why: recorded as the job's reason ('cancelled by user: TEXT'), "
                                         "shown by 'ws jobs show' and kept by 'ws fsck --rebuild-catalog'."),
    json_: bool = JSON,
) -> None:
    """Cancel jobs: pending ones never start, running ones are stopped (SIGTERM, then SIGKILL).

    Example: ws jobs cancel 3f2a --reason "wrong reference genome"
    """
    if not job_ids and not all_:
        raise typer.BadParameter("name job ids or use --all", param_hint="JOB_IDS")
    done = _ws().jobs.cancel(job_ids or [], all_jobs=all_, reason=reason)
    if json_:
        emit_json({"cancelled": done})
        return
    out(f"cancelled {len(done)} job(s)" + (": " + " ".join(done) if done else ""))


@jobs_app.command()
def delete(
    job_ids: List[str] = typer.Argument(..., help="Job ids (or prefixes, or a workflow id) of finished jobs."),
    keep_outputs: bool = typer.Option(True, "--keep-outputs/--no-keep-outputs",
                                      help="Keep the output commits as if still recorded, so 'ws gc --prune' "
                                      "keeps them (default); with --no-keep-outputs only a branch, tag or "
                                      "release keeps them."),
    json_: bool = JSON,
) -> None:
    """Forget finished jobs: their record, events and logs under .ws/jobs. Running jobs are refused.

    Their output commits stay in history. The deletion is written to the job
    records under .ws/jobs too, so 'ws fsck --rebuild-catalog' does not bring
    them back.

    Example: ws jobs delete 3f2a9c      ws jobs delete 3f2a 77b0 --json
    """
    gone = _ws().jobs.delete(job_ids, keep_outputs=keep_outputs)
    if json_:
        emit_json({"deleted": [g["id"] for g in gone],
                   "kept_commits": sorted({g["output_commit"] for g in gone if g["output_commit"]})
                   if keep_outputs else []})
        return
    out(f"deleted {len(gone)} job(s)" + (": " + " ".join(g["id"] for g in gone) if gone else ""))


@jobs_app.command("wait")
def wait_(
    job_ids: List[str] = typer.Argument(..., help="Job ids (or prefixes, or a workflow id, or 'latest')."),
    timeout: Optional[float] = typer.Option(None, "--timeout", "-t", help="Give up after this many seconds."),
    json_: bool = JSON,
) -> None:
    """Wait until the jobs have ended. Exit code 0 when all succeeded (or were skipped), 1 otherwise."""
    rows = _ws().jobs.wait(job_ids, timeout)
    if json_:
        emit_json([_brief(r) for r in rows])
    else:
        for r in rows:
            out(f"{r['id']}  {r['name']:<16} {r['state']:<10}" + (f" {r['reason']}" if r["reason"] else ""))
    if any(r["state"] not in OK for r in rows):
        raise typer.Exit(1)


@jobs_app.command()
def rerun(
    workflow: Optional[str] = typer.Argument(None, help="Workflow id (default: the latest)."),
    failed: bool = typer.Option(False, "--failed", help="Rerun the failed, cancelled, lost and out-of-memory jobs."),
    wait: bool = typer.Option(False, "--wait/--detach", help="Stay until the rerun ended."),
    json_: bool = JSON,
) -> None:
    """Run a workflow's failed, cancelled, lost and out-of-memory jobs again, as a new workflow.

    Example: ws jobs rerun --failed
    """
    if not failed:
        raise typer.BadParameter("only '--failed' reruns are supported; add --failed", param_hint="--failed")
    wf = _ws().jobs.rerun_failed(workflow, wait=wait)
    if json_:
        emit_json({"workflow": wf})
        return
    out(f"workflow {wf}: rerunning failed jobs" + (" (done)" if wait else ""))


@jobs_app.command()
def refresh(json_: bool = JSON) -> None:
    """Ask the backends about unfinished and lost jobs and record what they say.

    One status request per backend for all its jobs, rate limited (a backend
    with a poll interval is not asked twice within it, by any ws process). A
    backend that cannot be reached keeps its jobs' last known state, marked
    stale in 'ws jobs'; its error is one line on stderr and the exit code is 10.

    JSON: the list of changes, {id, old, new}.
    """
    report = _ws().jobs.refresh_report()
    changes = report["changes"]
    if json_:
        emit_json(changes)
    else:
        for c in changes:
            out(f"{c['id']}  {c['old']} -> {c['new']}")
        out(f"{len(changes)} job(s) changed")
    for exc in report["errors"]:
        err(f"ws: error: {exc} (its jobs keep their last known state, marked stale)")
    if report["errors"]:
        raise typer.Exit(10)


@jobs_app.command()
def fetch(job_id: str = typer.Argument(..., help="Job id (or a unique prefix)."), json_: bool = JSON) -> None:
    """Bring a job's outputs and logs home from its backend (AWS Batch, PROMINENCE) and commit them.

    For a SUCCEEDED job whose outputs never arrived (the fetch failed, its
    supervisor died, or they were deleted from the working tree): the declared
    outputs are fetched, verified and, when the job has no output commit yet,
    committed with its provenance, as the supervisor does. Exit 1 when the
    commit could not be made.

    Example: ws jobs fetch 3f2a
    JSON: {id, state, fetched: [paths], output_commit, problem}
    """
    res = _ws().jobs.fetch(job_id)
    if json_:
        emit_json(res)
    else:
        out(f"job {res['id']} ({res['state']}): fetched {len(res['fetched'])} file(s)"
            + (f"; outputs in commit {res['output_commit'][:12]}" if res["output_commit"] else ""))
        for path in res["fetched"]:
            out(f"  {path}")
        if res["problem"]:
            err(f"ws: error: {res['problem']}")
    if res["problem"]:
        raise typer.Exit(1)


@jobs_app.command(hidden=True)
def supervise(workflow: str = typer.Argument(..., help="Workflow id."),
              adopt: bool = typer.Option(False, "--adopt", help="Take over LOST jobs that still run.")) -> None:
    """Run a workflow's supervisor in the foreground (what detached 'ws run' starts)."""
    _ws().jobs.supervise(workflow, adopt=adopt)
