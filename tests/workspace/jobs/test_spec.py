"""Spec files: units, loading, and every validation error naming file, field and problem."""

from __future__ import annotations

import pytest

from tests.conftest import write
from workspace.jobs.fields import from_dict, parse_duration, parse_memory
from workspace.jobs.spec import InvalidSpec, JobPolicies, JobSpec, Resources, SpecNotFound, validate
from workspace.jobs.specfile import find_spec, load_spec

FULL = """\
name: align
description: align reads
command: python align.py --sample {sample} --k {k}
resources: {cpus: 2, memory: 4GB, walltime: 30m, gpus: 1}
env: {OMP_NUM_THREADS: "2", DEBUG: true}
workdir: src
inputs: [data/raw/*.fastq]
outputs: ["out/{sample}/"]
params: {sample: [a, b, c], k: [1, 2]}
policies: {retries: 2, timeout: 1h, priority: 5, max_queue: 2h, ignore_failures: true, backoff: 5s}
depends_on: [preprocess]
backend: local
notify: {on: [finished, failed], command: "echo done"}
"""


@pytest.mark.parametrize("text,mb", [("4GB", 4096), ("512MB", 512), ("1.5G", 1536), ("2gib", 2048),
                                     ("1T", 1024 * 1024), (300, 300), ("64", 64), ("1024K", 1)])
def test_memory_units(text, mb):
    assert parse_memory(text) == mb


@pytest.mark.parametrize("text,secs", [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("1d", 86400),
                                       ("01:02:03", 3723), ("05:00", 300), (45, 45), ("1.5h", 5400)])
def test_duration_units(text, secs):
    assert parse_duration(text) == secs


@pytest.mark.parametrize("bad", ["lots", "4XB", "-1GB", "", True])
def test_bad_memory(bad):
    with pytest.raises(ValueError):
        parse_memory(bad)


