"""Delivery channels chosen in the directory: signed webhook pushes retried until a 2xx,
e-mail notices to the SPOC for alerts, and the IG lead's channel settings."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import keys
from gateway.app import create_app
from gateway.channels.choice import channel_problems
from gateway.channels.email import SmtpSettings
from gateway.client import GatewayClient, GatewayProblem
from gateway.config import Settings
from gateway.domain.model import ChannelSettings, DeliveryChannel, Role
from gateway.sdjwt.envelope import check_received
from gateway.services.directory import dev_key_path
from tests.backends import make_settings, query
from tests.conftest import EXAMPLES, credentials, load, person_credentials
from tests.smtp_support import SmtpServer
from tests.test_messages_end_to_end import wait_for_inbox

pytest_plugins = ["tests.smtp_support"]

RA1 = load(EXAMPLES / "ra1_notice" / "valid-local-trigger-offence-community-appointment.json")
ALERT = load(
    EXAMPLES / "disengagement_alert" / "valid-missed-rob-with-clinical-fields-for-redaction.json"
)


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.05)


async def until_status(
    sender: GatewayClient, message_id: str, status: str, timeout_s: float = 10.0
) -> None:
    async def reached() -> bool:
        return (await sender.status(message_id))["status"] == status

    await eventually(reached, timeout_s)


async def until_failed_attempts(sender: GatewayClient, message_id: str, count: int) -> None:
    async def enough() -> bool:
        history = (await sender.status(message_id))["history"]
        return sum(e["status"] == "attempt_failed" for e in history) >= count

    await eventually(enough)


async def until_mails(server: SmtpServer, count: int) -> None:
    async def received() -> bool:
        return len(server.received) >= count

    await eventually(received)


@dataclass
class Receiver:
    """An agency's webhook endpoint that fails its first ``failures`` requests."""

    failures: int
    audience: str = ""
    attempts: list[dict[str, str]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts.append(dict(request.headers))
        if len(self.attempts) <= self.failures:
            return web.Response(status=500)
        token = await request.text()
        header = jwt.get_unverified_header(token)
        key = next(k for k in self.keys if k["kid"] == header["kid"])
        claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["EdDSA"],
                            audience=self.audience, issuer="urn:dipgw:gateway")
        if claims["jti"] not in {c["jti"] for c in self.accepted}:
            self.accepted.append(claims)
        return web.Response(status=204)


def gateway_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path / "gw", "relay_interval_s": 0.05,
                              "push_retry_base_s": 0.05, "push_retry_cap_s": 0.2,
                              **overrides}
    return make_settings(**values)


def as_org(
    gateway: TestClient[Any, Any], settings: Settings, org: str, role: Role = Role.SYSTEM
) -> GatewayClient:
    return GatewayClient(str(gateway.make_url("")), credentials(settings, org, role),
                         session=gateway.session)


