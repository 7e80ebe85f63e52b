"""The Slurm backend's pure parts, without a cluster: states, reasons, exit codes, ids, scripts, options.

What Slurm prints is copied from the real commands (squeue 22.05, the
jobcomp/filetxt record); the tests against the running cluster are in
test_slurm_backend.py and test_slurm_workspace.py.
"""

from __future__ import annotations

import os

import pytest

from sync.compute import slurm_query as sq
from sync.compute import slurm_script as ss
from sync.compute.base import (CANCELLED, FAILED, LOST, OUT_OF_MEMORY, QUEUED, RUNNING, SUCCEEDED,
                               BackendUnavailable, InvalidBackendOption, SubmitRequest, UnsatisfiableRequest)
from sync.compute.slurm import SlurmBackend
from sync.compute.slurm_states import (STATES, exit_from_pair, exit_from_wait_status, parse_time, pending_reason,
                                       to_status)
from sync.errors import BackendError

FINAL = {
    "COMPLETED": (SUCCEEDED, None),
    "FAILED": (FAILED, "exit code 3"),
    "CANCELLED": (CANCELLED, "cancelled"),
    "TIMEOUT": (FAILED, "TIMEOUT"),
    "OUT_OF_MEMORY": (OUT_OF_MEMORY, "OUT_OF_MEMORY"),
    "NODE_FAIL": (FAILED, "NODE_FAIL"),
    "PREEMPTED": (FAILED, "PREEMPTED"),
    "BOOT_FAIL": (FAILED, "BOOT_FAIL"),
    "DEADLINE": (FAILED, "DEADLINE"),
}


@pytest.mark.parametrize("slurm_state", sorted(FINAL))
def test_every_final_slurm_state_maps_with_a_reason(slurm_state):
    ours, words = FINAL[slurm_state]
    st = to_status(slurm_state, "None", 3 if slurm_state == "FAILED" else 0, None, 10**18, 2 * 10**18)
    assert st.state == ours and st.final
    if words:
        assert words in st.reason
    else:
        assert st.exit_code == 0 and st.reason is None


def test_live_states_are_not_final_and_pending_carries_the_reason():
    assert to_status("RUNNING", "None", started_ns=5).state == RUNNING
    assert to_status("COMPLETING").state == RUNNING  # processes still being cleaned up: the end is not known
    assert to_status("SUSPENDED").reason == "suspended"
    st = to_status("PENDING", "Resources")
    assert st.state == QUEUED and st.reason == "pending: Resources (waiting for resources (cpus, memory, gpus) to " \
                                                "become free)"
    assert "Priority" in to_status("PENDING", "Priority").reason
    assert "QOS limit" in to_status("PENDING", "QOSMaxJobsPerUserLimit").reason
    assert "account" in to_status("PENDING", "AssocGrpCpuLimit").reason
    assert to_status("PENDING", "SomethingNew").reason == "pending: SomethingNew"
    assert to_status("PENDING", "None").reason is None
    assert to_status("REQUEUED").state == QUEUED
    assert to_status("REVOKED").state == LOST


def test_every_slurm_state_is_known_and_an_unknown_one_keeps_polling():
    for name in ("PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT",
                 "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY", "CONFIGURING", "REQUEUED",
                 "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "RESV_DEL_HOLD", "REVOKED", "SIGNALING", "SPECIAL_EXIT",
                 "STAGE_OUT", "STOPPED"):
        assert name in STATES
    st = to_status("BRAND_NEW")
    assert not st.final and "BRAND_NEW" in st.reason
    assert to_status("CANCELLED by 1000").state == CANCELLED  # sacct's wording


def test_exit_codes_from_squeue_and_sacct():
    assert exit_from_wait_status("768") == (3, None)  # squeue: a raw wait status
    assert exit_from_wait_status("15") == (None, 15)
    assert exit_from_pair("3:0") == (3, None)  # sacct and jobcomp: CODE:SIGNAL
    assert exit_from_pair("0:9") == (None, 9)
    killed = to_status("CANCELLED", None, None, 15)
    assert killed.exit_code == 143
    failed = to_status("FAILED", "NonZeroExitCode", None, 9)
    assert failed.exit_code == 137 and "SIGKILL" in failed.reason
    launch = to_status("FAILED", "JobLaunchFailure", 1, None)
    assert launch.reason == "exit code 1 (Slurm: JobLaunchFailure)"
    assert to_status("OUT_OF_MEMORY", "OutOfMemory", None, 125).exit_code is None  # Slurm's pseudo-signal
    assert "of 1:00" in to_status("TIMEOUT", "TimeLimit", None, 15, time_limit="1:00").reason


