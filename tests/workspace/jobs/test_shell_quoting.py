"""Parameter values reach ``/bin/sh -c`` shell-quoted; ``{name:raw}`` is the explicit way to pass shell syntax.

A value such as ``a; touch X`` or ``$(...)`` used to run as shell code. Paths
(``inputs``, ``outputs``, ``workdir``) and ``env`` values are not shell and are
never quoted. Keys change only for jobs whose rendered command changes, so
incremental re-runs of existing specs keep skipping what already succeeded.
"""

from __future__ import annotations

import shlex

import pytest

from tests.conftest import write
from workspace.jobs.expand import expand
from workspace.jobs.fields import from_dict
from workspace.jobs.spec import InvalidSpec, JobSpec, validate

NASTY = ["a; touch INJECTED", "$(touch SUBST)", "`touch BACKTICK`", "x' ; touch QUOTE; '", "a b  c", "",
         "-n", "*", "\\$HOME", "line\nbreak"]


def test_parameter_values_run_as_data_not_as_shell_code(ws, run_ws):
    records = "\n".join(f"  - {{i: {i}, v: {_yaml(v)}}}" for i, v in enumerate(NASTY))
    write(ws.root, "jobs/inject.yaml", "command: printf '%s' {v} > out/{i}.txt\noutputs: ['out/{i}.txt']\n"
          f"params:\n{records}\n")
    (ws.root / "out").mkdir()
    proc = run_ws(ws.root, "run", "inject", "--wait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("INJECTED", "SUBST", "BACKTICK", "QUOTE"):
        assert not (ws.root / name).exists(), f"{name}: a parameter value ran as shell code"
    for i, v in enumerate(NASTY):
        assert (ws.root / "out" / f"{i}.txt").read_text() == v


def test_the_raw_form_passes_shell_syntax_on_purpose(ws, run_ws):
    write(ws.root, "jobs/raw.yaml", "command: echo hello {filter:raw} > {name}.txt\noutputs: ['{name}.txt']\n"
          "params: {filter: ['| tr a-z A-Z'], name: [shout]}\n")
    proc = run_ws(ws.root, "run", "raw", "--wait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (ws.root / "shout.txt").read_text() == "HELLO\n"


def test_paths_and_env_are_filled_as_is(ws):
    write(ws.root, "data/a b/in.txt", "x")
    spec = from_dict({"name": "p", "command": "cp {d}/in.txt {out}", "inputs": ["data/{d}/"],
                      "outputs": ["out/{d}/{out}"], "workdir": "{w}", "env": {"WHAT": "{d}; {out}"},
                      "params": {"d": ["a b"], "out": ["it's.txt"], "w": ["data"]}})
    (job,) = expand(ws, [validate(spec)])
    assert job.command == "cp 'a b'/in.txt 'it'\"'\"'s.txt'"
    assert job.inputs == ["data/a b/"] and job.outputs == ["out/a b/it's.txt"]
    assert job.workdir == "data" and job.env == {"WHAT": "a b; it's.txt"}
    assert list(job.input_ids) == ["data/a b/in.txt"]


def test_format_specs_still_apply_before_quoting(ws):
    spec = validate(JobSpec(name="f", command="run --k {k:03d} --x {x!r} --w {w:>4}",
                            params={"k": [7], "x": ["a"], "w": ["b c"]}))
    (job,) = expand(ws, [spec])
    assert job.command.startswith("run --k 007 --x ")
    assert shlex.split(job.command) == ["run", "--k", "007", "--x", "'a'", "--w", " b c"]


@pytest.mark.parametrize("field, template", [("outputs", ["out/{v:raw}"]), ("inputs", ["{v:raw}"]),
                                             ("workdir", "{v:raw}"), ("env", {"X": "{v:raw}"})])
def test_the_raw_form_is_for_the_command_only(field, template):
    with pytest.raises(InvalidSpec) as info:
        validate(from_dict({"name": "r", "command": "x", field: template, "params": {"v": ["a"]}}))
    assert "':raw'" in str(info.value) and "'command'" in str(info.value)
    assert (field + ("[0]" if isinstance(template, list) else ".X" if field == "env" else "")) in str(info.value)


def test_the_raw_form_cannot_be_combined_with_a_format_spec():
    with pytest.raises(InvalidSpec, match="'raw'"):
        validate(JobSpec(name="r", command="x {v:>5raw}", params={"v": ["a"]}))


# Keys computed by ws before values were quoted (commit a1afd06): a spec whose rendered command does not
# change keeps its key, so its jobs that succeeded are still SKIPPED on the next run.
BEFORE = {
    ("train", None): "fad60962adfc24ccbe89773a711c0472e33ee3964060175ea905da79fe6c51e5",
    ("sweep", (0.1, 1)): "da04f2bf483e46683a32324688cce8c628c2d2a5038392d647c367e1036e839e",
    ("sweep", (0.01, 1)): "5c3d9a81f452ed0e93cb7a31f14c57742ca88c3b296dd747d1ae09db3f2c5e1c",
    ("names", "a b"): "21cc992e7079f4694f9804227f68e48ea7eb2991756ccaf6e8170db2a9bfcf16",
    ("names", "plain"): "21fee825ab321906560ed6ff0c687580dd1c8c1f937011b18b98f89c6f28af08",
}


def test_keys_change_only_where_the_rendered_command_changes(ws):
    train = JobSpec(name="train", command="python train.py --lr 0.1 > out/model.txt", outputs=["out/"])
    sweep = JobSpec(name="sweep", command="python train.py --lr {lr} --k {k:03d}",
                    params={"lr": [0.1, 0.01], "k": [1]}, outputs=["out/{lr}/"])
    names = JobSpec(name="names", command="echo {v}", params={"v": ["a b", "plain"]})
    keys = {(j.spec_name, tuple(j.params.values()) if j.spec_name == "sweep" else j.params.get("v")): j.key
            for j in expand(ws, [validate(train), validate(sweep), validate(names)])}
    assert keys[("train", None)] == BEFORE[("train", None)]
    assert keys[("sweep", (0.1, 1))] == BEFORE[("sweep", (0.1, 1))]
    assert keys[("sweep", (0.01, 1))] == BEFORE[("sweep", (0.01, 1))]
    assert keys[("names", "plain")] == BEFORE[("names", "plain")]  # 'echo plain' either way
    assert keys[("names", "a b")] != BEFORE[("names", "a b")]  # was 'echo a b', now "echo 'a b'"
    raw = JobSpec(name="names", command="echo {v:raw}", params={"v": ["a b"]})
    (raw_job,) = expand(ws, [validate(raw)])
    assert raw_job.command == "echo a b" and raw_job.key not in (keys[("names", "a b")], BEFORE[("names", "a b")])


def test_a_job_that_succeeded_is_skipped_again_only_when_its_command_is_unchanged(ws, run_ws):
    write(ws.root, "jobs/s.yaml", "command: printf '%s' {v} > out/{i}.txt\noutputs: ['out/{i}.txt']\n"
          "params: [{i: 1, v: plain}, {i: 2, v: 'two words'}]\n")
    (ws.root / "out").mkdir()
    assert run_ws(ws.root, "run", "s", "--wait").returncode == 0
    again = run_ws(ws.root, "run", "s", "--wait", "--json")
    assert again.returncode == 0 and again.stdout.count('"SKIPPED"') == 2


def _yaml(value: str) -> str:
    import json

    return json.dumps(value)  # JSON strings are YAML strings
