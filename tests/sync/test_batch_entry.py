"""The container side on its own: the standard-library S3 client, its credentials, the entrypoint in a bare Python.

The entrypoint must run in any image with python3: these tests run it with
``python -I -S`` (no site-packages: no ws, no boto3, no zstandard) against
the moto S3 server, sign requests exactly as botocore does, and read
credentials from a container credentials endpoint served on 127.0.0.1.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from sync.compute import batch_s3
from sync.compute.batch_jobs import bootstrap
from sync.remote import Remote
from sync.staging import Stager, manifest_key
from sync.storage.registry import open_backend
from tests.sync.conftest import S3_KEY, S3_REGION, S3_SECRET


@pytest.mark.parametrize("key", ["a b/c~d.txt", "jobs/3f2a/1/out/packs/ab12", "odd+=&?#key"])
def test_requests_are_signed_as_botocore_signs_them(key):
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")
    client = batch_s3.S3Client("eu-west-1", credentials=None)
    url = client.url("examplebucket", key)
    now = datetime.datetime(2026, 5, 24, 1, 2, 3, tzinfo=datetime.timezone.utc)
    ours = batch_s3.sign_headers("GET", url, "eu-west-1", creds, now)
    request = AWSRequest("GET", url, headers={"X-Amz-Date": "20260524T010203Z", "X-Amz-Security-Token": creds[2],
                                              "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    request.context.update(timestamp="20260524T010203Z", payload_signing_enabled=False)
    auth = S3SigV4Auth(Credentials(*creds), "s3", "eu-west-1")
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    assert ours["Authorization"].endswith(f"Signature={signature}")
    assert ours["x-amz-security-token"] == creds[2]


def test_urls_are_virtual_hosted_on_aws_and_path_style_elsewhere():
    assert batch_s3.S3Client("eu-west-1").url("b1", "k/x y") == "https://b1.s3.eu-west-1.amazonaws.com/k/x%20y"
    assert batch_s3.S3Client("eu-west-1").url("a.b", "k") == "https://s3.eu-west-1.amazonaws.com/a.b/k"
    assert batch_s3.S3Client("us-east-1", "http://127.0.0.1:9/").url("b1", "k") == "http://127.0.0.1:9/b1/k"
    assert batch_s3.split_url("s3://b1/p/q") == ("b1", "p/q")


class _CredentialsEndpoint(BaseHTTPRequestHandler):
    """An ECS container credentials endpoint: JSON keys for a request with the right Authorization."""

    token = "let-me-in"
    served = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.headers.get("Authorization") != self.token:
            self.send_response(401)
            self.end_headers()
            return
        _CredentialsEndpoint.served.append(self.path)
        body = json.dumps({"AccessKeyId": "ASIAFROMROLE", "SecretAccessKey": "secret", "Token": "tok",
                           "Expiration": "2099-01-01T00:00:00Z"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_credentials_come_from_the_container_endpoint_when_the_environment_has_none(monkeypatch, tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _CredentialsEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://127.0.0.1:{server.server_port}/v2/creds")
        token_file = tmp_path / "token"
        token_file.write_text(_CredentialsEndpoint.token + "\n")
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token_file))
        creds = batch_s3.Credentials()
        assert creds.get() == ("ASIAFROMROLE", "secret", "tok")
        creds.get()
        assert _CredentialsEndpoint.served == ["/v2/creds"]  # cached until near its expiry
        monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        with pytest.raises(batch_s3.S3Error, match="no AWS credentials"):
            batch_s3.Credentials().get()
    finally:
        server.shutdown()


def _stage(s3_bucket, root: Path, files: dict) -> str:
    bucket, options, _ = s3_bucket
    prefix = f"entry-{uuid.uuid4().hex[:8]}"
    url = f"s3://{bucket}/{prefix}"
    stager = Stager(Remote(open_backend(url, options, label="t"), "t"))
    inputs, _ = stager.stage_inputs(str(root), files)
    stager.write_manifest("j1", 1, {"job": "j1", "attempt": 1, "root": url, "command": "cat data/* | wc -c > n.txt",
                                    "workdir": "", "inputs": inputs, "outputs": {"files": ["n.txt"], "dirs": []}})
    return f"{url}/{manifest_key('j1', 1)}"


def _bare_python(manifest_url: str, moto_server: str, job_root: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET,
           "AWS_EC2_METADATA_DISABLED": "true", "WS_S3_REGION": S3_REGION, "WS_S3_ENDPOINT": moto_server,
           "WS_JOB_ROOT": str(job_root), "TMPDIR": str(job_root.parent)}
    return subprocess.run([sys.executable, "-I", "-S", "-c", bootstrap(), manifest_url], env=env, cwd="/",
                          capture_output=True, text=True, timeout=120)


def test_the_entrypoint_runs_in_a_bare_python_against_s3(s3_bucket, moto_server, tmp_path):
    root = tmp_path / "ws"
    (root / "data").mkdir(parents=True)
    (root / "data" / "noise").write_bytes(os.urandom(1 << 20))  # incompressible: stored raw, no zstd needed
    url = _stage(s3_bucket, root, {"data/noise": ""})
    done = _bare_python(url, moto_server, tmp_path / "container")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "container" / "n.txt").read_text().strip() == str(1 << 20)
    _, _, client = s3_bucket
    key = url.split("/", 3)[3].replace("job.json", "out/outputs.json")
    result = json.loads(client.get_object(Bucket=s3_bucket[0], Key=key)["Body"].read())
    assert result["exit_code"] == 0 and [f["path"] for f in result["files"]] == ["n.txt"]


def test_a_bare_python_without_zstd_says_what_to_install(s3_bucket, moto_server, tmp_path):
    root = tmp_path / "ws"
    (root / "data").mkdir(parents=True)
    (root / "data" / "text").write_text("compressible line\n" * 100_000)
    url = _stage(s3_bucket, root, {"data/text": ""})
    done = _bare_python(url, moto_server, tmp_path / "container")
    assert done.returncode == 121
    assert "install the 'zstandard' module" in done.stderr and "Python 3.14" in done.stderr


def test_python_3_14s_compression_zstd_is_used_when_zstandard_is_missing(monkeypatch):
    """The entrypoint's second choice, with the signatures of Python 3.14's compression.zstd."""
    import types

    import zstandard

    from sync.compute import batch_entry

    fake = types.ModuleType("compression.zstd")
    fake.compress = lambda data, level=None, options=None, zstd_dict=None: zstandard.ZstdCompressor(
        level=level or 3).compress(data)
    fake.decompress = lambda data, zstd_dict=None, options=None: zstandard.ZstdDecompressor().decompress(data)
    package = types.ModuleType("compression")
    package.zstd = fake
    monkeypatch.setitem(sys.modules, "zstandard", None)  # "import zstandard" fails, as in a plain image
    monkeypatch.setitem(sys.modules, "compression", package)
    monkeypatch.setitem(sys.modules, "compression.zstd", fake)
    decompress, compress = batch_entry._zstd()
    data = b"the same line again\n" * 1000
    assert decompress(compress(data), len(data)) == data
    monkeypatch.setitem(sys.modules, "compression", None)
    assert batch_entry._zstd() is None