def test_times():
    assert parse_time("N/A") is None and parse_time("Unknown") is None and parse_time("NONE") is None
    assert parse_time("2026-01-02T03:04:05") % 1_000_000_000 == 0
    st = to_status("COMPLETED", None, 0, None, parse_time("2026-01-02T03:04:05"), parse_time("2026-01-02T03:04:01"))
    assert st.finished_ns >= st.started_ns


def test_pending_reason_text():
    assert pending_reason("(Resources)").startswith("pending: Resources")
    assert pending_reason("") is None


def test_ids_fold_into_ranges_and_back():
    assert sq.compress_ids(["7", "12_0", "12_1", "12_2", "12_5", "9_3"]) == ["7", "12_[0-2,5]", "9_[3]"]
    assert sq.expand_ids("12_[0-2,5]") == ["12_0", "12_1", "12_2", "12_5"]
    assert sq.expand_ids("12_[0-3%2]") == ["12_0", "12_1", "12_2", "12_3"]
    assert sq.expand_ids("12_4") == ["12_4"] and sq.expand_ids("12") == ["12"]


def test_parsers_read_what_slurm_prints():
    rows = sq.parse_squeue("3_0|3|0|COMPLETED|None|0|2026-12-02T14:50:00|2026-12-02T14:50:00|UNLIMITED|\n"
                           "1|1|N/A|TIMEOUT|TimeLimit|15|2026-12-02T14:49:47|2026-12-02T14:51:14|1:00|\n")
    assert [r["key"] for r in rows] == ["3_0", "1"] and rows[1]["Reason"] == "TimeLimit"
    line = ("JobId=4 UserId=root(0) GroupId=root(0) Name=ws-t-ab JobState=OUT_OF_MEMORY Partition=debug "
            "TimeLimit=UNLIMITED StartTime=2026-12-02T14:49:26 EndTime=2026-12-02T14:49:27 NodeList=localhost "
            "WorkDir=/tmp/with space ReservationName= Tres=cpu=1,mem=50M ArrayJobId=3 ArrayTaskId=2 ExitCode=0:125 ")
    rec = sq.parse_key_values(line)
    assert rec["JobState"] == "OUT_OF_MEMORY" and rec["WorkDir"] == "/tmp/with space" and rec["ReservationName"] == ""
    assert rec["Tres"] == "cpu=1,mem=50M" and sq.jobcomp_key(rec) == "3_2"
    sacct = sq.parse_sacct("12_[3-4]|CANCELLED by 0|0:0|None|2026-01-01T00:00:00|UNLIMITED|None|ws-x\n"
                           "13|COMPLETED|0:0|2026-01-01T00:00:00|2026-01-01T00:00:01|00:10:00|None|ws-y\n")
    assert [r["key"] for r in sacct] == ["12_3", "12_4", "13"]


def test_jobcomp_reader_is_incremental_and_keeps_the_latest_record(tmp_path):
    path = tmp_path / "jobcomp.txt"
    path.write_text("JobId=5 Name=ws-a JobState=FAILED ExitCode=1:0\n")
    reader = sq.JobcompReader(str(path))
    assert reader.read()["5"]["JobState"] == "FAILED" and reader.by_name["ws-a"] == ("5", "")
    with open(path, "a") as f:
        f.write("JobId=5 Name=ws-a JobState=COMPLETED ExitCode=0:0\nJobId=6 Name=ws-b JobSt")  # a line in progress
    records = reader.read()
    assert records["5"]["JobState"] == "COMPLETED" and "6" not in records


def _req(tmp_path, job_id="j1", **kw) -> SubmitRequest:
    return SubmitRequest(job_id=job_id, name="align", command="python run.py --k '1 2'", workdir=str(tmp_path),
                         log_dir=str(tmp_path / ".ws" / "jobs" / job_id), **kw)


