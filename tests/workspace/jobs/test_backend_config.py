"""Configured backends (``ws backend add|list|remove|check``), the spec fields remote backends need, and
``ws jobs --label``: through the real ``ws`` executable, on the local backend.

The same commands against PROMINENCE and Slurm are in tests/sync/test_backend_wiring.py.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from tests.conftest import write

ROOT = Path(__file__).resolve().parents[3]


def _config(ws) -> dict:
    return tomllib.loads((ws.root / ".ws" / "config.toml").read_text())


def test_add_list_remove(ws, run_ws):
    out = run_ws(ws.root, "backend", "add", "cluster", "slurm", "-o", "partition=gpu", "-o", "array_throttle=50",
                 "-o", "setup=module load python", "-o", "setup=source venv/bin/activate", check=True).stdout
    assert "Added backend cluster (slurm)" in out
    table = _config(ws)["backend"]["cluster"]
    assert table == {"type": "slurm", "options": {"partition": "gpu", "array_throttle": "50",
                                                  "setup": ["module load python", "source venv/bin/activate"]}}
    run_ws(ws.root, "backend", "add", "here", "local", check=True)
    listed = json.loads(run_ws(ws.root, "backend", "list", "--json", check=True).stdout)
    assert [(b["name"], b["type"]) for b in listed] == [("cluster", "slurm"), ("here", "local")]
    assert "cluster" in run_ws(ws.root, "backend", "list", check=True).stdout
    run_ws(ws.root, "backend", "remove", "cluster", check=True)
    assert list(_config(ws)["backend"]) == ["here"]
    gone = run_ws(ws.root, "backend", "remove", "cluster")
    assert gone.returncode == 9 and "unknown backend 'cluster'" in gone.stderr


@pytest.mark.parametrize("args, code, words", [
    (["x", "kubernetes"], 9, "unknown backend type 'kubernetes'"),
    (["x", "slurm", "-o", "partiton=gpu"], 9, "has no option 'partiton'"),
    (["x", "slurm", "-o", "array_throttle=lots"], 9, "array_throttle"),
    (["x", "prominence", "-o", "token=abc"], 2, "'ws login x'"),
    (["x", "batch", "-o", "aws_secret_access_key=abc"], 2, "secrets never go into .ws/"),
    (["bad name", "local"], 2, "invalid backend name"),
    (["x", "slurm", "-o", "partition"], 2, "KEY=VALUE"),
])
def test_bad_backends_are_refused_and_nothing_is_written(ws, run_ws, args, code, words):
    before = (ws.root / ".ws" / "config.toml").read_text()
    proc = run_ws(ws.root, "backend", "add", *args)
    assert proc.returncode == code and words in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 or code == 2
    assert "abc" not in proc.stderr
    assert (ws.root / ".ws" / "config.toml").read_text() == before


def test_a_backend_with_unfinished_jobs_cannot_be_removed(ws, run_ws):
    run_ws(ws.root, "backend", "add", "here", "local", check=True)
    write(ws.root, "jobs/slow.yaml", "command: sleep 600\nbackend: here\n")
    wf = json.loads(run_ws(ws.root, "run", "slow", "--json", check=True).stdout)["workflow"]
    refused = run_ws(ws.root, "backend", "remove", "here")
    assert refused.returncode == 2 and "unfinished job" in refused.stderr
    assert "here" in _config(ws)["backend"]
    run_ws(ws.root, "jobs", "cancel", wf, check=True)
    run_ws(ws.root, "jobs", "wait", wf, "--timeout", "60")
    run_ws(ws.root, "backend", "remove", "here", check=True)


def test_adding_twice_is_refused(ws, run_ws):
    run_ws(ws.root, "backend", "add", "here", "local", check=True)
    again = run_ws(ws.root, "backend", "add", "here", "slurm")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_check_local_reports_one_line_per_check(ws, run_ws):
    run_ws(ws.root, "backend", "add", "here", "local", check=True)
    proc = run_ws(ws.root, "backend", "check", "here", check=True)
    lines = proc.stdout.strip().splitlines()
    assert [ln.split()[:2] for ln in lines] == [["ok", "options"], ["ok", "machine"]]
    report = json.loads(run_ws(ws.root, "backend", "check", "here", "--json", check=True).stdout)
    assert report["ok"] is True and [c["check"] for c in report["checks"]] == ["options", "machine"]


def test_check_fails_with_exit_10_when_the_service_cannot_be_reached(ws, run_ws):
    run_ws(ws.root, "backend", "add", "far", "prominence", "-o", "url=http://127.0.0.1:9/v1", check=True)
    proc = run_ws(ws.root, "backend", "check", "far", env={"WS_BACKEND_FAR_TOKEN": "t0ken-value"})
    assert proc.returncode == 10
    assert re.search(r"^FAILED\s+service\s+cannot reach PROMINENCE", proc.stderr, re.M), proc.stderr
    assert "t0ken-value" not in proc.stdout + proc.stderr


def test_a_spec_names_a_configured_backend(ws, run_ws):
    run_ws(ws.root, "backend", "add", "mine", "local", "-o", "memory=rlimit", check=True)
    write(ws.root, "jobs/a.yaml", "command: echo hi > a.txt\noutputs: [a.txt]\nbackend: mine\n")
    res = json.loads(run_ws(ws.root, "run", "a", "--wait", "--json", check=True).stdout)
    assert [(j["backend"], j["state"]) for j in res["jobs"]] == [("mine", "SUCCEEDED")]
    write(ws.root, "jobs/b.yaml", "command: echo b\n")
    res = json.loads(run_ws(ws.root, "run", "b", "--backend", "mine", "--wait", "--json", check=True).stdout)
    assert res["jobs"][0]["backend"] == "mine"


def test_an_unknown_backend_names_the_configured_ones(ws, run_ws):
    run_ws(ws.root, "backend", "add", "cluster", "slurm", check=True)
    write(ws.root, "jobs/a.yaml", "command: echo hi\nbackend: clutser\n")
    proc = run_ws(ws.root, "run", "a")
    assert proc.returncode == 9
    assert "unknown backend 'clutser'" in proc.stderr and "configured: cluster" in proc.stderr
    write(ws.root, "jobs/b.yaml", "command: echo hi\n")
    proc = run_ws(ws.root, "run", "b", "--backend", "nowhere")
    assert proc.returncode == 9 and "configured: cluster" in proc.stderr


def test_a_configured_backend_is_known_from_the_python_api_with_cwd_outside(ws, tmp_path, monkeypatch):
    """--param-file re-checks the spec: with the workspace's config, not the one found from the current folder."""
    ws.add_backend("mine", "local")
    write(ws.root, "jobs/a.yaml", "command: echo {n}\nparams: {n: [1]}\nbackend: mine\n")
    write(tmp_path, "elsewhere/p.csv", "n\n1\n2\n")
    monkeypatch.chdir(tmp_path / "elsewhere")
    res = ws.run("a", dry_run=True, param_file=str(tmp_path / "elsewhere" / "p.csv"))
    assert [j["backend"] for j in res["jobs"]] == ["mine", "mine"]
    rows = list(ws.run_command(["echo", "hi"], backend="mine", dry_run=True))  # an ad-hoc run's spec too
    assert [j["backend"] for j in rows] == ["mine"]



