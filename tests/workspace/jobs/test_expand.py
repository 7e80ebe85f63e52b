"""Expanding specs: sweeps, overrides, the DAG, inputs and job keys."""

from __future__ import annotations

import os

import pytest

from tests.conftest import write
from workspace.errors import InvalidArgument, PathOutsideWorkspace
from workspace.jobs.expand import expand, parse_overrides, sweep
from workspace.jobs.sweeps import sweep_size
from workspace.jobs.spec import InvalidSpec, JobPolicies, JobSpec, MissingInput
from workspace.jobs.specfile import find_spec, load_spec


def _spec(ws, rel, text):
    write(ws.root, rel, text)
    return find_spec(ws, rel, cwd=ws.root)


def test_product_sweep(ws):
    write(ws.root, "data/a.fq", "AAA")
    spec = _spec(ws, "jobs/align.yaml", "command: align {sample} {k}\ninputs: [data/*.fq]\n"
                 "outputs: ['out/{sample}/{k}/']\nparams: {sample: [a, b, c], k: [1, 2]}\nresources: {cpus: 2}\n")
    jobs = expand(ws, [spec])
    assert len(jobs) == 6
    assert [j.params for j in jobs[:2]] == [{"sample": "a", "k": 1}, {"sample": "a", "k": 2}]
    assert jobs[0].command == "align a 1" and jobs[0].outputs == ["out/a/1/"]
    assert jobs[0].input_ids == {"data/a.fq": ws.working_ids()[0]["data/a.fq"]}
    assert jobs[0].resources.cpus == 2 and jobs[0].spec_path == "jobs/align.yaml"
    assert len({j.key for j in jobs}) == 6 and all(len(j.key) == 64 for j in jobs)


def test_records_sweep_and_overrides(ws):
    spec = _spec(ws, "jobs/r.yaml", "command: run {a} {b}\nparams: [{a: 1, b: x}, {a: 2, b: y}]\n")
    assert [j.command for j in expand(ws, [spec])] == ["run 1 x", "run 2 y"]
    assert [j.command for j in expand(ws, [spec], {"b": "z"})] == ["run 1 z", "run 2 z"]
    spec2 = _spec(ws, "jobs/p.yaml", "command: run {k}\nparams: {k: [1, 2, 3]}\n")
    assert [j.params for j in expand(ws, [spec2], parse_overrides(["k=7"]))] == [{"k": 7}]


def test_no_params_is_one_job(ws):
    assert list(sweep(JobSpec(name="x", command="true"))) == [{}]
    assert len(expand(ws, [JobSpec(name="x", command="true")])) == 1


def test_unknown_override_is_an_error(ws):
    spec = _spec(ws, "jobs/p.yaml", "command: run {k}\nparams: {k: [1]}\n")
    with pytest.raises(InvalidArgument, match="'nope'") as info:
        expand(ws, [spec], {"nope": 1})
    assert info.value.exit_code == 2
    with pytest.raises(InvalidArgument, match="KEY=VALUE"):
        parse_overrides(["novalue"])


def test_dag_pulls_dependencies_from_jobs_folder_in_order(ws):
    write(ws.root, "jobs/pre.yaml", "command: prep\noutputs: [clean/]\n")
    write(ws.root, "jobs/mid.yaml", "command: mid\ndepends_on: [pre]\n")
    spec = _spec(ws, "jobs/align.yaml", "command: align {s}\ninputs: ['clean/*']\nparams: {s: [a, b]}\n"
                 "depends_on: [mid, pre]\n")
    jobs = expand(ws, [spec])
    assert [j.spec_name for j in jobs] == ["pre", "mid", "align", "align"]
    assert jobs[2].depends_on == ["mid", "pre"]
    assert jobs[2].input_ids == {}  # produced upstream: allowed to match nothing yet


def test_cycle_is_named(ws):
    write(ws.root, "jobs/a.yaml", "command: a\ndepends_on: [b]\n")
    write(ws.root, "jobs/b.yaml", "command: b\ndepends_on: [c]\n")
    write(ws.root, "jobs/c.yaml", "command: c\ndepends_on: [a]\n")
    with pytest.raises(InvalidSpec, match=r"field 'depends_on': cycle a -> b -> c -> a") as info:
        expand(ws, [find_spec(ws, "a", cwd=ws.root)])
    assert info.value.exit_code == 9


def test_missing_dependency(ws):
    spec = _spec(ws, "jobs/a.yaml", "command: a\ndepends_on: [ghost]\n")
    with pytest.raises(InvalidSpec, match=r"jobs/a.yaml: field 'depends_on': no spec named 'ghost'"):
        expand(ws, [spec])


def test_input_matching_nothing(ws):
    spec = _spec(ws, "jobs/a.yaml", "command: a\ninputs: [data/*.csv]\n")
    with pytest.raises(MissingInput, match=r"jobs/a.yaml: field 'inputs\[0\]': 'data/\*.csv' matches no file"):
        expand(ws, [spec])


