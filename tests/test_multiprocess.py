"""Issue 13's chaos test: three ``dipgw serve`` processes on one PostgreSQL database and one
RabbitMQ, behind HAProxy (the shipped deploy/haproxy/haproxy.cfg, its server lines
templated as its header describes), take ``MESSAGES`` RA1 notices from concurrent
clients while one process is SIGKILLed (after a third) and the broker is bounced (after
two thirds). Afterwards: every accepted message is in the recipient's inbox exactly once,
accepted once and delivered once in the audit log, the outbox is empty, and the exported
audit log (one tree, written by all three processes) passes ``dipgw audit verify``, which
checks every stored checkpoint against the one before it.

The killed process is not restarted: the two survivors must finish its work (its outbox
leases run out after 60 s, its unacknowledged broker deliveries are requeued). Needs
PostgreSQL, RabbitMQ with ``rabbitmqctl`` (the broker is stopped and started, so do not
run it beside other tests that use the same broker) and Debian's haproxy (``make
haproxy``); a missing one skips the test, or fails it under ``DIPGW_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import make_url

from gateway.client import Credentials, GatewayClient
from gateway.config import Settings
from gateway.domain.model import Role
from tests.backends import (
    create_database,
    drop_database,
    postgresql_only,
    query,
    require_postgres,
)
from tests.conftest import EXAMPLES, credentials, load
from tests.processes import free_port, gateway_env
from tests.rabbitmq_support import delete_topology, unique_prefix
from tests.services import rabbitmq_url, services_required  # noqa: F401
from tests.test_rabbitmq_resilience import restart_broker

# Bounces the broker every other test shares and runs three gateways flat out.
pytestmark = [pytest.mark.services, pytest.mark.exclusive, postgresql_only]

MESSAGES = 5_000  # issue 13
GATEWAYS = 3
CLIENTS = 16
KILL_AFTER = MESSAGES // 3
BOUNCE_AFTER = 2 * MESSAGES // 3
# A request that meets a dead process, a broker being restarted or HAProxy with no server
# up is sent again, with the same message id, for this long.
RETRY_FOR_S = 90.0
RETRY_STATUSES = (502, 503, 504)
# The killed process's outbox leases last 60 s before a survivor may take its rows.
DELIVERED_WITHIN_S = 240.0
READY_WITHIN_S = 60.0
# All submissions, generously: 600 messages from 8 clients took 48 s on a busy 2-CPU machine.
SENT_WITHIN_S = 600.0
HAPROXY_MAXCONN = 4096

ROOT = Path(__file__).resolve().parents[1]
HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
RECIPIENT = RA1["to"][0]


def _tool(name: str, hint: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        message = f"{name} is not installed: {hint}"
        if services_required():
            pytest.fail(f"{message} [DIPGW_REQUIRE_SERVICES=1]")
        pytest.skip(message)
    return found


def _tls_pem(folder: Path) -> Path:
    """A throwaway self-signed certificate for 127.0.0.1 and its key, in one PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dipgw.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = folder / "tls.pem"
    path.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    )
    path.chmod(0o600)
    return path


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, (
        f"{HAPROXY_CFG} no longer holds {old!r} exactly once; update this test's templating")
    return text.replace(old, new)


def haproxy_config(folder: Path, backends: list[int], tls_port: int, http_port: int) -> Path:
    """The shipped config with one server line per gateway between its markers, and its
    two listeners moved to free ports on 127.0.0.1."""
    text = HAPROXY_CFG.read_text()
    servers = re.search(r"(?m)^    # BEGIN servers\n(.*?)^    # END servers$", text, re.S)
    assert servers is not None, f"{HAPROXY_CFG} lost its BEGIN/END servers markers"
    lines = "".join(f"    server gateway-{n} 127.0.0.1:{port} check\n"
                    for n, port in enumerate(backends, start=1))
    text = text[:servers.start(1)] + lines + text[servers.end(1):]
    text = _replace_once(text, "bind :8443 ", f"bind 127.0.0.1:{tls_port} ")
    text = _replace_once(text, "bind :8080\n", f"bind 127.0.0.1:{http_port}\n")
    path = folder / "haproxy.cfg"
    path.write_text(text)
    return path


def _log_tail(path: Path) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-20:])


@contextmanager
def started(argv: list[str], env: dict[str, str] | None, log: Path,
            ) -> Iterator[subprocess.Popen[bytes]]:
    """A process with its output in ``log``, killed after."""
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