def test_a_spec_maps_onto_sbatch_lines(tmp_path):
    req = _req(tmp_path, cpus=4, memory_mb=1536, walltime_s=90, gpus=2, attempt=3, env={"OMP": "4 threads"})
    settings = ss.SlurmSettings(partition="gpu", account="proj1", qos="high", sbatch_options=["--constraint=a100",
                                "#SBATCH --exclusive"], setup=["module load python/3.11"])
    batch = ss.plan_batch([req])
    ss.write_batch(batch, settings)
    script = open(batch.script).read()
    log_dir = os.path.abspath(req.log_dir)
    for line in ("#SBATCH --job-name=ws-j1-3", f"#SBATCH --output={log_dir}/stdout", f"#SBATCH --error={log_dir}/stderr",
                 "#SBATCH --open-mode=append", f"#SBATCH --chdir={tmp_path}", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --mem=1536M", "#SBATCH --time=2", "#SBATCH --gres=gpu:2", "#SBATCH --partition=gpu",
                 "#SBATCH --account=proj1", "#SBATCH --qos=high", "#SBATCH --constraint=a100", "#SBATCH --exclusive",
                 "module load python/3.11"):
        assert line + "\n" in script
    run = open(os.path.join(log_dir, ss.RUN_SCRIPT)).read()
    assert "export OMP='4 threads'" in run and "export WS_JOB_ATTEMPT=3" in run
    assert "exec /bin/sh -c 'python run.py --k '\"'\"'1 2'\"'\"''" in run
    assert ss.read_submit_record(log_dir) == {"attempt": 3, "name": "ws-j1-3", "batch": log_dir, "index": None}


def test_a_group_becomes_an_array_with_its_throttle(tmp_path):
    reqs = [_req(tmp_path, f"j{i}") for i in range(3)]
    assert len({ss.group_key(r) for r in reqs}) == 1
    batch = ss.plan_batch(reqs)
    ss.write_batch(batch, ss.SlurmSettings(array_throttle=2))
    script = open(batch.script).read()
    assert "#SBATCH --array=0-2%2\n" in script and "/dirs/%a/stdout" in script
    assert batch.ids("41") == ["41_0", "41_1", "41_2"]
    for i, r in enumerate(reqs):
        assert os.path.realpath(os.path.join(batch.folder, "dirs", str(i))) == os.path.realpath(r.log_dir)
        assert ss.read_submit_record(r.log_dir)["index"] == i
    assert ss.group_key(_req(tmp_path, memory_mb=10)) != ss.group_key(reqs[0])


def test_paths_with_blanks_and_percent_signs_are_quoted(tmp_path):
    where = tmp_path / "my data%1"
    req = SubmitRequest(job_id="j", name="n", command="true", workdir=str(where), log_dir=str(where / "log"))
    batch = ss.plan_batch([req])
    ss.write_batch(batch, ss.SlurmSettings())
    script = open(batch.script).read()
    assert f'--output="{where}/log/stdout"'.replace("%", "%%") in script  # %% is a literal % for sbatch
    assert f'--chdir="{where}"' in script


def test_options_are_checked_when_the_backend_is_built_and_nothing_is_contacted(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no Slurm command could run
    b = SlurmBackend(partition="debug", sbatch_options="--constraint=x\n--exclusive", setup=["module load a"],
                     array_throttle="5", poll_interval_s="2.5")
    assert b.settings.sbatch_options == ["--constraint=x", "--exclusive"] and b.settings.array_throttle == 5
    assert b.poll_interval_s == 2.5
    with pytest.raises(InvalidBackendOption) as info:
        SlurmBackend(array_throttle="many")
    assert info.value.exit_code == 9 and "array_throttle" in str(info.value)
    with pytest.raises(InvalidBackendOption):
        SlurmBackend(poll_interval_s=-1)


def test_missing_slurm_commands_are_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no squeue here
    b = SlurmBackend()
    results = b.submit_many([_req(tmp_path)])
    assert isinstance(results[0], BackendError) and not isinstance(results[0], BackendUnavailable)
    assert str(results[0]).startswith("sbatch not found on PATH") and "\n" not in str(results[0])
    with pytest.raises(BackendError, match="squeue not found on PATH"):
        b.status(["12"])


def test_nodes_and_disk_map_onto_sbatch_and_a_container_is_refused(tmp_path, monkeypatch):
    req = _req(tmp_path, nodes=2, disk_mb=2048)
    assert "--nodes=2" in ss.resource_options(req) and "--tmp=2048M" in ss.resource_options(req)
    assert ss.group_key(req) != ss.group_key(_req(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")  # refused before any command would run
    backend = SlurmBackend()
    backend.check_request(req)
    refused = backend.submit_many([_req(tmp_path, image="python:3.11")])[0]
    assert isinstance(refused, UnsatisfiableRequest) and refused.field == "container.image"
