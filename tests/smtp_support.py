"""A real local SMTP server (aiosmtpd) for the e-mail notice tests.

``tls_material`` makes, in ``tmp_path``, a throw-away CA and a server certificate it signed
for ``localhost`` and 127.0.0.1, so a client verifies the server through the CA file just
as it would a real one. ``smtp_server`` listens on a free loopback port and *requires*
STARTTLS (no MAIL before it); ``smtp_server_plain`` offers no STARTTLS at all, to check
that the gateway refuses to send in clear. Both capture what they receive.

Use the fixtures from a test module with ``pytest_plugins = ["tests.smtp_support"]``.
(PYTEST_DONT_REWRITE: this module has no asserts, and a test module importing its helpers
before pytest loads it as a plugin must not make pytest warn.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "127.0.0.1"
USERNAME = "dipgw-notices"
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class TlsMaterial:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    tls: bool
    authenticated_as: str | None


@dataclass
class CapturingHandler:
    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.login if session.authenticated else None
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                content=envelope.original_content or envelope.content,
                tls=session.ssl is not None,
                authenticated_as=login.decode() if isinstance(login, bytes) else login,
            )
        )
        return "250 Message accepted for delivery"


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    handler: CapturingHandler

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def url(self, host: str | None = None, *, login: bool = False) -> str:
        credentials = f"{USERNAME}:{PASSWORD.replace(' ', '%20')}@" if login else ""
        return f"smtp://{credentials}{host or self.host}:{self.port}"


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USERNAME.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def make_tls_material(directory: Path, names: tuple[str, ...] = ("localhost", HOST)) -> TlsMaterial:
    """A CA, and a server certificate for ``names`` (DNS names or IP addresses) it signed."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dipgw test SMTP CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    material = TlsMaterial(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
    )
    material.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    material.cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    material.key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return material


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def run_smtp_server(tls: TlsMaterial | None) -> Iterator[SmtpServer]:
    """An SMTP server on a free loopback port; with ``tls`` it requires STARTTLS.

    Without ``tls`` it offers no STARTTLS (and, so, no AUTH either).
    """
    handler = CapturingHandler()
    options: dict[str, Any] = {}
    if tls is not None:
        options = {
            "tls_context": tls.server_context(),
            "require_starttls": True,
            "authenticator": _authenticate,
            "auth_require_tls": True,
        }
    port = free_port()
    controller = Controller(
        handler, hostname=HOST, port=port, server_hostname="localhost", **options
    )
    controller.start()
    try:
        yield SmtpServer(HOST, port, handler)
    finally:
        controller.stop()


@pytest.fixture
def tls_material(tmp_path: Path) -> TlsMaterial:
    return make_tls_material(tmp_path / "smtp-tls")


@pytest.fixture
def smtp_server(tls_material: TlsMaterial) -> Iterator[SmtpServer]:
    """Requires STARTTLS, with a certificate for localhost and 127.0.0.1 from ``tls_material``."""
    with run_smtp_server(tls_material) as server:
        yield server


@pytest.fixture
def smtp_server_plain() -> Iterator[SmtpServer]:
    """Offers no STARTTLS: a notice must never be sent to it."""
    with run_smtp_server(None) as server:
        yield server
