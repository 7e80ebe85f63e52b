"""``ws run -- COMMAND`` (ad-hoc runs, ``--save``) and command-line sweeps (``--param K=V1,V2``, ``--param-file``)."""

from __future__ import annotations

import json

import yaml

from tests.conftest import write


def _json(run_ws, root, *args):
    """``--json`` goes before a ``--`` (what follows it is the command)."""
    args = list(args)
    args.insert(args.index("--") if "--" in args else len(args), "--json")
    proc = run_ws(root, *args)
    assert proc.returncode == 0, (args, proc.stderr)
    return json.loads(proc.stdout)


def _one_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ws: error: "), proc.stderr
    return lines[0]


def _init(tmp_path, run_ws):
    run_ws(tmp_path, "init", "p", check=True)
    return tmp_path / "p"


def test_adhoc_run_is_a_job_like_a_spec(tmp_path, run_ws):
    root = _init(tmp_path, run_ws)
    write(root, "data/in.txt", "hello")
    args = ("run", "--wait", "-i", "data/in.txt", "-o", "out/n.txt", "--resources", "cpus=1,memory=64M",
            "--name", "count", "--", "sh", "-c", "mkdir -p out && wc -c < data/in.txt > out/n.txt")
    res = _json(run_ws, root, *args)
    job = res["jobs"][0]
    assert res["state"] == "SUCCEEDED" and job["name"] == "count" and job["state"] == "SUCCEEDED"
    assert job["command"] == "sh -c 'mkdir -p out && wc -c < data/in.txt > out/n.txt'"
    shown = _json(run_ws, root, "jobs", "show", job["id"])
    assert shown["resources"]["memory_mb"] == 64 and shown["outputs"] == ["out/n.txt"]
    commit = _json(run_ws, root, "show", job["output_commit"])
    assert commit["provenance"]["job"]["id"] == job["id"] and commit["provenance"]["key"] == shown["key"]
    assert (root / "out/n.txt").read_text().strip() == "5"
    assert (root / ".ws/jobs" / job["id"] / "stdout").exists()
    again = _json(run_ws, root, *args)["jobs"][0]
    assert again["state"] == "SKIPPED"  # the same key: nothing changed
    write(root, "data/in.txt", "hello world")
    assert _json(run_ws, root, *args)["jobs"][0]["state"] == "SUCCEEDED"  # its input is part of the key


def test_save_writes_a_spec_that_runs_the_same(tmp_path, run_ws):
    root = _init(tmp_path, run_ws)
    cmd = ("-p", "who=a,b", "-o", "out/{who}.txt", "--", "sh", "-c", 'mkdir -p out && echo "$0" > out/"$0".txt',
           "{who}")
    saved = _json(run_ws, root, "run", "--save", "greet", *cmd)
    assert saved == {"saved": "jobs/greet.yaml", "name": "greet"}
    data = yaml.safe_load((root / "jobs/greet.yaml").read_text())
    assert data["name"] == "greet" and data["params"] == {"who": ["a", "b"]} and data["outputs"] == ["out/{who}.txt"]
    assert _json(run_ws, root, "jobs") == []  # saved, not run
    assert _json(run_ws, root, "jobs", "validate", "greet")[0]["jobs"] == 2
    first = _json(run_ws, root, "run", "greet", "--wait")
    assert sorted(j["params"]["who"] for j in first["jobs"] if j["state"] == "SUCCEEDED") == ["a", "b"]
    # the ad-hoc run under the same name is the same computation: same keys, skipped
    adhoc = _json(run_ws, root, "run", "--wait", "--name", "greet", *cmd)
    assert {j["state"] for j in adhoc["jobs"]} == {"SKIPPED"}
    refused = run_ws(root, "run", "--save", "greet", "--", "true")
    assert refused.returncode == 8 and "--force" in _one_error_line(refused)
    assert yaml.safe_load((root / "jobs/greet.yaml").read_text())["params"] == {"who": ["a", "b"]}
    run_ws(root, "run", "--save", "greet", "--force", "--", "true", check=True)
    assert yaml.safe_load((root / "jobs/greet.yaml").read_text())["command"] == "true"


