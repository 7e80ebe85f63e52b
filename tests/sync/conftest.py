"""Fixtures for the sync tests: a real moto S3 server on 127.0.0.1, reached over HTTP."""

from __future__ import annotations

import socket
import uuid

import pytest

S3_KEY = "testing-key"
S3_SECRET = "testing-secret"
S3_REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server():
    """The endpoint URL of a moto S3 server started for this test session."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover - CI installs moto[server]
        pytest.skip(f"moto[server] is not installed ({exc}); S3 tests need it")
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_server):
    """A fresh bucket on the moto server: (bucket name, options for a ws remote)."""
    import boto3

    name = f"ws-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=moto_server, region_name=S3_REGION,
                          aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET)
    client.create_bucket(Bucket=name)
    options = {"endpoint_url": moto_server, "region": S3_REGION, "key": S3_KEY, "secret": S3_SECRET}
    return name, options, client


@pytest.fixture
def ws_server(tmp_path):
    """A real ws server (``grpc://127.0.0.1:<free port>``) on a fresh root, with a token per role."""
    from tests.sync.server_helpers import start_server

    server = start_server(tmp_path / "server-root")
    yield server
    server.handle.stop(grace=None)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A self-signed certificate for localhost / 127.0.0.1 and its key (cert path, key path)."""
    pytest.importorskip("cryptography", reason="the grpcs:// tests make their certificate with cryptography")
    from tests.sync.server_helpers import self_signed_cert

    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def ws_server_tls(tmp_path, tls_files):
    """A real ws server over TLS (``grpcs://``), trusted by clients through the ``ca_cert`` option."""
    from tests.sync.server_helpers import start_server

    server = start_server(tmp_path / "server-root-tls", tls=tls_files)
    yield server
    server.handle.stop(grace=None)


@pytest.fixture(scope="session")
def batch_world(moto_server):
    """AWS Batch on the session's moto server, its jobs run by a stand-in compute environment (batch_moto.py)."""
    from tests.sync.batch_moto import set_up

    world = set_up(moto_server, S3_REGION, {"key": S3_KEY, "secret": S3_SECRET})
    world.environment.install()
    yield world
    world.environment.uninstall()
