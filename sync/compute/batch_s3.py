"""A small S3 client on the standard library alone, for the AWS Batch container entrypoint.

The entrypoint (:mod:`sync.compute.batch_entry`) runs inside the job's image,
which need not have ws, boto3 or any package installed: this module signs
requests itself (AWS Signature Version 4) and reads credentials where a Batch
container finds them, in this order:

1. ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``);
2. the ECS container credentials endpoint that AWS Batch sets up for a job
   with a job role: ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` (on
   ``169.254.170.2``) or ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` with
   ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` (or ``..._TOKEN_FILE``);
3. the EC2 instance role through IMDSv2 (a compute environment's instance role),
   unless ``AWS_EC2_METADATA_DISABLED=true``.

Temporary credentials are read again shortly before they expire. Only what the
entrypoint needs is here: GET (whole or a byte range) and PUT (bytes or a
file, streamed) of one object, with retries on throttling, server errors and
dropped connections. It must keep running on Python 3.8: no newer syntax.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

TRIES = 5
BACKOFF_S = 0.5
CONTAINER_HOST = "http://169.254.170.2"
IMDS = "http://169.254.169.254"
REFRESH_BEFORE_S = 300  # read temporary credentials again this long before they expire


class S3Error(Exception):
    """An S3 request failed for good (after retries), or no credentials were found."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


def split_url(url: str):
    """(bucket, key) of ``s3://bucket/key``; the key may be empty."""
    if not url.startswith("s3://"):
        raise S3Error("not an s3:// URL: %s" % url)
    bucket, _, key = url[5:].partition("/")
    if not bucket:
        raise S3Error("no bucket in %s" % url)
    return bucket, key


# -- credentials --------------------------------------------------------------------
def _http_json(url: str, headers=None, method="GET", data=None, timeout=5.0):
    req = urllib.request.Request(url, headers=headers or {}, method=method, data=data)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = resp.read()
    return json.loads(body.decode()) if body[:1] in (b"{", b"[") else body.decode()


