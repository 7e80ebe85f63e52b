"""The PROMINENCE test server is no rubber stamp: it refuses what the REST API specification refuses.

These requests are made with plain ``requests``, not with ws's backend, so
they check the server (and the schema written from PROMINENCE's documents)
on their own.
"""

from __future__ import annotations

import base64
import copy

import pytest
import requests

from tests.sync.prominence_server import running


def job(**changes) -> dict:
    """A valid job description, like the one in PROMINENCE's "Job description files" page, changed."""
    desc = {"name": "test1", "resources": {"nodes": 1, "cpus": 4, "memory": 8, "disk": 20, "walltime": 60},
            "tasks": [{"image": "busybox", "runtime": "singularity", "cmd": "echo Hello"}]}
    for path, value in changes.items():
        node, *keys = path.split("__")
        target = desc
        for key in [node, *keys][:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        last = [node, *keys][-1]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return desc


DELETE = object()


def workflow(**changes) -> dict:
    """A valid workflow: a factory over a template and a job depending on it, changed."""
    desc = {"name": "ps-workflow",
            "jobs": [job(name="render", tasks__0__cmd="echo $frame"), job(name="combine")],
            "factories": [{"type": "zip", "name": "frames", "jobs": ["render"],
                           "parameters": [{"name": "frame", "values": [1, 2, 3]}]}],
            "dependencies": {"render": ["combine"]}}
    desc.update(changes)
    return desc


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running(tmp_path_factory.mktemp("prominence")) as srv:
        yield srv


def post(server, kind: str, body, token: str | None = None):
    headers = {"Authorization": f"Bearer {token or server.token}"}
    return requests.post(f"{server.url}/{kind}", json=body, headers=headers, timeout=10)


def test_documented_descriptions_are_accepted(server):
    assert post(server, "jobs", job()).status_code == 201
    extra = job(labels={"experiment": "MASTU", "env": "dev/1.2"}, outputFiles=["out/a.txt"], outputDirs=["out"],
                artifacts=[{"url": "https://example.org/data.tgz"}],
                inputs=[{"filename": "in.txt", "content": base64.b64encode(b"hi").decode()}],
                policies={"maximumRetries": 2, "maximumTimeInQueue": -1, "priority": 5, "leaveInQueue": True},
                notifications=[{"event": "jobFinished", "type": "email"}])
    extra["tasks"][0].update(env={"A": "1"}, workdir="src")
    assert post(server, "jobs", extra).status_code == 201
    assert post(server, "workflows", workflow()).status_code == 201
    sweep = workflow(factories=[{"type": "parameterSweep", "name": "s", "jobs": ["render"],
                                 "parameters": [{"name": "frame", "start": 1, "end": 4, "step": 1}]}])
    assert post(server, "workflows", sweep).status_code == 201


BAD_JOBS = {
    "no resources": job(resources=DELETE),
    "no tasks": job(tasks=DELETE),
    "empty tasks": job(tasks=[]),
    "unknown field": job(priority=3),
    "memory in MB as a float": job(resources__memory=7.5),
    "memory as a string": job(resources__memory="8GB"),
    "memory missing": job(resources__memory=DELETE),
    "cpus true": job(resources__cpus=True),
    "cpus and a cpus range": job(resources__cpusRange=[1, 2]),
    "walltime 0 minutes": job(resources__walltime=0),
    "disk 0 GB": job(resources__disk=0),
    "nodes 0": job(resources__nodes=0),
    "unknown resource": job(resources__gpus=1),
    "no image": job(tasks__0__image=DELETE),
    "no runtime": job(tasks__0__runtime=DELETE),
    "docker runtime": job(tasks__0__runtime="docker"),
    "workDir spelling": job(tasks__0__workDir="/data"),
    "cmd as a list": job(tasks__0__cmd=["echo", "hi"]),
    "env with a number": job(tasks__0__env={"N": 1}),
    "labels as name=value strings": job(labels=["experiment=MASTU"]),
    "label key with a dash": job(labels={"my-key": "x"}),
    "label value with a space": job(labels={"k": "a b"}),
    "label value of 64 characters": job(labels={"k": "x" * 64}),
    "artifacts as plain URLs": job(artifacts=["https://example.org/x"]),
    "input not base64": job(inputs=[{"filename": "a", "content": "not base64!"}]),
    "outputFiles not strings": job(outputFiles=[{"name": "a"}]),
    "six retries": job(policies={"maximumRetries": 6}),
    "zero retries": job(policies={"maximumRetries": 0}),
    "31 days and a minute in the queue": job(policies={"maximumTimeInQueue": 44641}),
    "negative priority": job(policies={"priority": -1}),
    "leaveInQueue as a string": job(policies={"leaveInQueue": "yes"}),
    "notification on start": job(notifications=[{"event": "jobStarted", "type": "email"}]),
    "notification without type": job(notifications=[{"event": "jobFinished"}]),
    "name with a quote": job(name="it's"),
}


@pytest.mark.parametrize("case", sorted(BAD_JOBS))
def test_malformed_jobs_are_refused_with_a_reason(server, case):
    resp = post(server, "jobs", BAD_JOBS[case])
    assert resp.status_code == 400, case
    assert resp.json()["error"]


def _without_dependencies():
    desc = workflow()
    del desc["dependencies"]
    return desc


BAD_WORKFLOWS = {
    "no jobs": {"name": "w", "jobs": []},
    "a job without a name": workflow(jobs=[job(name=DELETE)]),
    "two jobs with one name": workflow(jobs=[job(name="a"), job(name="a")], factories=[], dependencies={}),
    "dependency on an unknown child": workflow(dependencies={"render": ["nope"]}),
    "dependency from an unknown parent": workflow(dependencies={"nope": ["render"]}),
    "a cycle": workflow(dependencies={"render": ["combine"], "combine": ["render"]}),
    "factory of an unknown job": workflow(factories=[{"type": "repeat", "name": "r", "jobs": ["x"], "number": 2}]),
    "unknown factory type": workflow(factories=[{"type": "grid", "name": "g", "jobs": ["render"]}]),
    "zip lists of different lengths": workflow(factories=[
        {"type": "zip", "name": "z", "jobs": ["render"],
         "parameters": [{"name": "a", "values": [1, 2]}, {"name": "b", "values": [1]}]}]),
    "zip parameter named with a dash": workflow(factories=[
        {"type": "zip", "name": "z", "jobs": ["render"], "parameters": [{"name": "a-b", "values": [1]}]}]),
    "sweep with step and number": workflow(factories=[
        {"type": "parameterSweep", "name": "s", "jobs": ["render"],
         "parameters": [{"name": "x", "start": 1, "end": 2, "step": 1, "number": 2}]}]),
    "repeat 0 times": workflow(factories=[{"type": "repeat", "name": "r", "jobs": ["render"], "number": 0}]),
    "a malformed job inside": workflow(jobs=[job(name="render", resources__memory="1GB"), job(name="combine")]),
    "workflow notification on a job event": dict(_without_dependencies(),
                                                 notifications=[{"event": "jobFinished", "type": "email"}]),
    "eleven retries": dict(_without_dependencies(), policies={"maximumRetries": 11}),
}


@pytest.mark.parametrize("case", sorted(BAD_WORKFLOWS))
def test_malformed_workflows_are_refused_with_a_reason(server, case):
    resp = post(server, "workflows", copy.deepcopy(BAD_WORKFLOWS[case]))
    assert resp.status_code == 400, case
    assert resp.json()["error"]


def test_bad_or_missing_tokens_get_401(server):
    assert post(server, "jobs", job(), token="wrong").status_code == 401
    assert requests.get(f"{server.url}/jobs", timeout=10).status_code == 401
    assert requests.get(f"{server.url}/jobs", headers={"Authorization": server.token}, timeout=10).status_code == 401


def test_body_that_is_not_json_is_refused(server):
    resp = requests.post(f"{server.url}/jobs", data=b"{nope", timeout=10,
                         headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"})
    assert resp.status_code == 400


def test_output_urls_work_without_a_token_and_refuse_one(tmp_path):
    with running(tmp_path) as srv:
        jid = post(srv, "jobs", job(outputFiles=["result.txt"])).json()["id"]
        srv.advance(jid, "completed", exit_code=0, files={"result.txt": b"42"})
        auth = {"Authorization": f"Bearer {srv.token}"}
        listed = requests.get(f"{srv.url}/jobs/{jid}", headers=auth, timeout=10).json()[0]
        url = listed["outputFiles"][0]["url"]
        assert listed["outputFiles"][0]["name"] == "result.txt"
        assert requests.get(url, timeout=10).content == b"42"
        assert requests.get(url, headers=auth, timeout=10).status_code == 400  # presigned: no second credential
        assert requests.get(url.replace("temp_url_sig=", "temp_url_sig=0"), timeout=10).status_code == 401