def test_checking_and_planning_never_read_a_backends_secrets(ws, monkeypatch):
    """ws run --dry-run builds no backend with its secrets: the checks need its options, the rows a class attribute."""
    from workspace.jobs import backends

    ws.add_backend("cloud", "batch", {"job_queue": "q", "staging": "s3://bucket/x", "default_image": "busybox"})
    opened = []
    monkeypatch.setattr(backends, "_keyring_secrets", lambda name: opened.append(name) or {})
    write(ws.root, "data/x.txt", "x")
    write(ws.root, "jobs/a.yaml", "command: cat {n}\nbackend: cloud\ninputs: [data/x.txt]\nparams: {n: [1, 2]}\n")
    rows = ws.run("a", dry_run=True)["jobs"]
    assert [r["backend"] for r in rows] == ["cloud", "cloud"] and all(r["input_files"] for r in rows)
    assert opened == []


# -- the spec fields -----------------------------------------------------------------------
@pytest.mark.parametrize("text, field, words", [
    ("container: {runtime: docker}\n", "container.image", "missing"),
    ("container: {image: busybox, runtime: podman}\n", "container.runtime", "unknown runtime 'podman'"),
    ("container: {image: busybox, tag: 1}\n", "container.tag", "unknown field"),
    ("labels: [a, b]\n", "labels", "mapping"),
    ("labels: {'a b': x}\n", "labels.a b", "letters, digits"),
    ("labels: {k: {x: 1}}\n", "labels.k", "expected a string"),
    ("artifacts: [not a url]\n", "artifacts[0]", "not a URL"),
    ("artifacts: ['https://user:pw@host/x.tgz']\n", "artifacts[0]", "credentials"),
    ("resources: {nodes: 0}\n", "resources.nodes", ">= 1"),
    ("resources: {disk: lots}\n", "resources.disk", "not a memory size"),
])
def test_new_spec_fields_are_validated(ws, run_ws, text, field, words):
    write(ws.root, "jobs/a.yaml", "command: echo hi\n" + text)
    proc = run_ws(ws.root, "jobs", "validate", "a")
    assert proc.returncode == 9 and f"field '{field}'" in proc.stderr and words in proc.stderr, proc.stderr
    assert "pw" not in proc.stderr


