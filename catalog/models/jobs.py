"""Tables for jobs and workflows: what ran, where, with which inputs, and every state change.

JSON columns hold small structures (params, resources, policies, env, outputs,
dependency ids, recorded environment) as text; queries live in :mod:`catalog.jobs`.
Times are integer nanoseconds since the epoch.
"""

from typing import Optional

from sqlmodel import Field, SQLModel


class WorkflowRow(SQLModel, table=True):
    """One ``ws run``: the specs it expanded and the supervisor that drives it."""

    __tablename__ = "workflows"
    id: str = Field(primary_key=True)
    created_ns: int
    specs: str  # JSON list of spec names
    supervisor_pid: Optional[int] = None
    supervisor_host: Optional[str] = None
    state: str = Field(default="RUNNING", index=True)


class JobRow(SQLModel, table=True):
    """One expanded job and its current state (the history is in job_events)."""

    __tablename__ = "jobs"
    id: str = Field(primary_key=True)  # 12 hex digits
    workflow_id: str = Field(index=True)
    name: str = Field(index=True)
    key: str = Field(index=True)
    params: str = "{}"
    state: str = Field(index=True)
    backend: str
    backend_id: Optional[str] = None
    attempts: int = 0
    exit_code: Optional[int] = None
    priority: int = 0
    command: str
    spec_path: Optional[str] = None
    resources: str = "{}"
    policies: str = "{}"
    env: str = "{}"
    workdir: Optional[str] = None
    outputs: str = "[]"
    depends_on: str = "[]"  # JSON list of job ids
    input_commit: Optional[str] = None
    output_commit: Optional[str] = None
    log_dir: Optional[str] = None
    environment: Optional[str] = None
    reason: Optional[str] = None
    submitted_ns: int = Field(index=True)
    started_ns: Optional[int] = None
    finished_ns: Optional[int] = None
    # the same three times as ISO 8601 UTC text, written with them so listing need not format 100k dates
    submitted_at: Optional[str] = None
    started_at: Optional[str] = None
    finished_at: Optional[str] = None
    # this job's entry of `ws jobs --json`, rewritten by catalog.jobs on every change
    listing: Optional[str] = None
    labels: str = "{}"  # JSON object: the spec's labels (migration 3)
    container: Optional[str] = None  # JSON {"image", "runtime"} or NULL
    artifacts: str = "[]"  # JSON list of URLs
    input_files: str = "{}"  # JSON path -> SHA-256 of the files the inputs matched


class BackendPollRow(SQLModel, table=True):
    """Per backend name: the last status request that answered, the last one tried, and the last error."""

    __tablename__ = "backend_polls"
    name: str = Field(primary_key=True)
    last_ok_ns: Optional[int] = None
    last_try_ns: Optional[int] = None
    error: Optional[str] = None
    error_ns: Optional[int] = None


class JobEventRow(SQLModel, table=True):
    """One state transition of a job, with its time and an optional detail."""

    __tablename__ = "job_events"
    id: Optional[int] = Field(default=None, primary_key=True)
    job_id: str = Field(index=True)
    state: str
    time_ns: int
    detail: Optional[str] = None