async def set_channel(
    gateway: TestClient[Any, Any], settings: Settings, org: str, body: dict[str, Any]
) -> dict[str, Any]:
    ig_lead = as_org(gateway, settings, org, Role.IG_LEAD)
    answer = await ig_lead.request("PUT", f"/v1/directory/{org}/delivery", json_body=body)
    return dict(answer.body)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    endpoint = Receiver(failures=3)
    app = web.Application()
    app.router.add_post("/dip/inbound", endpoint.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield endpoint, str(server.make_url("/dip/inbound"))
    await server.close()


async def test_a_webhook_failing_three_times_gets_the_message_exactly_once(
    aiohttp_client: Any, tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    endpoint, url = receiver
    settings = gateway_settings(tmp_path)
    gateway = await aiohttp_client(create_app(settings))
    recipient = RA1["to"][0]
    await set_channel(gateway, settings, recipient, {"channel": "webhook", "webhook_url": url})
    sender = as_org(gateway, settings, RA1["from"])
    endpoint.keys = list((await sender.request("GET", "/v1/delivery/keys")).body["keys"])
    endpoint.audience = recipient

    await sender.send(RA1)

    await until_status(sender, RA1["message_id"], "delivered")
    assert len(endpoint.attempts) == 4
    assert len(endpoint.accepted) == 1
    claims = endpoint.accepted[0]
    assert claims["jti"] == RA1["message_id"]
    assert claims["envelope"]["subject"] == RA1["subject"]
    assert [a["Dipgw-Attempt"] for a in endpoint.attempts] == ["1", "2", "3", "4"]
    assert {a["Content-Type"] for a in endpoint.attempts} == {"application/jose"}

    history = (await sender.status(RA1["message_id"]))["history"]
    failed = [e for e in history if e["status"] == "attempt_failed"]
    assert [e["detail"] for e in failed] == [
        f"webhook attempt {n}: answered 500" for n in (1, 2, 3)
    ]
    delivered_events = [e for e in history if e["status"] == "delivered"]
    assert len(delivered_events) == 1
    assert delivered_events[0]["detail"] == "webhook answered 204 on attempt 4"

    # Nothing more is pushed once delivered; acknowledgement works as for any channel.
    await asyncio.sleep(0.5)
    assert len(endpoint.attempts) == 4
    await as_org(gateway, settings, recipient).acknowledge(RA1["message_id"])
    assert (await sender.status(RA1["message_id"]))["status"] == "acknowledged"


async def test_an_unreachable_webhook_is_retried_until_the_channel_is_changed(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = gateway_settings(tmp_path)
    gateway = await aiohttp_client(create_app(settings))
    recipient = RA1["to"][0]
    await set_channel(gateway, settings, recipient,
                      {"channel": "webhook", "webhook_url": "http://127.0.0.1:9/closed"})
    sender = as_org(gateway, settings, RA1["from"])
    await sender.send(RA1)

    await until_failed_attempts(sender, RA1["message_id"], 3)
    status = await sender.status(RA1["message_id"])
    assert status["status"] == "accepted"
    assert "no answer" in status["history"][-1]["detail"]
    assert await as_org(gateway, settings, recipient).inbox() == []

    # The IG lead moves the organisation off its broken webhook: what waits follows.
    await set_channel(gateway, settings, recipient, {"channel": "pull"})

    await until_status(sender, RA1["message_id"], "delivered")
    [item] = await as_org(gateway, settings, recipient).inbox()
    assert item["message_id"] == RA1["message_id"]
    history = (await sender.status(RA1["message_id"]))["history"]
    assert history[-1]["detail"] == "the organisation now reads its inbox instead"


async def test_a_channel_change_does_not_wait_for_the_next_retry(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = gateway_settings(tmp_path, push_retry_base_s=600.0, push_retry_cap_s=600.0)
    gateway = await aiohttp_client(create_app(settings))
    recipient = RA1["to"][0]
    await set_channel(gateway, settings, recipient,
                      {"channel": "webhook", "webhook_url": "http://127.0.0.1:9/closed"})
    sender = as_org(gateway, settings, RA1["from"])
    await sender.send(RA1)

    await until_failed_attempts(sender, RA1["message_id"], 1)
    await set_channel(gateway, settings, recipient, {"channel": "pull"})

    # The next retry was ten minutes away.
    await until_status(sender, RA1["message_id"], "delivered", timeout_s=5.0)


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
async def test_the_pushed_message_is_what_the_policy_lets_the_recipient_see(
    aiohttp_client: Any, tmp_path: Path, receiver: tuple[Receiver, str], signed: bool
) -> None:
    """A webhook recipient gets the redacted envelope, the same one its inbox would hold;
    for a signed message, with the sender's SD-JWT presenting exactly that envelope."""
    endpoint, url = receiver
    endpoint.failures = 0
    endpoint.audience = ALERT["to"][0]
    settings = gateway_settings(tmp_path)
    gateway = await aiohttp_client(create_app(settings))
    pull_recipient, push_recipient = ALERT["to"][1], ALERT["to"][0]
    await set_channel(gateway, settings, push_recipient,
                      {"channel": "webhook", "webhook_url": url})
    sender = GatewayClient(str(gateway.make_url("")), credentials(settings, ALERT["from"]),
                           session=gateway.session, sign_messages=signed)
    endpoint.keys = list((await sender.request("GET", "/v1/delivery/keys")).body["keys"])
    answer = await sender.send(ALERT)
    redactions = {r["code"]: r["decision"]["redactions"] for r in answer.body["recipients"]}

    async def pushed() -> bool:
        return bool(endpoint.accepted)

    await eventually(pushed)
    claims = endpoint.accepted[0]
    assert redactions[push_recipient]  # the example is chosen for its redactions
    for pointer in redactions[push_recipient]:
        assert _absent(claims["envelope"], pointer)
    if signed:
        public = keys.public_jwk(keys.read_private(
            dev_key_path(settings.dev_keys_dir, ALERT["from"])))
        assert check_received(claims["envelope"], claims["sender_signature"], public).withheld
    else:
        assert "sender_signature" not in claims
    puller = as_org(gateway, settings, pull_recipient)
    assert await wait_for_inbox(puller, ALERT["message_id"])
    assert [m["message_id"] for m in await puller.inbox()] == [ALERT["message_id"]]


def _absent(document: dict[str, Any], pointer: str) -> bool:
    node: Any = document
    for part in pointer.strip("/").split("/"):
        if not isinstance(node, dict) or part not in node:
            return True
        node = node[part]
    return False


async def test_an_alert_e_mails_each_spoc_a_notice_without_personal_data_then_escalates(
    aiohttp_client: Any, tmp_path: Path, smtp_server: SmtpServer, tls_material: Any
) -> None:
    settings = gateway_settings(
        tmp_path,
        smtp=SmtpSettings.from_url(smtp_server.url(), "dipgw@gateway.example",
                                   ca_file=tls_material.ca_file),
        public_url="https://dipgw.example",
        alert_escalation_s=1,
        expiry_check_s=0.1,
    )
    gateway = await aiohttp_client(create_app(settings))
    sender = as_org(gateway, settings, ALERT["from"])
    await sender.send(ALERT)
    directory = {o["code"]: o for o in await sender.directory()}

    await until_mails(smtp_server, 2)
    addresses = sorted(r.rcpt_tos[0] for r in smtp_server.received)
    assert addresses == sorted(directory[code]["spoc"]["secure_email"] for code in ALERT["to"])
    for mail in smtp_server.received:
        assert mail.tls
        text = mail.content.decode("ascii")
        assert ALERT["message_id"] in text
        assert "https://dipgw.example/v1/inbox" in text
        for value in ALERT["subject"].values():
            assert value not in text
    # Each notice is noted in the history once the mail server took it, a moment after
    # the mail arrived there.
    async def both_notified() -> bool:
        history = (await sender.status(ALERT["message_id"]))["history"]
        return sorted(e["recipient"] for e in history if e["status"] == "notified") == sorted(
            ALERT["to"])

    await eventually(both_notified)

    # One SPOC acknowledges; the other is escalated and e-mailed again, once.
    await as_org(gateway, settings, ALERT["to"][0]).acknowledge(ALERT["message_id"])

    await until_mails(smtp_server, 3)
    await asyncio.sleep(0.5)
    assert len(smtp_server.received) == 3
    escalation = email.message_from_bytes(smtp_server.received[2].content,
                                          policy=email.policy.default)
    assert escalation["To"] == directory[ALERT["to"][1]]["spoc"]["secure_email"]
    assert "escalation" in str(escalation.get_body(("plain",)).get_content()).lower()


async def test_no_notice_goes_to_a_spoc_whose_organisation_turned_notices_off(
    aiohttp_client: Any, tmp_path: Path, smtp_server: SmtpServer, tls_material: Any
) -> None:
    settings = gateway_settings(
        tmp_path,
        smtp=SmtpSettings.from_url(smtp_server.url(), "dipgw@gateway.example",
                                   ca_file=tls_material.ca_file),
    )
    gateway = await aiohttp_client(create_app(settings))
    quiet, told = ALERT["to"]
    await set_channel(gateway, settings, quiet, {"channel": "pull", "email_notices": False})
    await as_org(gateway, settings, ALERT["from"]).send(ALERT)

    await until_mails(smtp_server, 1)
    await asyncio.sleep(0.3)
    directory = {o["code"]: o for o in await as_org(gateway, settings, told).directory()}
    assert [m.rcpt_tos for m in smtp_server.received] == [
        (directory[told]["spoc"]["secure_email"],)]
    assert (await as_org(gateway, settings, quiet).inbox())[0]["message_id"] == ALERT[
        "message_id"
    ]


async def test_a_notice_the_mail_server_refuses_is_retried_and_the_alert_still_delivered(
    aiohttp_client: Any, tmp_path: Path, smtp_server_plain: SmtpServer
) -> None:
    """A server without STARTTLS is never sent to: the notice waits, the alert does not."""
    settings = gateway_settings(
        tmp_path, smtp=SmtpSettings.from_url(smtp_server_plain.url(), "dipgw@gateway.example")
    )
    gateway = await aiohttp_client(create_app(settings))
    sender = as_org(gateway, settings, ALERT["from"])
    await sender.send(ALERT)

    await until_failed_attempts(sender, ALERT["message_id"], 4)
    status = await sender.status(ALERT["message_id"])
    assert status["status"] == "delivered"
    assert smtp_server_plain.received == []
    failed = [e["detail"] for e in status["history"] if e["status"] == "attempt_failed"]
    assert all("STARTTLS" in detail for detail in failed)


async def test_the_ig_lead_chooses_a_channel_and_every_problem_is_named(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    ig_lead = as_org(client, settings, "CJIT-NFK", Role.IG_LEAD)
    with pytest.raises(GatewayProblem) as refused:
        await ig_lead.request("PUT", "/v1/directory/CJIT-NFK/delivery",
                              json_body={"channel": "pigeon", "colour": "grey",
                                         "email_notices": "yes"})
    assert refused.value.status == 422
    assert sorted(v["pointer"] for v in refused.value.violations) == [
        "/channel", "/colour", "/email_notices"]
    for body in (
        {"channel": "webhook"},
        {"channel": "webhook", "webhook_url": "http://agency.example/hook"},
        {"channel": "webhook", "webhook_url": "https://user:pw@agency.example/hook"},
        {"channel": "mesh", "mesh_mailbox": "lower case"},
        {"channel": "pull", "webhook_url": "https://agency.example/hook"},
    ):
        with pytest.raises(GatewayProblem) as refused:
            await ig_lead.request("PUT", "/v1/directory/CJIT-NFK/delivery", json_body=body)
        assert refused.value.status == 422, body

    chosen = await ig_lead.request(
        "PUT", "/v1/directory/CJIT-NFK/delivery",
        json_body={"channel": "mesh", "mesh_mailbox": "X26ABC123"},
    )
    assert chosen.body == {"code": "CJIT-NFK", "channel": "mesh", "mesh_mailbox": "X26ABC123",
                           "email_notices": True}
    own = as_org(client, settings, "CJIT-NFK")
    assert (await own.request("GET", "/v1/directory/CJIT-NFK/delivery")).body == chosen.body
    listed = {o["code"]: o for o in await own.directory()}
    assert listed["CJIT-NFK"]["delivery"] == {"channel": "mesh"}

    with pytest.raises(GatewayProblem) as other:
        await as_org(client, settings, "CJIT-SFK").request(
            "GET", "/v1/directory/CJIT-NFK/delivery")
    assert other.value.status == 403
    with pytest.raises(GatewayProblem) as not_ig:
        await own.request("PUT", "/v1/directory/CJIT-NFK/delivery",
                          json_body={"channel": "pull"})
    assert not_ig.value.status == 403
    with pytest.raises(GatewayProblem) as missing:
        await ig_lead.request("PUT", "/v1/directory/NOPE-1/delivery",
                              json_body={"channel": "pull"})
    assert missing.value.status == 404

    entries = [json.loads(bytes(row[0])) for row in query(
        settings, "SELECT entry FROM audit_entries ORDER BY idx")]
    changes = [e for e in entries if e["action"] == "directory.updated"]
    assert changes[-1]["details"] == {"delivery_channel": {"CJIT-NFK": {
        "channel": "mesh", "mesh_mailbox": "X26ABC123", "email_notices": True}}}
    assert changes[-1]["actor"].startswith("CJIT-NFK/")


async def test_importing_the_spoc_list_keeps_each_organisations_channel(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    ig_lead = as_org(client, settings, "CJIT-NFK", Role.IG_LEAD)
    await ig_lead.request("PUT", "/v1/directory/CJIT-NFK/delivery",
                          json_body={"channel": "amqp"})
    csv = ("code,organisation,kind,area,spoc_name,secure_email\n"
           "CJIT-NFK,Norfolk CJIT,cjit,Norfolk,New SPOC,new@norfolk-cjit.secure.example\n")
    operators = [
        GatewayClient(str(client.make_url("")), person_credentials(settings, person_id),
                      session=client.session)
        for person_id in ("dipgw-ops.operator", "dipgw-ops.operator2")
    ]
    proposal = await operators[0].request(
        "POST", "/v1/directory/import", json_body={"csv": csv, "apply": True}
    )
    await operators[1].request(
        "POST", f"/v1/directory/imports/{proposal.body['import_id']}/approve", json_body={}
    )
    listed = (await ig_lead.request("GET", "/v1/directory")).body["organisations"]
    norfolk = next(o for o in listed if o["code"] == "CJIT-NFK")
    assert norfolk["spoc"]["secure_email"] == "new@norfolk-cjit.secure.example"
    answer = await ig_lead.request("GET", "/v1/directory/CJIT-NFK/delivery")
    assert answer.body["channel"] == "amqp"


@pytest.mark.parametrize(("settings_", "production", "problem"), [
    (ChannelSettings(DeliveryChannel.WEBHOOK, webhook_url="https://a.example/h"), True, None),
    (ChannelSettings(DeliveryChannel.WEBHOOK, webhook_url="http://127.0.0.1:8/h"), False, None),
    (ChannelSettings(DeliveryChannel.WEBHOOK, webhook_url="http://127.0.0.1:8/h"), True,
     "must use https"),
    (ChannelSettings(DeliveryChannel.WEBHOOK, webhook_url="https://a.example:99999/h"), True,
     "valid port"),
    (ChannelSettings(DeliveryChannel.WEBHOOK, webhook_url="ftp://a.example/h"), True,
     "https:// URL"),
    (ChannelSettings(DeliveryChannel.MESH, mesh_mailbox="X26ABC123"), True, None),
    (ChannelSettings(DeliveryChannel.MESH), True, "needs mesh_mailbox"),
    (ChannelSettings(DeliveryChannel.AMQP, mesh_mailbox="X26ABC123"), True, "only for the mesh"),
    (ChannelSettings(DeliveryChannel.PULL), True, None),
])
def test_channel_problems(settings_: ChannelSettings, production: bool,
                          problem: str | None) -> None:
    found = channel_problems(settings_, production=production)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0]
