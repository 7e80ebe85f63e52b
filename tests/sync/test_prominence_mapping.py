"""SubmitRequest -> PROMINENCE job and workflow descriptions, refusals, and PROMINENCE states -> ours.

Every description the mapping produces is also checked against the schema the
test server uses (written from PROMINENCE's documents), so a field that the
service would refuse fails here first.
"""

from __future__ import annotations

import io
import shlex
import tarfile

import pytest

from sync.compute import registry
from sync.compute.base import (CANCELLED, FAILED, OUT_OF_MEMORY, QUEUED, RUNNING, SUCCEEDED, SubmitRequest,
                               UnsatisfiableRequest)
from sync.compute.prominence_jobs import Defaults, job_json, to_ns, to_status
from sync.compute.prominence_outputs import place_dir
from sync.compute.prominence_sweep import all_members, member_of_workflow, plan_workflow
from sync.errors import UnsafeRemotePath
from tests.sync.prominence_schema import validate_job, validate_workflow

ROOT = "/work/proj"
D = Defaults(image="python:3.12-slim", workspace_root=ROOT)


def req(job_id="3f2a9c1b0d4e", **kw) -> SubmitRequest:
    base = dict(job_id=job_id, name="align", command="python align.py", workdir=ROOT,
                log_dir=f"{ROOT}/.ws/jobs/{job_id}")
    base.update(kw)
    return SubmitRequest(**base)


def described(request: SubmitRequest, d: Defaults = D) -> dict:
    out = job_json(request, d)
    validate_job(out)
    return out


def test_resources_in_prominence_units_rounded_up():
    res = described(req(cpus=4, memory_mb=4096, walltime_s=1800, disk_mb=20 * 1024, nodes=2))["resources"]
    assert res == {"nodes": 2, "cpus": 4, "memory": 4, "disk": 20, "walltime": 30}
    res = described(req(memory_mb=1500, walltime_s=61, disk_mb=1))["resources"]
    assert res["memory"] == 2 and res["walltime"] == 2 and res["disk"] == 1  # never less than asked
    res = described(req())["resources"]
    assert res == {"nodes": 1, "cpus": 1, "memory": 1}  # memory is required: the client's default, 1 GB
    res = described(req(), Defaults(image="x", disk_gb=10, walltime_min=720, workspace_root=ROOT))["resources"]
    assert res["disk"] == 10 and res["walltime"] == 720


def test_task_runs_the_shell_command_in_the_container():
    job = described(req(command="echo 'a b' | wc -w; exit 3", env={"K": "v"}, workdir=f"{ROOT}/src/x",
                        image="busybox:1.36", runtime="docker", attempt=2))
    task = job["tasks"][0]
    assert shlex.split(task["cmd"]) == ["/bin/sh", "-c", "echo 'a b' | wc -w; exit 3"]
    assert task["image"] == "busybox:1.36" and task["runtime"] == "udocker"
    assert task["env"] == {"K": "v", "WS_JOB_ID": "3f2a9c1b0d4e", "WS_JOB_ATTEMPT": "2"}
    assert task["workdir"] == "src/x"  # relative: below the job's home, which stands for the workspace root
    assert "workdir" not in described(req())["tasks"][0]
    assert described(req(image=None))["tasks"][0] == {**described(req())["tasks"][0], "image": "python:3.12-slim"}
    assert described(req())["tasks"][0]["runtime"] == "singularity"


def test_labels_outputs_artifacts_policies_notifications():
    job = described(req(labels={"experiment": "MASTU"}, output_files=["out/a.txt"], output_dirs=["out/b/"],
                        artifacts=["https://example.org/ref.tgz"], retries=2, priority=5, max_queue_s=7200,
                        notifications=["finished"], attempt=3))
    assert job["labels"] == {"experiment": "MASTU", "wsjob": "3f2a9c1b0d4e", "wsattempt": "3"}
    assert job["outputFiles"] == ["out/a.txt"] and job["outputDirs"] == ["out/b"]
    assert job["artifacts"] == [{"url": "https://example.org/ref.tgz"}]
    assert job["policies"] == {"maximumRetries": 2, "priority": 5, "maximumTimeInQueue": 120}
    assert job["notifications"] == [{"event": "jobFinished", "type": "email"}]
    leave = job_json(req(), Defaults(image="x", leave_in_queue=True, workspace_root=ROOT))
    assert leave["policies"] == {"leaveInQueue": True}
    assert "policies" not in described(req())


REFUSED = {
    "resources.gpus": dict(gpus=1),
    "container.image": dict(image=None),
    "container.runtime": dict(runtime="podman"),
    "labels": dict(labels={"wsjob": "x"}),
    "labels ": dict(labels={"my-key": "x"}),
    "labels  ": dict(labels={"k": "has space"}),
    "artifacts": dict(artifacts=["s3://bucket/key"]),
    "outputs": dict(output_files=["../escape"]),
    "outputs ": dict(output_dirs=["/abs/dir"]),
    "workdir": dict(workdir="/elsewhere"),
    "retries": dict(retries=6),
    "policies.priority": dict(priority=-1),
    "policies.max_queue": dict(max_queue_s=32 * 86400),
    "notify.on": dict(notifications=["failed"]),
}