@pytest.mark.parametrize("text, field", [
    ("resources: {nodes: 2}\n", "resources.nodes"),
    ("container: {image: busybox}\n", "container.image"),
    ("resources: {disk: 1000000TB}\n", "resources.disk"),
])
def test_the_local_backend_refuses_what_it_cannot_honour(ws, run_ws, text, field):
    write(ws.root, "jobs/a.yaml", "command: echo hi\n" + text)
    for args in (["jobs", "validate", "a"], ["run", "a"]):
        proc = run_ws(ws.root, *args)
        assert proc.returncode == 9 and f"field '{field}'" in proc.stderr and "local backend" in proc.stderr, \
            proc.stderr
    assert json.loads(run_ws(ws.root, "jobs", "--json", check=True).stdout) == []  # nothing recorded


def test_artifacts_are_fetched_into_the_job_folder_before_it_runs(ws, run_ws, tmp_path):
    ref = tmp_path / "elsewhere" / "ref.txt"
    ref.parent.mkdir()
    ref.write_text("reference data\n")
    write(ws.root, "jobs/a.yaml", f"command: cat ref.txt > out.txt\noutputs: [sub/out.txt]\nworkdir: sub\n"
                                  f"artifacts: ['file://{ref}']\n")
    (ws.root / "sub").mkdir()
    job = json.loads(run_ws(ws.root, "run", "a", "--wait", "--json", check=True).stdout)["jobs"][0]
    assert job["state"] == "SUCCEEDED"
    assert (ws.root / "sub" / "out.txt").read_text() == "reference data\n"
    assert not [p for p in (ws.root / "sub").iterdir() if p.name.startswith(".ws-tmp")]
    write(ws.root, "jobs/b.yaml", f"command: 'true'\nartifacts: ['file://{tmp_path}/missing.tgz?sig=SECRETSIG']\n")
    proc = run_ws(ws.root, "run", "b", "--wait", "--json")
    (job,) = json.loads(proc.stdout)["jobs"]
    assert proc.returncode == 1 and job["state"] == "FAILED"
    assert "could not fetch artifact" in job["reason"] and "missing.tgz" in job["reason"]
    assert "SECRETSIG" not in job["reason"]


def test_new_fields_enter_the_key_only_when_set(ws):
    from workspace.jobs.expand import expand
    from workspace.jobs.fields import from_dict

    def key(extra: dict) -> str:
        spec = from_dict({"name": "a", "command": "echo hi", **extra}, "jobs/a.yaml")
        return expand(ws, [spec])[0].key

    import hashlib

    plain = key({})
    # what keys were before these fields existed: the same six spec fields, nothing else
    old = ('{"inputs":{},"params":{},"spec":{"command":"echo hi","env":{},"inputs":[],"name":"a","outputs":[],'
           '"workdir":null},"upstream":[]}')
    assert plain == hashlib.sha256(old.encode()).hexdigest()
    keys = {plain, key({"labels": {"project": "x"}}), key({"labels": {"project": "y"}}),
            key({"resources": {"disk": "1GB"}})}
    assert len(keys) == 4


