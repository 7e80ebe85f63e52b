"""A real ws server on a free loopback port, for the tests: in this process, or as a subprocess."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sync.server import create_token, serve

ROLES = ("reader", "writer", "admin")


@dataclass
class RunningServer:
    """A started server, its root, and one token per role (plus any created later)."""

    handle: object
    root: Path
    tokens: dict[str, str] = field(default_factory=dict)
    ca_cert: str | None = None

    @property
    def url(self) -> str:
        return self.handle.url

    def options(self, role: str = "admin") -> dict:
        """Remote options for a client with the token of ``role``."""
        opts = {"token": self.tokens[role]}
        if self.ca_cert:
            opts["ca_cert"] = self.ca_cert
        return opts


def start_server(root: Path, tls: tuple[str, str] | None = None, **kwargs) -> RunningServer:
    """Create a reader, a writer and an admin token for ``root`` and serve it on 127.0.0.1:<free port>."""
    root.mkdir(parents=True, exist_ok=True)
    tokens = {role: create_token(root, f"{role}-token", role) for role in ROLES}
    cert, key = tls or (None, None)
    handle = serve(root, "127.0.0.1", 0, tls_cert=cert, tls_key=key, **kwargs)
    return RunningServer(handle, root, tokens, cert)


def self_signed_cert(folder: Path) -> tuple[str, str]:
    """A self-signed certificate for localhost and 127.0.0.1: (cert path, key path), PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "server.crt", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def server_process(root: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """``python -m sync.server --root ROOT --port 0`` in a subprocess: (process, url from its first line)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "sync.server", "--root", str(root), "--port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()  # blocks until the server listens (or exits)
    if not line.startswith("listening on "):
        proc.kill()
        raise AssertionError(f"server did not start: {line!r} {proc.stderr.read()}")
    return proc, line.split()[-1]


class ServeProcess:
    """``ws serve --root ROOT --port 0 ...`` in a subprocess, ready once it printed its address.

    Its stderr (one log line per request) is read by a thread into ``lines``;
    :meth:`wait_for_log` blocks until a line containing a string appears (no sleeps).
    """

    def __init__(self, root: Path, *extra: str, env: dict | None = None):
        import threading

        from tests.conftest import ws_exe

        self.root = Path(root)
        self.proc = subprocess.Popen([*ws_exe(), "serve", "--root", str(root), "--port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, **(env or {})))
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        first = self.proc.stdout.readline()  # blocks until the server listens (or exits)
        if not first.startswith("listening on "):
            self.proc.kill()
            self.proc.wait()
            self._reader.join(30)
            raise AssertionError(f"ws serve did not start: {first!r} {''.join(self.lines)}")
        self.url = first.split()[-1]
        self.tokens: dict[str, str] = {}

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # end of stream
            self._changed.notify_all()

    def wait_for_log(self, needle: str, timeout: float = 120) -> str:
        """The first log line containing ``needle``, waiting for it to come."""
        with self._changed:
            found = self._changed.wait_for(lambda: any(needle in x for x in self.lines) or "" in self.lines,
                                           timeout)
            hits = [x for x in self.lines if needle in x]
        assert found and hits, f"no log line with {needle!r}: {''.join(self.lines)}"
        return hits[0]

    def stop(self, sig: int = 15, timeout: float = 120) -> tuple[int, str]:
        """Send ``sig`` (SIGTERM) and wait: (exit code, everything it logged)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code, "".join(self.lines)


def cli_token(root: Path, role: str, name: str, *extra: str) -> str:
    """``ws serve token create`` through the real CLI; the token from its last line."""
    from tests.conftest import ws_exe

    made = subprocess.run([*ws_exe(), "serve", "token", "create", "--root", str(root), "--role", role, *extra, name],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]
