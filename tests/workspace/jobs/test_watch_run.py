"""``ws watch --run SPEC``: a spec re-run whenever its inputs change; job keys pick the sweep members.

The real ``ws`` runs in a subprocess with the local backend; the test reads
its report line by line (one JSON object per round), which is the only
synchronization: no sleeps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import write, ws_exe
from workspace.jobs.watch_run import input_folders

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ws watch needs inotify (Linux)")


def _replace(path, text: str) -> None:
    """Write a new version the way careful tools do: a temporary file renamed over the old one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _ran(line: str) -> dict:
    r = json.loads(line)
    return {"round": r["round"], "ran": sorted(j["params"]["s"] for j in r["ran"]), "skipped": r["skipped"],
            "state": r["state"]}


def test_only_members_whose_inputs_changed_run_again(ws):
    for s in "abc":
        write(ws.root, f"data/{s}.txt", s)
    write(ws.root, "jobs/per.yaml", "name: per\ncommand: cat data/{s}.txt > out/{s}.txt\n"
          "inputs: ['data/{s}.txt']\noutputs: ['out/{s}.txt']\nparams: {s: [a, b, c]}\n")
    (ws.root / "out").mkdir()
    proc = subprocess.Popen([*ws_exe(), "watch", "--run", "per", "--rounds", "3", "--settle", "0.2", "--json"],
                            cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _ran(proc.stdout.readline()) == {"round": 1, "ran": ["a", "b", "c"], "skipped": 0,
                                                "state": "SUCCEEDED"}
        _replace(ws.root / "data/b.txt", "b2")
        assert _ran(proc.stdout.readline()) == {"round": 2, "ran": ["b"], "skipped": 2, "state": "SUCCEEDED"}
        assert (ws.root / "out/b.txt").read_text() == "b2"
        write(ws.root, "notes/unrelated.txt", "not an input: starts no round")
        _replace(ws.root / "data/c.txt", "c2")
        assert _ran(proc.stdout.readline()) == {"round": 3, "ran": ["c"], "skipped": 2, "state": "SUCCEEDED"}
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not any(ws.layout.watch_dir.glob("run-barrier*"))  # (watch --run makes no barrier folder now)


def test_input_folders():
    assert input_folders(["data/raw/*.fastq", "ref/genome.fa", "x/{s}/in.txt", "top.txt", "dir/"]) == [
        "", "data/raw", "dir", "ref", "x"]


def test_a_round_that_cannot_start_is_reported_and_the_watch_goes_on(ws):
    for s in "ab":
        write(ws.root, f"data/{s}.txt", s)
    write(ws.root, "jobs/per.yaml", "name: per\ncommand: cat data/{s}.txt\ninputs: ['data/{s}.txt']\n"
          "params: {s: [a, b]}\n")
    proc = subprocess.Popen([*ws_exe(), "watch", "--run", "per", "--rounds", "3", "--settle", "0.2", "--json"],
                            cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _ran(proc.stdout.readline())["ran"] == ["a", "b"]
        (ws.root / "data/b.txt").unlink()
        failed = json.loads(proc.stdout.readline())
        assert failed["round"] == 2 and failed["state"] == "ERROR" and "data/b.txt" in failed["error"]
        _replace(ws.root / "data/b.txt", "b again")
        assert _ran(proc.stdout.readline()) == {"round": 3, "ran": ["b"], "skipped": 1, "state": "SUCCEEDED"}
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_watch_options_exclude_each_other(ws, run_ws):
    proc = run_ws(ws.root, "watch", "--daemon", "--status")
    assert proc.returncode == 2 and "use one of --daemon, --stop, --status, --run" in proc.stderr
    proc = run_ws(ws.root, "watch", "--run", "nope")
    assert proc.returncode == 4 and "ws: error:" in proc.stderr


def test_run_options_without_run_are_refused(ws, run_ws):
    for extra in (["--param", "s=a"], ["-p", "s=a"], ["--backend", "local"], ["--settle", "0.3"],
                  ["--rounds", "2"]):
        proc = run_ws(ws.root, "watch", "--status", *extra)
        assert proc.returncode == 2, (extra, proc.stdout, proc.stderr)
        name = "--param" if extra[0] == "-p" else extra[0]
        assert f"{name} goes with --run" in proc.stderr and proc.stdout == "", extra