async def until_ready(session: aiohttp.ClientSession, url: str,
                      process: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``url``/readyz answers 200; a process that exits or never gets there fails
    the test with the end of its log."""
    deadline = time.monotonic() + READY_WITHIN_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            async with session.get(url + "/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    state = ("exited" if process.poll() is not None
             else f"is not ready after {READY_WITHIN_S:.0f} s")
    raise AssertionError(f"{url} {state}; {log}:\n{_log_tail(log)}")


def keys_init(folder: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "keys", "init", str(folder)],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"dipgw keys init failed: {result.stderr}"


@asynccontextmanager
async def database() -> AsyncIterator[str]:
    admin = require_postgres()
    name = create_database(migrated=False)
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(name)


async def submit(session: aiohttp.ClientSession, url: str, creds: Credentials,
                 document: dict[str, Any], internal_errors: list[str]) -> None:
    """POST one message until it is answered 202 (or 200, a replay of an earlier attempt
    whose answer was lost), sending it again with the same id after a connection error,
    HAProxy's 502/503/504, or the gateway's 500 (which says a retry is safe; each 500 is
    noted in ``internal_errors``, and the test fails on them once it has checked the rest)."""
    deadline = time.monotonic() + RETRY_FOR_S
    while True:
        try:
            async with session.post(url + "/v1/messages", json=document,
                                    headers={"Authorization": f"Bearer {creds.token()}"},
                                    ) as response:
                if response.status in (200, 202):
                    return
                failure = f"{response.status}: {await response.text()}"
                if response.status == 500:
                    internal_errors.append(document["message_id"])
                else:
                    assert response.status in RETRY_STATUSES, (
                        f"message {document['message_id']} was refused, {failure}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = repr(exc)
        assert time.monotonic() < deadline, (
            f"message {document['message_id']} not accepted within {RETRY_FOR_S:.0f} s; "
            f"last: {failure}")
        await asyncio.sleep(0.2)


async def until_accepted(accepted: list[str], count: int) -> None:
    deadline = time.monotonic() + SENT_WITHIN_S
    while len(accepted) < count:
        assert time.monotonic() < deadline, (
            f"only {len(accepted)} messages were accepted within {SENT_WITHIN_S:.0f} s "
            "(HAProxy's log in the test's tmp_path has each answer and its time)")
        await asyncio.sleep(0.01)


def inbox_counts(settings: Settings) -> Counter[str]:
    rows = query(settings, "SELECT message_id, COUNT(*) FROM inbox WHERE recipient = :r "
                 "GROUP BY message_id", r=RECIPIENT)
    return Counter({str(message_id): int(n) for message_id, n in rows})


async def until_delivered(settings: Settings, accepted: set[str]) -> Counter[str]:
    deadline = time.monotonic() + DELIVERED_WITHIN_S
    while True:
        counts = await asyncio.to_thread(inbox_counts, settings)
        missing = accepted - set(counts)
        if not missing:
            return counts
        assert time.monotonic() < deadline, (
            f"{len(missing)} of {len(accepted)} accepted messages were not delivered within "
            f"{DELIVERED_WITHIN_S:.0f} s, e.g. {sorted(missing)[:5]}")
        await asyncio.sleep(1.0)


def audit_actions(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(bytes(entry)) for (entry,) in query(
        settings, "SELECT entry FROM audit_entries ORDER BY idx")]


async def export_and_verify(session: aiohttp.ClientSession, url: str, settings: Settings,
                            folder: Path) -> tuple[int, int]:
    """Export the whole audit log through HAProxy as the auditor and run ``dipgw audit
    verify`` on it: (checkpoints it verified, newest size)."""
    async with GatewayClient(url, credentials(settings, "", Role.AUDITOR),
                             session=session) as auditor:
        bundle = folder / "audit.tar.gz"
        bundle.write_bytes(await auditor.download("/v1/audit/export"))
        keys = folder / "verifier-keys.txt"
        keys.write_bytes(await auditor.download("/v1/audit/keys"))
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "verify", str(bundle),
         "--public-key", str(keys)],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"dipgw audit verify refused the export: {result.stderr}"
    verified = re.search(r"(\d+) signed checkpoint\(s\), newest size (\d+)", result.stdout)
    assert verified is not None, f"unexpected dipgw audit verify output: {result.stdout}"
    return int(verified[1]), int(verified[2])


@pytest.mark.timeout(1800)
async def test_three_gateways_survive_a_sigkill_and_a_broker_bounce(
    tmp_path: Path, rabbitmq_url: str  # noqa: F811
) -> None:
    haproxy = _tool("haproxy", "install Debian's haproxy (make haproxy)")
    _tool("rabbitmqctl", "the broker is bounced with rabbitmqctl (deploy/dev/ensure-services.sh)")
    prefix = unique_prefix()
    secrets, data = tmp_path / "secrets", tmp_path / "data"
    keys_init(secrets)
    ports = [free_port() for _ in range(GATEWAYS)]
    tls_port, http_port = free_port(), free_port()
    url = f"https://127.0.0.1:{tls_port}"
    tls = ssl.create_default_context(cafile=str(_tls_pem(tmp_path)))
    accepted: list[str] = []
    internal_errors: list[str] = []
    async with database() as database_url:
        settings = Settings(data_dir=data, database_url=database_url)
        env = [{**gateway_env(data, port, database_url), "DIPGW_ENV": "development",
                "DIPGW_AMQP_URL": rabbitmq_url, "DIPGW_AMQP_PREFIX": prefix,
                "DIPGW_SECRETS_DIR": str(secrets)} for port in ports]
        serve = [sys.executable, "-m", "gateway.cli", "serve", "--log-level", "WARNING"]
        logs = [tmp_path / f"gateway-{n}.log" for n in range(1, GATEWAYS + 1)]
        config = haproxy_config(tmp_path, ports, tls_port, http_port)
        haproxy_env = {"DIPGW_TLS_CERT": str(tmp_path / "tls.pem")}
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls),
                                        timeout=aiohttp.ClientTimeout(total=30))
        try:
            with ExitStack() as running:
                # The first process migrates the database, seeds the demo directory and
                # writes the demo keys into the shared data directory; the others start
                # on what it made (each would otherwise make keys of its own).
                gateways: list[subprocess.Popen[bytes]] = []
                for n in range(GATEWAYS):
                    gateways.append(running.enter_context(started(serve, env[n], logs[n])))
                    await until_ready(session, f"http://127.0.0.1:{ports[n]}", gateways[n],
                                      logs[n])
                first, victim, third = gateways
                # -n: the shipped maxconn (20000) wants twice as many file descriptors
                # as a test machine may allow; a few thousand connections are plenty here.
                balancer = running.enter_context(started(
                    [haproxy, "-db", "-n", str(HAPROXY_MAXCONN), "-f", str(config)],
                    haproxy_env, tmp_path / "haproxy.log"))
                await until_ready(session, url, balancer, tmp_path / "haproxy.log")
                police = credentials(settings, RA1["from"])
                started_at = time.monotonic()
                remaining = iter(range(MESSAGES))

                async def client() -> None:
                    for _ in remaining:
                        document = {**RA1, "message_id": str(uuid.uuid4())}
                        await submit(session, url, police, document, internal_errors)
                        accepted.append(document["message_id"])

                async def chaos() -> None:
                    await until_accepted(accepted, KILL_AFTER)
                    victim.send_signal(signal.SIGKILL)
                    await until_accepted(accepted, BOUNCE_AFTER)
                    await restart_broker()

                await asyncio.gather(chaos(), *(client() for _ in range(CLIENTS)))
                sent_in = time.monotonic() - started_at
                assert victim.wait(timeout=10) == -signal.SIGKILL
                inbox = await until_delivered(settings, set(accepted))
                delivered_in = time.monotonic() - started_at
                checkpoints, newest = await export_and_verify(session, url, settings, tmp_path)
                for process, log in ((first, logs[0]), (third, logs[2])):
                    assert process.poll() is None, f"a survivor exited; {log}:\n{_log_tail(log)}"
        finally:
            await session.close()
            await delete_topology(rabbitmq_url, prefix)

        print(f"{MESSAGES} messages accepted in {sent_in:.1f} s, all delivered after "
              f"{delivered_in:.1f} s; {checkpoints} checkpoints verified up to size {newest}")
        assert len(accepted) == len(set(accepted)) == MESSAGES
        duplicates = {m: n for m, n in inbox.items() if n > 1}
        assert not duplicates, f"delivered more than once: {duplicates}"
        assert set(inbox) == set(accepted), "the inbox holds messages nobody sent"
        entries = await asyncio.to_thread(audit_actions, settings)
        for action in ("message.accepted", "message.delivered"):
            logged = Counter(e["message_id"] for e in entries if e["action"] == action)
            wrong = {m: logged[m] for m in accepted if logged[m] != 1}
            assert not wrong, f"{action} logged other than once: {dict(list(wrong.items())[:5])}"
        delivered_to = {tuple(e["recipients"]) for e in entries
                        if e["action"] == "message.delivered"}
        assert delivered_to == {(RECIPIENT,)}
        unpublished = query(settings, "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
        assert unpublished == [(0,)], "the outbox still holds messages"
        stored = query(settings, "SELECT COUNT(*) FROM audit_checkpoints WHERE size <= :size",
                       size=newest)
        assert stored == [(checkpoints,)], (
            f"the export verified {checkpoints} checkpoints, the database holds {stored}")
        assert checkpoints >= 2, "no consistency between checkpoints was checked"
        assert not internal_errors, (
            f"the gateway answered 500 to {len(internal_errors)} submissions (sent again, "
            f"so everything above still held); the tracebacks are in {tmp_path}/gateway-*.log")