@pytest.mark.parametrize("pattern", ["../outside/*", "/etc/passwd", ".ws/catalog.db"])
def test_inputs_escaping_the_workspace(ws, pattern):
    spec = _spec(ws, "jobs/a.yaml", f"command: a\ninputs: ['{pattern}']\n")
    with pytest.raises(PathOutsideWorkspace, match="jobs/a.yaml: field 'inputs") as info:
        expand(ws, [spec])
    assert info.value.exit_code == 5


def test_outputs_escaping_the_workspace(ws):
    spec = _spec(ws, "jobs/a.yaml", "command: a {d}\noutputs: ['{d}/x']\nparams: {d: ['..']}\n")
    with pytest.raises(PathOutsideWorkspace, match=r"field 'outputs\[0\]'"):
        expand(ws, [spec])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_input(ws):
    p = write(ws.root, "data/secret.csv", "x")
    p.chmod(0)
    spec = _spec(ws, "jobs/a.yaml", "command: a\ninputs: [data/*.csv]\n")
    try:
        with pytest.raises(MissingInput, match="cannot read"):
            expand(ws, [spec])
    finally:
        p.chmod(0o644)


def test_folder_input_and_param_in_input(ws):
    write(ws.root, "data/a/1.txt", "1")
    write(ws.root, "data/a/sub/2.txt", "2")
    write(ws.root, "data/b/3.txt", "3")
    spec = _spec(ws, "jobs/a.yaml", "command: a {s}\ninputs: ['data/{s}']\nparams: {s: [a, b]}\n")
    jobs = expand(ws, [spec])
    assert sorted(jobs[0].input_ids) == ["data/a/1.txt", "data/a/sub/2.txt"]
    assert sorted(jobs[1].input_ids) == ["data/b/3.txt"]


def test_keys_change_only_for_jobs_reading_a_changed_input(ws):
    write(ws.root, "data/a.txt", "a1")
    write(ws.root, "data/b.txt", "b1")
    write(ws.root, "jobs/pre.yaml", "command: pre\ninputs: [data/b.txt]\n")
    spec = _spec(ws, "jobs/per.yaml", "command: p {s}\ninputs: ['data/{s}.txt']\nparams: {s: [a, b]}\n")
    down = _spec(ws, "jobs/down.yaml", "command: d\ndepends_on: [pre]\n")
    before = {(j.spec_name, str(j.params)): j.key for j in expand(ws, [spec, down])}
    assert before == {(j.spec_name, str(j.params)): j.key for j in expand(ws, [spec, down])}  # stable
    write(ws.root, "data/b.txt", "b2 changed")
    after = {(j.spec_name, str(j.params)): j.key for j in expand(ws, [spec, down])}
    assert after[("per", "{'s': 'a'}")] == before[("per", "{'s': 'a'}")]
    assert after[("per", "{'s': 'b'}")] != before[("per", "{'s': 'b'}")]
    assert after[("pre", "{}")] != before[("pre", "{}")]
    assert after[("down", "{}")] != before[("down", "{}")]  # its upstream re-runs, so it does too


def test_key_covers_command_not_policies(ws):
    base = JobSpec(name="k", command="echo {x}", params={"x": [1]})
    k1 = expand(ws, [base])[0].key
    assert expand(ws, [JobSpec(name="k", command="echo {x}", params={"x": [1]},
                               policies=JobPolicies(retries=3, priority=9))])[0].key == k1
    assert expand(ws, [JobSpec(name="k", command="echo {x} !", params={"x": [1]})])[0].key != k1
    assert expand(ws, [JobSpec(name="k", command="echo {x}", params={"x": [2]})])[0].key != k1


def test_backend_override_is_validated(ws):
    spec = load_spec(write(ws.root, "jobs/a.yaml", "command: a\n"))
    spec.backend = "elsewhere"  # not a registered backend: --backend local must replace it before checking
    assert expand(ws, [spec], backend="local")[0].backend == "local"
    assert spec.backend == "elsewhere"  # the caller's spec is not changed
    with pytest.raises(InvalidSpec, match="unknown backend 'nope'"):
        expand(ws, [spec], backend="nope")


def test_to_dict_is_json_ready(ws):
    import json

    job = expand(ws, [JobSpec(name="j", command="true")])[0]
    d = json.loads(json.dumps(job.to_dict()))
    assert d["spec_name"] == "j" and "spec" not in d and d["resources"]["cpus"] == 1


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]),
                       st.lists(st.integers(0, 5), min_size=1, max_size=4, unique=True), min_size=1))
def test_product_size_and_uniqueness(params):
    spec = JobSpec(name="p", command=" ".join(f"{{{k}}}" for k in params), params=params)
    combos = list(sweep(spec))  # an iterator: sweeps are expanded lazily
    expected = 1
    for values in params.values():
        expected *= len(values)
    assert len(combos) == expected == sweep_size(spec)
    assert len({tuple(sorted(c.items())) for c in combos}) == expected