def test_labels_filter_every_listing_and_show(ws, run_ws):
    write(ws.root, "jobs/a.yaml", "command: echo {n}\nparams: {n: [1, 2]}\nlabels: {project: demo, team: x}\n")
    write(ws.root, "jobs/b.yaml", "command: echo b\nlabels: {project: other}\n")
    run_ws(ws.root, "run", "a", "--wait", check=True)
    run_ws(ws.root, "run", "b", "--wait", check=True)
    fast = json.loads(run_ws(ws.root, "jobs", "--json", "--label", "project=demo", check=True).stdout)
    assert [j["name"] for j in fast] == ["a", "a"] and fast[0]["labels"] == {"project": "demo", "team": "x"}
    both = json.loads(run_ws(ws.root, "jobs", "list", "--json", "-l", "project=demo", "-l", "team=x",
                             check=True).stdout)
    assert len(both) == 2
    none = json.loads(run_ws(ws.root, "jobs", "--json", "-l", "project=demo", "-l", "team=y", check=True).stdout)
    assert none == []
    table = run_ws(ws.root, "jobs", "--label", "project=other", check=True).stdout
    assert table.count("\n") == 2 and " b " in table
    show = run_ws(ws.root, "jobs", "show", fast[0]["id"], check=True).stdout
    assert re.search(r"labels:\s+project=demo team=x", show)
    shown = json.loads(run_ws(ws.root, "jobs", "show", fast[0]["id"], "--json", check=True).stdout)
    assert shown["labels"] == {"project": "demo", "team": "x"} and shown["stale"] is None
    bad = run_ws(ws.root, "jobs", "--json", "--label", "project")
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr


def test_fetch_of_a_local_job_has_nothing_to_fetch_and_keeps_its_commit(ws, run_ws):
    write(ws.root, "jobs/a.yaml", "command: echo hi > a.txt\noutputs: [a.txt]\n")
    job = json.loads(run_ws(ws.root, "run", "a", "--wait", "--json", check=True).stdout)["jobs"][0]
    got = json.loads(run_ws(ws.root, "jobs", "fetch", job["id"], "--json", check=True).stdout)
    assert got == {"id": job["id"], "state": "SUCCEEDED", "fetched": [], "output_commit": job["output_commit"],
                   "problem": None}


# -- the documented options are the real ones ------------------------------------------------
def _documented_options(section: str) -> set[str]:
    """The option names in the first table of the '### Options' part of a backend's section in docs/backends.md."""
    text = (ROOT / "docs" / "backends.md").read_text()
    part = text[text.index(section):]
    part = part[part.index("### Options"):]
    table = part[part.index("| option"):].split("\n\n", 1)[0]
    names: set[str] = set()
    for row in table.splitlines()[2:]:
        names.update(re.findall(r"`([a-z_0-9]+)`", row.split("|")[1]))
    return names


@pytest.mark.parametrize("section, kind", [
    ("## The local backend", "local"),
    ("## The Slurm backend", "slurm"),
    ("## The PROMINENCE backend", "prominence"),
    ("## The AWS Batch backend", "batch"),
])
def test_documented_options_are_what_ws_backend_add_accepts(section, kind):
    from workspace.jobs.backends import SECRET_OPTIONS, allowed_options

    documented = _documented_options(section) - set(SECRET_OPTIONS)
    assert documented == set(allowed_options(kind)), (section, documented ^ set(allowed_options(kind)))


def _first_session(section: str) -> str:
    """The ```sh block under '### A first session' of a backend's section in docs/backends.md."""
    text = (ROOT / "docs" / "backends.md").read_text()
    part = text[text.index(section):]
    part = part[part.index("### A first session"):]
    return part[part.index("```sh\n") + 6:].split("\n```", 1)[0]


def test_the_documented_local_first_session_runs(tmp_path):
    """The local backend's copy-paste session, as a user would paste it (the others need a cluster or a service:
    their commands are the ones tests/sync/test_backend_wiring.py runs)."""
    import subprocess

    from tests.conftest import ws_exe

    script = _first_session("## The local backend")
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "ws").write_text("#!/bin/sh\nexec " + " ".join(ws_exe()) + ' "$@"\n')
    (shim / "ws").chmod(0o755)
    import os

    env = dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "local-demo" / "out" / "3.txt").read_text() == "9\n"
    listed = [ln for ln in proc.stdout.splitlines() if ln.startswith("[{")]
    assert listed and all(j["labels"] == {"demo": "squares"} for j in json.loads(listed[0]))
