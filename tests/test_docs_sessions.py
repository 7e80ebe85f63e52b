"""The copy-paste sessions of docs/*.md run as written (the marker: tests/docs_sessions.py).

A session that needs a service names it (``<!-- session NAME needs=s3 -->``);
``NEEDS`` maps each name to a fixture that starts it and returns the
environment variables the session reads. Add an entry here for a new service.
"""

from __future__ import annotations

import uuid

import pytest

from tests.docs_sessions import ROOT, all_sessions, run_session
from tests.slurm_cluster import slurm_cluster  # noqa: F401 (a fixture)
from tests.sync.conftest import S3_KEY, S3_REGION, S3_SECRET, moto_server  # noqa: F401 (a fixture)


@pytest.fixture
def s3_env(moto_server):  # noqa: F811
    """A fresh bucket on the moto server, and the variables a session uses to reach it."""
    import boto3

    bucket = f"ws-doc-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=moto_server, region_name=S3_REGION, aws_access_key_id=S3_KEY,
                 aws_secret_access_key=S3_SECRET).create_bucket(Bucket=bucket)
    return {"S3_ENDPOINT": moto_server, "BUCKET": bucket, "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": S3_REGION}


@pytest.fixture
def server_env(tmp_path):
    """A real ws server on a free port: its URL and an admin token."""
    from tests.sync.server_helpers import start_server

    server = start_server(tmp_path / "server-root")
    yield {"WS_SERVER_URL": server.url, "WS_TOKEN": server.tokens["admin"]}
    server.handle.stop(grace=None)


@pytest.fixture
def slurm_env(slurm_cluster):  # noqa: F811
    """The single-node Slurm of the tests (scripts/slurm-up.sh): SLURM_CONF and a short poll interval."""
    from tests.slurm_cluster import POLL_S

    return {"SLURM_CONF": slurm_cluster.conf, "WS_SLURM_POLL_INTERVAL": POLL_S}


NEEDS = {"s3": "s3_env", "server": "server_env", "slurm": "slurm_env"}

DOC_SESSIONS = all_sessions(sorted((ROOT / "docs").glob("*.md")))


def test_docs_have_sessions():
    assert DOC_SESSIONS, "no <!-- session --> block found in docs/*.md"


def test_only_a_session_marker_makes_a_session(tmp_path):
    """``session`` must be a word of its own: a comment about a session run elsewhere is not one."""
    from tests.docs_sessions import sessions

    doc = tmp_path / "doc.md"
    doc.write_text("<!-- session: run by tests/sync/test_server_docs.py -->\n```bash\nws serve\n```\n\n"
                   "<!-- sessions are fun -->\n```sh\ntrue\n```\n\n"
                   "<!-- session a -->\n```sh\ntrue\n```\n\n<!-- session-->\n```sh\ntrue\n```\n\n"
                   "<!-- session b\ntrue\n-->\n```sh\ntrue\n```\n", encoding="utf-8")
    assert [s.name for s in sessions(doc)] == ["a", "default", "b"]


@pytest.mark.parametrize("session", DOC_SESSIONS, ids=lambda s: s.id)
def test_docs_session(session, tmp_path, request):
    unknown = session.needs - set(NEEDS)
    assert not unknown, f"{session.id} needs {sorted(unknown)}: add them to NEEDS in {__file__}"
    env: dict[str, str] = {}
    for need in sorted(session.needs):
        env.update(request.getfixturevalue(NEEDS[need]))
    run_session(session, tmp_path / "scratch", env)