@pytest.mark.parametrize("field", sorted(REFUSED))
def test_what_prominence_cannot_honour_is_refused_with_exit_9(field):
    backend = registry.get("prominence", url="http://127.0.0.1:9", token="t", workspace_root=ROOT)
    with pytest.raises(UnsatisfiableRequest) as info:
        backend.check_request(req(**{"image": "busybox", **REFUSED[field]}))
    assert info.value.exit_code == 9 and info.value.field == field.strip()
    assert "\n" not in str(info.value)
    assert backend.api.requests_made == 0


def test_check_resources_refuses_gpus_for_spec_validation():
    backend = registry.get("prominence")
    with pytest.raises(UnsatisfiableRequest) as info:
        backend.check_resources(cpus=2, memory_mb=1024, gpus=1)
    assert info.value.resource == "gpus" and info.value.field == "resources.gpus"
    backend.check_resources(cpus=2, memory_mb=1024, gpus=0)


def test_the_default_check_request_refuses_what_local_cannot_honour(tmp_path):
    local = registry.get("local", root=tmp_path)
    local.check_request(req(labels={"a": "b"}, output_files=["x"]))
    local.check_request(req(artifacts=["https://x/y"]))  # fetched into the workdir (sync/compute/artifacts.py)
    for kw, name in [(dict(nodes=2), "resources.nodes"), (dict(image="busybox"), "container.image"),
                     (dict(retries=1), "retries")]:
        with pytest.raises(UnsatisfiableRequest) as info:
            local.check_request(req(**kw))
        assert info.value.field == name and info.value.exit_code == 9


@pytest.mark.parametrize("job, state, code, reason", [
    ({"status": "pending"}, QUEUED, None, "pending"),
    ({"status": "idle"}, QUEUED, None, "idle"),
    ({"status": "waiting", "statusReason": "No matching resources currently available"}, QUEUED, None,
     "waiting: No matching resources currently available"),
    ({"status": "deploying"}, QUEUED, None, "deploying"),
    ({"status": "running", "events": {"startTime": 1700000000}}, RUNNING, None, None),
    ({"status": "completed", "execution": {"tasks": [{"exitCode": 0}]}}, SUCCEEDED, 0, None),
    ({"status": "completed", "execution": {"tasks": [{"exitCode": 0}, {"exitCode": 2}]}}, FAILED, 2, "exit code 2"),
    ({"status": "failed", "statusReason": "Container image pull failed"}, FAILED, None, "Container image pull failed"),
    ({"status": "failed", "execution": {"tasks": [{"exitCode": 1}]}}, FAILED, 1, "exit code 1"),
    ({"status": "killed", "statusReason": "Job used too much memory"}, OUT_OF_MEMORY, None,
     "out of memory: Job used too much memory"),
    ({"status": "killed", "statusReason": "Walltime limit exceeded"}, FAILED, None,
     "timed out: Walltime limit exceeded"),
    ({"status": "deleted", "statusReason": "Job deleted by user"}, CANCELLED, None, "Job deleted by user"),
    ({"status": "frozen"}, QUEUED, None, "PROMINENCE status 'frozen'"),
])
def test_states_map_onto_ours_with_reasons(job, state, code, reason):
    st = to_status(job)
    assert (st.state, st.exit_code, st.reason) == (state, code, reason)


def test_event_times_in_either_documented_form():
    assert to_ns(1700000000) == 1700000000 * 10**9
    assert to_ns("2022-04-28 20:04:06") == to_ns("2022-04-28T20:04:06Z") == 1651176246 * 10**9
    assert to_ns(None) is None and to_ns("garbage") is None
    st = to_status({"status": "completed", "events": {"startTime": 20, "endTime": 10}})
    assert st.finished_ns >= st.started_ns


# -- sweeps and workflows ---------------------------------------------------------
def sweep(values, **kw) -> list[SubmitRequest]:
    out = []
    for i, (sample, k) in enumerate(values):
        out.append(req(job_id=f"00000000000{i}", command=f"python align.py --sample {sample} --k {k}",
                       params={"sample": sample, "k": k}, output_files=[f"out/{sample}/{k}.txt"],
                       env={"SAMPLE": sample}, **kw))
    return out


def single(r, name):
    return job_json(r, D, name)


