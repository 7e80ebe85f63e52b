"""Big sweeps: expanded lazily, capped per run (``[jobs] max_jobs_per_run``), in memory flat in their size.

A 1000 x 1000 sweep took 26 s and 970 MB to validate, and ``ws run --dry-run``
passed 2 GB without finishing. The cap is checked from the sizes of the
parameter lists, before anything is expanded; below it, jobs are produced one
at a time and ``ws run --dry-run`` prints each as it comes.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from tests.conftest import write, ws_exe
from workspace.jobs.expand import iter_expand
from workspace.jobs.sweeps import DEFAULT_MAX_JOBS_PER_RUN, sweep, sweep_size
from workspace.jobs.spec import InvalidSpec, JobSpec, validate


def _grid(ws, name: str, a: int, b: int, extra: str = "") -> None:
    write(ws.root, f"jobs/{name}.yaml", f"command: echo {{a}} {{b}}\noutputs: ['out/{{a}}/{{b}}.txt']\n"
          f"params:\n  a: {list(range(a))}\n  b: {list(range(b))}\n{extra}")


def _set_cap(ws, value) -> None:
    cfg = dict(ws.reload_config())
    cfg["jobs"] = {**cfg.get("jobs", {}), "max_jobs_per_run": value}
    ws.save_config(cfg)


def _one_line(proc) -> str:
    assert proc.stderr.startswith("ws: error:") and proc.stderr.count("\n") == 1, proc.stderr
    return proc.stderr


def test_a_million_job_sweep_is_refused_at_once_naming_the_setting(ws, run_ws):
    _grid(ws, "big", 1000, 1000)
    for args in (("jobs", "validate", "big"), ("jobs", "validate"), ("run", "big", "--dry-run"), ("run", "big")):
        proc = run_ws(ws.root, *args, timeout=20)  # it used to take 26 s and 970 MB just to validate
        assert proc.returncode == 9, (args, proc.stderr)
        line = _one_line(proc)
        assert "jobs/big.yaml" in line and "1,000,000 jobs" in line, line
        assert "[jobs] max_jobs_per_run" in line and f"{DEFAULT_MAX_JOBS_PER_RUN:,}" in line, line
    assert json.loads(run_ws(ws.root, "jobs", "--json").stdout) == []


def test_the_cap_is_configurable_and_counts_every_spec_of_the_run(ws, run_ws):
    _grid(ws, "pre", 2, 2)
    _grid(ws, "post", 2, 2, extra="depends_on: [pre]\n")
    _set_cap(ws, 8)
    assert run_ws(ws.root, "run", "post", "--dry-run").returncode == 0
    _set_cap(ws, 7)
    proc = run_ws(ws.root, "run", "post", "--dry-run")
    assert proc.returncode == 9 and "8 jobs" in _one_line(proc) and "max_jobs_per_run = 7" in proc.stderr
    proc = run_ws(ws.root, "jobs", "validate", "pre")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("value", [0, -3, "lots", 2.5, True])
def test_a_bad_cap_is_a_config_error_naming_it(ws, run_ws, value):
    _grid(ws, "small", 2, 2)
    _set_cap(ws, value)
    proc = run_ws(ws.root, "run", "small", "--dry-run")
    assert proc.returncode == 9 and "max_jobs_per_run" in _one_line(proc), proc.stderr


def test_sweeps_are_iterators_and_their_size_is_known_without_expanding():
    spec = validate(JobSpec(name="s", command="x {a} {b} {c}",
                            params={"a": list(range(1000)), "b": list(range(1000)), "c": list(range(1000))}))
    combos = sweep(spec)
    assert isinstance(combos, Iterator)
    assert list(itertools.islice(combos, 2)) == [{"a": 0, "b": 0, "c": 0}, {"a": 0, "b": 0, "c": 1}]
    assert sweep_size(spec) == 10**9
    dup = JobSpec(name="d", command="x {a} {b}", params={"a": [1, 1, 2], "b": ["x", "x"]})
    assert list(sweep(dup)) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}] and sweep_size(dup) == 2
    assert sweep_size(dup, {"a": 5}) == 1 and list(sweep(dup, {"a": 5})) == [{"a": 5, "b": "x"}]
    recs = JobSpec(name="r", command="x {a}", params=[{"a": 1}, {"a": 2}, {"a": 1}])
    assert list(sweep(recs)) == [{"a": 1}, {"a": 2}] and sweep_size(recs) == 2 and sweep_size(recs, {"a": 0}) == 1


def test_expansion_is_lazy(ws):
    """A billion-job sweep (the cap raised) yields its first jobs at once: nothing is built up front."""
    _set_cap(ws, 10**12)
    spec = validate(JobSpec(name="s", command="x {a} {b} {c}", outputs=["out/{a}/{b}/{c}"],
                            params={"a": list(range(1000)), "b": list(range(1000)), "c": list(range(1000))}))
    jobs = iter_expand(ws, [spec])
    assert isinstance(jobs, Iterator)
    first = list(itertools.islice(jobs, 3))
    assert [j.command for j in first] == ["x 0 0 0", "x 0 0 1", "x 0 0 2"]


def test_the_cap_is_checked_before_anything_is_expanded(ws):
    spec = validate(JobSpec(name="s", command="x {a} {b}", params={"a": list(range(10**6)), "b": [1, 2]}))
    with pytest.raises(InvalidSpec) as info:
        iter_expand(ws, [spec])  # raises here: not at the first next()
    assert "2,000,000 jobs" in str(info.value) and info.value.exit_code == 9


def test_dry_run_streams_one_line_per_job_and_valid_json(ws, run_ws):
    _grid(ws, "grid", 3, 4)
    human = run_ws(ws.root, "run", "grid", "--dry-run")
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert len([ln for ln in lines if "echo" in ln]) == 12 and "echo 2 3" in human.stdout
    assert lines[-1] == "12 to run, 0 skipped (dry run: nothing recorded)"
    body = json.loads(run_ws(ws.root, "run", "grid", "--dry-run", "--json").stdout)
    assert body["workflow"] is None and len(body["jobs"]) == 12
    assert body["jobs"][0]["command"] == "echo 0 0" and body["jobs"][0]["state"] == "PENDING"


def _peak_rss_mb(cwd, *args) -> tuple[float, int, str]:
    """Run the real ws; (peak RSS of that process in MB, exit code, stdout's last line)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([*ws_exe(), *map(str, args)], cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        lines = out.read().decode().splitlines()
        assert proc.returncode == 0, err.read().decode()
        return usage.ru_maxrss / 1024, len(lines), lines[-1] if lines else ""


@pytest.mark.slow  # ~20 s on 2 busy cores: two sweeps of 100,000 jobs
def test_memory_is_flat_in_the_sweep_size(ws):
    """Peak RSS of validate and dry-run: 100 jobs vs the default cap (100,000 jobs)."""
    _grid(ws, "small", 10, 10)
    _grid(ws, "big", 100, 1000)
    small_v, _, _ = _peak_rss_mb(ws.root, "jobs", "validate", "small")
    big_v, _, last = _peak_rss_mb(ws.root, "jobs", "validate", "big")
    assert "100000 jobs" in last
    small_d, _, _ = _peak_rss_mb(ws.root, "run", "small", "--dry-run")
    big_d, n, last = _peak_rss_mb(ws.root, "run", "big", "--dry-run")
    assert n == 100_001 and last.startswith("100000 to run")
    # generous: before, 100,000 jobs took hundreds of MB more than 100
    assert big_v - small_v < 40, (small_v, big_v)
    assert big_d - small_d < 40, (small_d, big_d)