def test_param_sweeps_from_the_command_line(tmp_path, run_ws):
    root = _init(tmp_path, run_ws)
    rows = _json(run_ws, root, "run", "--dry-run", "-p", "a=1,2", "-p", 'b=x,"y,z"', "--", "echo", "{a}", "{b}")
    got = sorted((j["params"]["a"], j["params"]["b"], j["command"]) for j in rows["jobs"])
    assert got == [(1, "x", "echo 1 x"), (1, "y,z", "echo 1 y,z"), (2, "x", "echo 2 x"), (2, "y,z", "echo 2 y,z")]
    write(root, "p.csv", 'sample,k\nA,1\n"B,2",3\n')
    rows = _json(run_ws, root, "run", "--dry-run", "--param-file", "p.csv", "--", "echo", "{sample}", "{k}")
    assert [(j["params"], j["command"]) for j in rows["jobs"]] == [({"sample": "A", "k": 1}, "echo A 1"),
                                                                   ({"sample": "B,2", "k": 3}, "echo B,2 3")]
    write(root, "p.jsonl", '{"s": "one two"}\n{"s": "x"}\n')
    rows = _json(run_ws, root, "run", "--dry-run", "--param-file", "p.jsonl", "-p", "t=1,2", "--", "echo", "{s}{t}")
    assert [j["command"] for j in rows["jobs"]] == ["echo 'one two'1", "echo 'one two'2", "echo x1", "echo x2"]


def test_param_on_a_spec_replaces_its_values_and_param_file_its_records(tmp_path, run_ws):
    root = _init(tmp_path, run_ws)
    write(root, "jobs/grid.yaml", "name: grid\ncommand: echo {lr} {bs}\nparams: {lr: [0.1], bs: [8, 16]}\n")
    rows = _json(run_ws, root, "run", "grid", "--dry-run", "-p", "lr=0.5,0.01")
    assert sorted(j["command"] for j in rows["jobs"]) == ["echo 0.01 16", "echo 0.01 8", "echo 0.5 16", "echo 0.5 8"]
    write(root, "r.csv", "lr,bs\n1,2\n")
    rows = _json(run_ws, root, "run", "grid", "--dry-run", "--param-file", "r.csv")
    assert [j["command"] for j in rows["jobs"]] == ["echo 1 2"]
    unknown = run_ws(root, "run", "grid", "--dry-run", "-p", "nope=1,2")
    assert unknown.returncode == 2 and "nope" in _one_error_line(unknown)
    write(root, "bad.csv", "lr,zz\n1,2\n")
    bad = run_ws(root, "run", "grid", "--dry-run", "--param-file", "bad.csv")
    assert bad.returncode == 2 and "'zz'" in _one_error_line(bad)
    twice = run_ws(root, "run", "grid", "--dry-run", "-p", "lr=1", "-p", "lr=2")
    assert twice.returncode == 2 and "given twice" in _one_error_line(twice)


def test_adhoc_usage_errors(tmp_path, run_ws):
    root = _init(tmp_path, run_ws)
    write(root, "jobs/x.yaml", "name: x\ncommand: 'true'\n")
    for args in (("run",), ("run", "x", "--", "true"), ("run", "x", "-o", "out/"), ("run", "--"),
                 ("run", "--save", "y", "--dry-run", "--", "true"), ("run", "--save", "y", "--name", "z", "--", "true")):
        proc = run_ws(root, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        _one_error_line(proc)
    assert not (root / "jobs/y.yaml").exists()
    proc = run_ws(root, "run", "--resources", "cpus=2,bogus=1", "--", "true")
    assert proc.returncode == 2 and "bogus" in _one_error_line(proc)
    proc = run_ws(root, "run", "--", "echo", "{nope}")
    assert proc.returncode == 9 and "nope" in _one_error_line(proc)