def _expiry(text):
    if not text:
        return None
    try:
        when = datetime.datetime.strptime(text.replace("Z", "+0000")[:19] + "+0000", "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None
    return when.timestamp()


def _container_credentials():
    relative = os.environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    full = os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    if not (relative or full):
        return None
    headers = {}
    token = os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
    token_file = os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    if token_file:
        with open(token_file) as f:
            token = f.read().strip()
    if token:
        headers["Authorization"] = token
    data = _http_json(CONTAINER_HOST + relative if relative else full, headers)
    return (data["AccessKeyId"], data["SecretAccessKey"], data.get("Token"), _expiry(data.get("Expiration")))


def _instance_credentials():
    token = _http_json(IMDS + "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "21600"}, "PUT", b"",
                       timeout=2.0)
    headers = {"X-aws-ec2-metadata-token": token}
    role = _http_json(IMDS + "/latest/meta-data/iam/security-credentials/", headers, timeout=2.0).split()[0]
    data = _http_json(IMDS + "/latest/meta-data/iam/security-credentials/" + role, headers, timeout=2.0)
    return (data["AccessKeyId"], data["SecretAccessKey"], data.get("Token"), _expiry(data.get("Expiration")))


class Credentials:
    """Where this process's AWS credentials come from (see the module doc); cached until near expiry."""

    def __init__(self):
        self._value = None

    def get(self):
        """(access key, secret key, session token or None)."""
        value = self._value
        if value is None or (value[3] is not None and value[3] - time.time() < REFRESH_BEFORE_S):
            value = self._value = self._read()
        return value[:3]

    @staticmethod
    def _read():
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        if key and secret:
            return key, secret, os.environ.get("AWS_SESSION_TOKEN") or None, None
        errors = []
        sources = [_container_credentials]
        if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() != "true":  # botocore's switch, honoured too
            sources.append(_instance_credentials)
        for source in sources:
            try:
                found = source()
            except (OSError, ValueError, KeyError, IndexError) as exc:  # unreachable endpoint, odd answer
                errors.append("%s: %s" % (source.__name__.strip("_"), exc))
                continue
            if found:
                return found
        raise S3Error("no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or give the job a job "
                      "role (the backend's job_role_arn option)" + ("; tried " + "; ".join(errors) if errors else ""))


# -- signing --------------------------------------------------------------------------
def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign_headers(method: str, url: str, region: str, creds, now=None) -> dict:
    """The headers that sign one S3 request (SigV4, unsigned payload: HTTPS protects the body in transit)."""
    access, secret, token = creds
    parts = urllib.parse.urlsplit(url)
    stamp = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    headers = {"host": parts.netloc, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-date": stamp}
    if token:
        headers["x-amz-security-token"] = token
    names = sorted(headers)
    query = "&".join("%s=%s" % (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~"))
                     for k, v in sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)))
    canonical = "\n".join([method, parts.path or "/", query, "".join("%s:%s\n" % (n, headers[n]) for n in names),
                           ";".join(names), "UNSIGNED-PAYLOAD"])
    scope = "%s/%s/s3/aws4_request" % (day, region)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _sign(_sign(_sign(_sign(("AWS4" + secret).encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
                                % (access, scope, ";".join(names), signature))
    del headers["host"]  # urllib sends the same Host itself
    return headers


# -- the client -----------------------------------------------------------------------
class S3Client:
    """GET and PUT of single objects. ``endpoint``: an S3-compatible server (path-style URLs), else AWS."""

    def __init__(self, region: str, endpoint=None, credentials=None, timeout: float = 120.0):
        self.region = region or "us-east-1"
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.credentials = credentials or Credentials()
        self.timeout = timeout
        self.requests_made = 0

    def url(self, bucket: str, key: str) -> str:
        """The object's URL: path-style at a custom endpoint (or a bucket with dots), virtual-hosted on AWS."""
        path = urllib.parse.quote(key, safe="/-_.~")
        if self.endpoint:
            return "%s/%s/%s" % (self.endpoint, bucket, path)
        if "." in bucket:
            return "https://s3.%s.amazonaws.com/%s/%s" % (self.region, bucket, path)
        return "https://%s.s3.%s.amazonaws.com/%s" % (bucket, self.region, path)

    def get(self, bucket: str, key: str, start=None, end=None) -> bytes:
        """The object's bytes, or bytes ``[start, end)`` of it."""
        headers = {"Range": "bytes=%d-%d" % (start or 0, end - 1)} if end is not None else {}
        data = self._request("GET", bucket, key, headers)
        if end is not None and len(data) != end - (start or 0):
            raise S3Error("short read of s3://%s/%s (%d of %d bytes)" % (bucket, key, len(data), end - (start or 0)))
        return data

    def put(self, bucket: str, key: str, body) -> None:
        """Store ``body`` (bytes, or the path of a local file, streamed) under ``key``."""
        self._request("PUT", bucket, key, {}, body)

    def _request(self, method: str, bucket: str, key: str, headers: dict, body=None) -> bytes:
        url = self.url(bucket, key)
        for attempt in range(1, TRIES + 1):
            all_headers = dict(headers)
            all_headers.update(sign_headers(method, url, self.region, self.credentials.get()))
            stream = None
            data = body
            if body is not None:  # (urllib would call it a form otherwise, and servers parse it as one)
                all_headers["Content-Type"] = "application/octet-stream"
            if isinstance(body, str):  # a file path: streamed with its length
                stream = data = open(body, "rb")
                all_headers["Content-Length"] = str(os.path.getsize(body))
            elif body is not None:
                all_headers["Content-Length"] = str(len(body))
            try:
                self.requests_made += 1
                req = urllib.request.Request(url, data=data, headers=all_headers, method=method)
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return resp.read()
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                if exc.code in (429, 500, 502, 503, 504) and attempt < TRIES:
                    time.sleep(BACKOFF_S * 2 ** (attempt - 1))  # the service asked us to slow down
                    continue
                raise S3Error("%s s3://%s/%s: HTTP %d %s" % (method, bucket, key, exc.code, detail), exc.code) from None
            except (urllib.error.URLError, OSError) as exc:
                if attempt < TRIES:
                    time.sleep(BACKOFF_S * 2 ** (attempt - 1))  # a dropped connection: try again
                    continue
                raise S3Error("%s s3://%s/%s: %s" % (method, bucket, key, exc)) from None
            finally:
                if stream is not None:
                    stream.close()
        raise S3Error("%s s3://%s/%s failed" % (method, bucket, key))  # not reached


def _error_detail(exc) -> str:
    try:
        text = exc.read().decode("utf-8", "replace")
    except OSError:
        return exc.reason or ""
    for tag in ("Code", "Message"):
        start, end = text.find("<%s>" % tag), text.find("</%s>" % tag)
        if start >= 0 and end > start:
            return text[start + len(tag) + 2:end] + (": " + _error_message(text) if tag == "Code" else "")
    return (text.strip().replace("\n", " ")[:200]) or (exc.reason or "")


def _error_message(text: str) -> str:
    start, end = text.find("<Message>"), text.find("</Message>")
    return text[start + 9:end] if 0 <= start < end else ""