@pytest.mark.parametrize("bad", ["soon", "1:2:3:4", "h", "", "-5", True, "1x"])
def test_bad_duration(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_full_spec_loads(tmp_path):
    p = write(tmp_path, "jobs/align.yaml", FULL)
    spec = load_spec(p)
    assert spec.name == "align" and spec.description == "align reads"
    assert spec.resources == Resources(cpus=2, memory_mb=4096, walltime_s=1800, gpus=1)
    assert spec.policies == JobPolicies(retries=2, timeout_s=3600, priority=5, max_queue_s=7200,
                                        ignore_failures=True, backoff_s=5)
    assert spec.env == {"OMP_NUM_THREADS": "2", "DEBUG": "true"}
    assert spec.params == {"sample": ["a", "b", "c"], "k": [1, 2]}
    assert spec.depends_on == ["preprocess"] and spec.backend == "local" and spec.workdir == "src"
    assert spec.notify.on == ["finished", "failed"] and spec.notify.command == "echo done"
    assert spec.path == str(p)


def test_name_defaults_to_file_stem(tmp_path):
    spec = load_spec(write(tmp_path, "jobs/hello.yml", "command: echo hi\n"))
    assert spec.name == "hello" and spec.params == {} and spec.resources == Resources()


def _err(tmp_path, text: str) -> str:
    p = write(tmp_path, "jobs/s.yaml", text)
    with pytest.raises(InvalidSpec) as info:
        load_spec(p)
    assert info.value.exit_code == 9
    msg = str(info.value)
    assert msg.startswith(str(p)), msg  # every message names the file first
    return msg


@pytest.mark.parametrize("text,field,problem", [
    ("command: x\ncomand: y\n", "'comand'", "unknown field"),
    ("name: s\n", "'command'", "missing"),
    ("command: x\nresources: {cpu: 2}\n", "'resources.cpu'", "unknown field"),
    ("command: x\nresources: {memory: lots}\n", "'resources.memory'", "not a memory size"),
    ("command: x\nresources: {cpus: 0}\n", "'resources.cpus'", ">= 1"),
    ("command: x\nresources: {walltime: soon}\n", "'resources.walltime'", "not a duration"),
    ("command: x\npolicies: {retries: -1}\n", "'policies.retries'", ">= 0"),
    ("command: x\npolicies: {timeout: forever}\n", "'policies.timeout'", "not a duration"),
    ("command: x\npolicies: {ignore_failures: maybe}\n", "'policies.ignore_failures'", "true or false"),
    ("command: x\npolicies: {retry: 1}\n", "'policies.retry'", "unknown field"),
    ("command: echo {sampel}\nparams: {sample: [a]}\n", "'command'", "unknown template field '{sampel}'"),
    ("command: echo {0}\n", "'command'", "positional"),
    ("command: echo {x\n", "'command'", "bad template"),
    ("command: x\noutputs: ['out/{nope}/']\n", "'outputs[0]'", "unknown template field '{nope}'"),
    ("command: x\nbackend: kubernetes\n", "'backend'", "unknown backend 'kubernetes'"),
    ("command: x\nparams: [{a: 1}, {b: 2}]\n", "'params'", "same parameters"),
    ("command: x\nparams: {a: []}\n", "'params.a'", "at least one value"),
    ("command: x\nparams: 5\n", "'params'", "mapping of lists"),
    ("command: x\nenv: {1BAD: x}\n", "'env.1BAD'", "not a valid environment variable name"),
    ("command: x\nnotify: {on: [finished]}\n", "'notify'", "'command' or a 'url'"),
    ("command: x\nnotify: {on: [exploded], command: y}\n", "'notify.on'", "unknown event 'exploded'"),
    ("command: x\nnotify: {url: ftp://x}\n", "'notify.url'", "http"),
    ("command: x\ndepends_on: [s]\n", "'depends_on'", "itself"),
    ("name: 'bad name!'\ncommand: x\n", "'name'", "letters, digits"),
    ("command: [x]\n", "'command'", "expected a string"),
])
def test_errors_name_file_field_problem(tmp_path, text, field, problem):
    msg = _err(tmp_path, text)
    assert f"field {field}" in msg and problem in msg, msg


def test_bad_yaml_names_line(tmp_path):
    msg = _err(tmp_path, "command: x\nparams: {a: [1, 2}\n")
    assert "not valid YAML" in msg and "line" in msg


def test_unquoted_template_in_flow_list_gets_a_hint(tmp_path):
    msg = _err(tmp_path, "command: x {s}\noutputs: [out/{s}/]\nparams: {s: [a]}\n")
    assert "line 2" in msg and "must be quoted" in msg


def test_not_a_mapping(tmp_path):
    assert "a spec must be a mapping" in _err(tmp_path, "- command: x\n")


def test_notify_bare_on_key_and_url(tmp_path):
    spec = load_spec(write(tmp_path, "jobs/n.yaml", "command: x\nnotify:\n  on: [failed]\n  url: http://h/x\n"))
    assert spec.notify.on == ["failed"] and spec.notify.url == "http://h/x"


def test_records_params(tmp_path):
    spec = load_spec(write(tmp_path, "jobs/r.yaml", "command: run {a} {b}\nparams: [{a: 1, b: x}, {a: 2, b: y}]\n"))
    assert spec.params == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_double_braces_are_literal(tmp_path):
    spec = load_spec(write(tmp_path, "jobs/a.yaml", "command: \"awk '{{print $1}}' {f}\"\nparams: {f: [x]}\n"))
    assert spec.command == "awk '{{print $1}}' {f}"


def test_python_built_spec_is_validated():
    spec = JobSpec(name="py", command="echo {x}", params={"x": [1, 2]})
    assert validate(spec) is spec
    with pytest.raises(InvalidSpec, match=r"spec 'py': field 'command': unknown template field '\{y\}'"):
        validate(JobSpec(name="py", command="echo {y}"))


def test_from_dict_accepts_yaml_shapes():
    spec = from_dict({"name": "d", "command": "true", "resources": {"memory": "1.5G"}})
    assert spec.resources.memory_mb == 1536


def test_find_spec(ws):
    write(ws.root, "jobs/align.yaml", "command: echo a\n")
    write(ws.root, "jobs/other-file.yaml", "name: renamed\ncommand: echo r\n")
    assert find_spec(ws, "align", cwd=ws.root).name == "align"
    assert find_spec(ws, "renamed", cwd=ws.root).path == "jobs/other-file.yaml"
    assert find_spec(ws, "jobs/align.yaml", cwd=ws.root).path == "jobs/align.yaml"
    sub = ws.root / "jobs"
    assert find_spec(ws, "align.yaml", cwd=sub).name == "align"
    with pytest.raises(SpecNotFound) as info:
        find_spec(ws, "nothere", cwd=ws.root)
    assert info.value.exit_code == 4 and "nothere" in str(info.value)
    with pytest.raises(SpecNotFound):
        find_spec(ws, "jobs/missing.yaml", cwd=ws.root)


from hypothesis import given, strategies as st  # noqa: E402


@given(h=st.integers(0, 99), m=st.integers(0, 59), s=st.integers(0, 59))
def test_duration_forms_agree(h, m, s):
    total = h * 3600 + m * 60 + s
    assert parse_duration(f"{h:02d}:{m:02d}:{s:02d}") == total
    assert parse_duration(f"{h}h{m}m{s}s") == total
    assert parse_duration(total) == total


@given(n=st.integers(1, 10**6), unit=st.sampled_from(["M", "MB", "G", "GB", "GiB", "T"]))
def test_memory_scales_by_unit(n, unit):
    factor = {"M": 1, "G": 1024, "T": 1024 * 1024}[unit[0]]
    assert parse_memory(f"{n}{unit}") == n * factor
