"""``ws backend add|list|remove|check``: the compute backends a spec's ``backend:`` may name."""

from __future__ import annotations

from typing import List, Optional

import typer

from workspace.cli import app
from workspace.cli.common import JSON, key_values, open_workspace as _ws
from workspace.cli.output import emit_json, err, out

EXIT_CHECK_FAILED = 10  # a backend error (docs/errors.md)

backend_app = typer.Typer(
    no_args_is_help=True,
    help="Compute backends: where jobs run (local, slurm, batch, prominence).\n\n"
    "A spec's 'backend:' and 'ws run --backend' name a configured backend, or a bare type with its "
    "default options. Options are stored in .ws/config.toml; secrets go through 'ws login NAME'. "
    "Every type's options: docs/backends.md.",
)
app.add_typer(backend_app, name="backend")


@backend_app.command("add")
def add(
    name: str = typer.Argument(..., help="The name specs use (backend: NAME), e.g. cluster."),
    kind: str = typer.Argument(..., metavar="TYPE", help="local, slurm, batch or prominence."),
    option: Optional[List[str]] = typer.Option(
        None, "--option", "-o", metavar="KEY=VALUE",
        help="A non-secret option of the type, e.g. partition=gpu or job_queue=ws-queue (repeatable; a key "
        "given twice becomes a list). Unknown options and bad values are refused (exit 9); secrets "
        "(token, AWS keys) are refused here: use 'ws login NAME'."),
    json_: bool = JSON,
) -> None:
    """Configure a compute backend under a name.

    Nothing is contacted: 'ws backend check NAME' does that.

    Examples: ws backend add cluster slurm -o partition=gpu -o account=proj42 -o array_throttle=50
              ws backend add aws batch -o job_queue=ws-queue -o staging=origin -o default_image=python:3.12-slim
              ws backend add cloud prominence -o url=https://host/prominence/v1 && ws login cloud
    """
    info = _ws().add_backend(name, kind, key_values(option, lists=True))
    if json_:
        emit_json(info.to_dict())
        return
    out(f"Added backend {info.name} ({info.type})" + (f": {_shown(info.options)}" if info.options else ""))


def _shown(options: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(options.items()))


@backend_app.command("list")
def list_(json_: bool = JSON) -> None:
    """List configured backends: name, type and options (secrets are never shown: they are not here).

    JSON: a list of {name, type, options, configured}.
    """
    rows = _ws().backends()
    if json_:
        emit_json([r.to_dict() for r in rows])
        return
    if not rows:
        out("no backends configured (specs may still name a type: local, slurm, batch, prominence)")
        return
    for r in rows:
        out(f"{r.name:<16} {r.type:<11}" + (f" {_shown(r.options)}" if r.options else ""))


@backend_app.command("remove")
def remove(name: str = typer.Argument(..., help="Backend to forget.")) -> None:
    """Forget a configured backend. Its recorded jobs stay; its secrets stay in the keyring ('ws login NAME --forget')."""
    _ws().remove_backend(name)
    out(f"Removed backend {name}")


@backend_app.command("check")
def check(name: str = typer.Argument(..., help="A configured backend, or a type."), json_: bool = JSON) -> None:
    """Reach a backend: the service answers, the credentials are accepted, the queue or partition exists.

    One line per check ('ok' or 'FAILED' and why); exit 10 when one failed.
    Slurm: the controller, the partition, 'sbatch --test-only' (partition, account, qos).
    AWS Batch: the job queue (so the credentials), the staging remote.
    PROMINENCE: the service, the token.

    Example: ws backend check cluster
    """
    rows = _ws().check_backend(name)
    if json_:
        emit_json({"backend": name, "ok": all(r["ok"] for r in rows), "checks": rows})
    else:
        for r in rows:
            line = f"{'ok' if r['ok'] else 'FAILED':<7}{r['check']:<11}{r['detail']}"
            out(line) if r["ok"] else err(line)
    if not all(r["ok"] for r in rows):
        raise typer.Exit(EXIT_CHECK_FAILED)