def test_a_sweep_is_one_template_and_a_zip_factory_reproducing_each_member():
    members = sweep([("a", 1), ("b", 1), ("a", 2), ("b", 12)])
    plan = plan_workflow(members, single, "ws-align")
    validate_workflow(plan.workflow)
    (template,) = plan.workflow["jobs"]
    assert shlex.split(template["tasks"][0]["cmd"]) == [
        "/bin/sh", "-c", "export SAMPLE=${sample}; export WS_JOB_ID=${wsjob}; python align.py --sample ${sample} "
                         "--k ${k}"]
    assert template["tasks"][0]["env"] == {"WS_JOB_ATTEMPT": "1"}  # what all members share stays in env
    assert template["outputFiles"] == ["out/${sample}/${k}.txt"] and "labels" not in template
    (factory,) = plan.workflow["factories"]
    params = {p["name"]: p["values"] for p in factory["parameters"]}
    assert params["sample"] == ["a", "b", "a", "b"] and params["k"] == ["1", "1", "2", "12"]
    assert params["wsjob"] == [m.job_id for m in members] and params["wsattempt"] == ["1"] * 4
    assert plan.members == [f"{template['name']}/{i}" for i in range(4)]
    assert member_of_workflow(plan.workflow, members[2].job_id, 1) == plan.members[2]
    assert member_of_workflow(plan.workflow, members[2].job_id, 2) is None
    assert all_members(plan.workflow) == plan.members


@pytest.mark.parametrize("why, members", [
    ("a member asks for other resources", sweep([("a", 1), ("b", 1)])[:1] + [
        req(job_id="000000000001", command="python align.py --sample b --k 1", cpus=4,
            params={"sample": "b", "k": 1}, output_files=["out/b/1.txt"], env={"SAMPLE": "b"})]),
    ("a value needs shell quoting", sweep([("a b", 1), ("c", 1)])),
    ("a difference no parameter explains", [req(job_id="000000000000", command="run x", params={"p": 1}),
                                            req(job_id="000000000001", command="run y", params={"p": 2})]),
    ("a parameter named like ws's own", [req(job_id="000000000000", params={"wsjob": 1}),
                                          req(job_id="000000000001", params={"wsjob": 2})]),
    ("artifacts that differ", [req(job_id="000000000000", artifacts=["https://x.org/a.csv"], params={"s": "a"}),
                               req(job_id="000000000001", artifacts=["https://x.org/b.csv"], params={"s": "b"})]),
    ("images that differ", [req(job_id="000000000000", image="img:a", params={"s": "a"}),
                            req(job_id="000000000001", image="img:b", params={"s": "b"})]),
    ("a literal $name PROMINENCE would substitute", [
        req(job_id="000000000000", command="echo $k 1", params={"k": 1}),
        req(job_id="000000000001", command="echo $k 2", params={"k": 2})]),
])
def test_members_that_differ_otherwise_fall_back_to_single_jobs(why, members):
    assert plan_workflow(members, single, "ws-x") is None, why


def test_depends_on_becomes_workflow_dependencies():
    members = sweep([("a", 1), ("b", 1)])
    report = req(job_id="00000000000r", name="report", command="python report.py",
                 depends_on=[m.job_id for m in members] + ["0000000000zz"])  # the last ran before: not in the batch
    plan = plan_workflow(members + [report], single, "ws-dag")
    validate_workflow(plan.workflow)
    template = plan.workflow["jobs"][1]["name"]
    assert plan.workflow["dependencies"] == {template: ["report-00000000000r"]}
    assert plan.members[2] == "report-00000000000r"
    assert member_of_workflow(plan.workflow, report.job_id, 1) == "report-00000000000r"


def test_a_member_needing_only_part_of_a_sweep_dissolves_the_factory():
    members = sweep([("a", 1), ("b", 1)])
    picky = req(job_id="00000000000p", name="pick", depends_on=[members[0].job_id])
    plan = plan_workflow(members + [picky], single, "ws-dag")
    validate_workflow(plan.workflow)
    assert "factories" not in plan.workflow
    assert plan.workflow["dependencies"] == {"align-000000000000": ["pick-00000000000p"]}


def test_independent_singles_make_no_workflow():
    assert plan_workflow([req(job_id="000000000000"), req(job_id="000000000001", name="other")],
                         single, "ws-x") is None


# -- unpacking output folders ---------------------------------------------------------
def _tgz(tmp_path, entries) -> str:
    path = tmp_path / "dir.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, kind in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(kind)
                tar.addfile(info, io.BytesIO(kind))
    return str(path)


def _copy(src):
    import shutil

    return lambda url, dest: shutil.copyfile(src, dest)


def test_output_folders_unpack_below_their_path_only(tmp_path):
    dest = tmp_path / "ws"
    dest.mkdir()
    good = _tgz(tmp_path, [("out/b", "dir"), ("out/b/x.txt", b"x"), ("out/b/sub/y.txt", b"y")])
    assert place_dir(_copy(good), "u", str(dest), "out/b", str(tmp_path / "scratch")) == ["out/b/x.txt",
                                                                                         "out/b/sub/y.txt"]
    assert (dest / "out/b/sub/y.txt").read_bytes() == b"y"
    for entries in ([("out/b/../../evil", b"!")], [("etc/passwd", b"!")], [("out/b/l", "link")]):
        with pytest.raises(UnsafeRemotePath):
            place_dir(_copy(_tgz(tmp_path, entries)), "u", str(dest), "out/b", str(tmp_path / "scratch"))
    assert not (tmp_path / "evil").exists() and not (dest / "etc").exists()
