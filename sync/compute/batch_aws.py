"""boto3 for the AWS Batch backend: clients made on first use, errors as one clear line, paged calls.

boto3 costs 0.2 s to import, so it is imported here, inside the first call,
never when a backend is built (``ws jobs refresh`` builds one per name it
finds) nor on the ``ws status`` / ``ws jobs --json`` paths.

Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID``...,
``AWS_PROFILE`` or the backend's ``profile`` option, ``~/.aws``, SSO, an
instance role) unless the backend was given keys. Every botocore error
becomes a :class:`~sync.errors.BackendError` (exit 10) or
:class:`BatchAuthError` (exit 11) whose message is one line saying what to do.
"""

from __future__ import annotations

from typing import Any, Iterator

from sync.errors import BackendError

AUTH_CODES = {"UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException",
              "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException", "AccessDenied",
              "AccessDeniedException", "UnauthorizedOperation", "InvalidAccessKeyId"}


class BatchAuthError(BackendError):
    """No AWS credentials, or AWS refused them (exit 11, like other credentials)."""

    exit_code = 11


class BatchUnreachable(BackendError):
    """The AWS endpoint could not be reached (exit 10); nothing was changed there."""


class AWS:
    """Batch and CloudWatch Logs clients of one backend, made on first use."""

    def __init__(self, backend_name: str, region: str | None = None, endpoint_url: str | None = None,
                 profile: str | None = None, keys: tuple | None = None, max_attempts: int = 3,
                 connect_timeout: float = 10.0, read_timeout: float = 60.0):
        self.backend_name = backend_name
        self.region = region
        self.endpoint_url = endpoint_url
        self.profile = profile
        self.keys = keys  # (access key id, secret, session token) or None: boto3's chain
        self.max_attempts = max_attempts
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._clients: dict[str, Any] = {}
        self.calls: list[str] = []  # operation names, in order (tests count them)
        self.log_page: int | None = None  # events per GetLogEvents page (None: the service's default, 10,000)

    def client(self, service: str):
        """The boto3 client of ``service`` (``batch`` or ``logs``)."""
        if service not in self._clients:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError

            key, secret, token = self.keys or (None, None, None)
            config = Config(retries={"max_attempts": self.max_attempts, "mode": "standard"},
                            connect_timeout=self.connect_timeout, read_timeout=self.read_timeout)
            try:
                session = boto3.session.Session(profile_name=self.profile, region_name=self.region,
                                                aws_access_key_id=key, aws_secret_access_key=secret,
                                                aws_session_token=token)
                self._clients[service] = session.client(service, endpoint_url=self.endpoint_url, config=config)
            except BotoCoreError as exc:
                raise self._translate(exc, f"{service} client") from None
        return self._clients[service]

    def call(self, service: str, operation: str, **kwargs) -> dict:
        """One API call; errors translated (see the module doc)."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client(service)
        self.calls.append(operation)
        try:
            return getattr(client, operation)(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, operation) from None

    def pages(self, service: str, operation: str, key: str, **kwargs) -> Iterator[dict]:
        """Every item of a paged list call (``nextToken``), page by page."""
        token = None
        while True:
            answer = self.call(service, operation, **kwargs, **({"nextToken": token} if token else {}))
            yield from answer.get(key) or []
            token = answer.get("nextToken")
            if not token:
                return

    def _translate(self, exc: Exception, operation: str) -> BackendError:
        from botocore import exceptions as bex

        name = self.backend_name
        where = self.endpoint_url or f"AWS in {self.region or 'the default region'}"
        if isinstance(exc, (bex.NoCredentialsError, bex.PartialCredentialsError)):
            return BatchAuthError(f"backend '{name}': no AWS credentials found; set AWS_ACCESS_KEY_ID and "
                                  "AWS_SECRET_ACCESS_KEY, AWS_PROFILE (or the backend's profile option), or run "
                                  "where an instance role applies")
        if isinstance(exc, bex.ProfileNotFound):
            return BatchAuthError(f"backend '{name}': {exc}; check the profile option or AWS_PROFILE")
        if isinstance(exc, bex.NoRegionError):
            return BackendError(f"backend '{name}': no AWS region; set the backend's region option or AWS_REGION")
        if isinstance(exc, (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ReadTimeoutError,
                            bex.ConnectionClosedError)):
            return BatchUnreachable(f"backend '{name}': cannot reach {where} ({operation}): {_one_line(exc)}")
        if isinstance(exc, bex.ClientError):
            err = exc.response.get("Error", {})
            code, message = err.get("Code", "Error"), _one_line(err.get("Message") or exc)
            if code in AUTH_CODES:
                return BatchAuthError(f"backend '{name}': AWS refused the credentials ({operation}): {code}: "
                                      f"{message}")
            return BackendError(f"backend '{name}': AWS refused {operation}: {code}: {message}")
        return BackendError(f"backend '{name}': {operation} failed: {_one_line(exc)}")

    def log_events(self, group: str, stream: str, token: str | None) -> tuple[list[str], str | None]:
        """New messages of a CloudWatch Logs stream after ``token`` (from the start when None), and the next token.

        Reads every page up to the end of what is there now (GetLogEvents
        signals the end by handing back the token it was given). A group or
        stream that does not exist yet is empty.
        """
        messages: list[str] = []
        while True:
            kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
            if self.log_page:
                kwargs["limit"] = self.log_page
            if token:
                kwargs["nextToken"] = token
            try:
                answer = self.call("logs", "get_log_events", **kwargs)
            except BackendError as exc:
                if "ResourceNotFoundException" in str(exc):
                    return messages, token
                raise
            messages.extend(str(e.get("message", "")) for e in answer.get("events") or [])
            nxt = answer.get("nextForwardToken")
            if not nxt or nxt == token or not answer.get("events"):
                return messages, nxt or token
            token = nxt


def _one_line(exc) -> str:
    return " ".join(str(exc).split())[:400]
