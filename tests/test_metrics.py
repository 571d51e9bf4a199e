"""``GET /metrics`` on the real app: counters move by what happened, backlog and checkpoint
figures come from the database, only DIPGW_METRICS_NETWORKS may scrape, and nothing about
a person, a message or an organisation is in the output."""

from __future__ import annotations

import ipaddress
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.client import GatewayClient, GatewayProblem
from gateway.config import Settings
from gateway.domain.errors import ConfigurationError, InvalidMessage, PolicyRefused
from gateway.http.services import SERVICES
from gateway.metrics import LEADER_ROLES, POLICY_REFUSAL, Metrics
from gateway.services.undelivered import DeadLetterRecorder, expire_unacknowledged
from gateway.transport.base import Delivery
from tests.backends import make_settings
from tests.conftest import EXAMPLES, AgencyFactory, credentials, load
from tests.test_consent_and_policy_api import HeldTransport
from tests.test_messages_end_to_end import wait_for_inbox

RA1 = [load(p) for p in sorted((EXAMPLES / "ra1_notice").glob("valid*.json"))[:2]]
REFUSED = load(EXAMPLES / "gate_pickup" / "refused-request-consent-not-obtained.json")
INVALID = load(sorted((EXAMPLES / "ra1_notice").glob("invalid*.json"))[0])
OPENMETRICS = "application/openmetrics-text; version=1.0.0"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample by name and labels; fails if the output is not the text format."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def scrape(client: TestClient[Any, Any]) -> tuple[str, Samples]:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await response.text()
    return text, parse(text)


def as_org(client: TestClient[Any, Any], settings: Settings, org: str) -> GatewayClient:
    return GatewayClient(
        str(client.make_url("")), credentials(settings, org), session=client.session
    )


def personal_values(*documents: dict[str, Any]) -> set[str]:
    """What the output must never contain: the people, the messages, the organisations."""
    found = {document["message_id"] for document in documents}
    for document in documents:
        found.update(str(v) for v in document["subject"].values() if isinstance(v, str))
        found.update([document["from"], *document.get("to", [])])
    return found


class Clock:
    """The app's clock, moved on by hand so that ages are exact."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


async def test_counts_by_type_and_outcome_and_shows_nothing_personal(
    client: TestClient[Any, Any], agency: AgencyFactory
) -> None:
    _, before = await scrape(client)
    for document in RA1:
        assert (await agency(document["from"]).send(document)).status == 202
    # An identical resubmission is the same message: not counted again.
    assert (await agency(RA1[0]["from"]).send(RA1[0])).status == 202
    with pytest.raises(GatewayProblem) as refused:
        await agency(REFUSED["from"]).send(REFUSED)
    assert refused.value.status == 403
    with pytest.raises(GatewayProblem) as invalid:
        await agency(INVALID["from"]).send(INVALID)
    assert invalid.value.status == 422

    text, after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("dipgw_messages_accepted_total", type="ra1_notice") == 2
    assert moved("dipgw_messages_accepted_total", type="gate_pickup") == 0
    assert moved("dipgw_messages_refused_total", type="gate_pickup", reason=POLICY_REFUSAL) == 1
    assert moved("dipgw_messages_refused_total", type="ra1_notice", reason=POLICY_REFUSAL) == 0
    assert value(after, "dipgw_messages_refused_total", type="ra1_notice",
                 reason=InvalidMessage.slug) == 1
    assert PolicyRefused.slug == POLICY_REFUSAL
    assert value(after, "dipgw_commit_seconds_count") > value(before, "dipgw_commit_seconds_count")
    assert value(after, "dipgw_commit_batch_size_count") == value(
        after, "dipgw_commit_seconds_count"
    )
    assert value(after, "dipgw_commit_batch_size_sum") >= value(
        after, "dipgw_commit_batch_size_count"
    )
    for secret in personal_values(*RA1, REFUSED, INVALID):
        assert secret not in text


async def test_a_document_of_no_known_type_counts_as_other(
    client: TestClient[Any, Any], agency: AgencyFactory
) -> None:
    hostile = {**RA1[0], "message_id": str(uuid.uuid4()), "type": "x" * 40}
    with pytest.raises(GatewayProblem):
        await agency(RA1[0]["from"]).send(hostile)

    text, samples = await scrape(client)

    assert sum(v for (name, labels), v in samples.items()
               if name == "dipgw_messages_refused_total" and ("type", "other") in labels) == 1
    assert "x" * 40 not in text


async def test_deliveries_by_channel(client: TestClient[Any, Any], agency: AgencyFactory) -> None:
    document = RA1[0]
    await agency(document["from"]).send(document)
    for code in document["to"]:
        assert await wait_for_inbox(agency(code), document["message_id"])

    _, samples = await scrape(client)

    assert value(samples, "dipgw_deliveries_total", channel="inbox") == len(document["to"])
    for channel in ("amqp", "webhook", "mesh", "email"):
        assert value(samples, "dipgw_deliveries_total", channel=channel) == 0


@pytest.fixture
async def held(
    aiohttp_client: Any, tmp_path: Path
) -> tuple[TestClient[Any, Any], Settings, Clock]:
    """The app with its transport held back (a broker outage) and a hand-moved clock."""
    settings = make_settings(data_dir=tmp_path, relay_interval_s=0.05)
    clock = Clock()
    app = create_app(settings, transport=HeldTransport(), clock=clock)
    return await aiohttp_client(app), settings, clock


async def test_backlog_is_the_unpublished_outbox_and_its_age(
    held: tuple[TestClient[Any, Any], Settings, Clock],
) -> None:
    client, settings, clock = held
    _, before = await scrape(client)
    assert value(before, "dipgw_outbox_backlog") == 0
    assert value(before, "dipgw_outbox_oldest_age_seconds") == 0
    for document in RA1:
        await as_org(client, settings, document["from"]).send(document)
    clock.now += timedelta(seconds=90)

    _, samples = await scrape(client)

    assert value(samples, "dipgw_outbox_backlog") == sum(len(d["to"]) for d in RA1)
    assert value(samples, "dipgw_outbox_oldest_age_seconds") == 90
    for channel in ("webhook", "mesh", "email"):
        assert value(samples, "dipgw_dispatch_backlog", channel=channel) == 0
        assert value(samples, "dipgw_dispatch_oldest_age_seconds", channel=channel) == 0


async def test_checkpoint_size_and_age(
    held: tuple[TestClient[Any, Any], Settings, Clock],
) -> None:
    client, settings, clock = held
    services = client.app[SERVICES]
    await as_org(client, settings, RA1[0]["from"]).send(RA1[0])
    size, _ = await services.checkpointer.integrate() or (0, "")
    clock.now += timedelta(seconds=42)

    _, samples = await scrape(client)

    assert size > 0
    assert value(samples, "dipgw_checkpoint_size") == size
    assert value(samples, "dipgw_checkpoint_age_seconds") == 42
    assert value(samples, "dipgw_audit_log_entries") == await services.audit.size()


async def test_dead_letters_and_expiry_are_counted(
    held: tuple[TestClient[Any, Any], Settings, Clock],
) -> None:
    client, settings, clock = held
    services = client.app[SERVICES]
    first, second = RA1
    await as_org(client, settings, first["from"]).send(first)
    await as_org(client, settings, second["from"]).send(second)
    recorder = DeadLetterRecorder(
        services.messages, services.audit, services.notifier, services.metrics, clock
    )
    dead = Delivery(first["message_id"], first["to"][0], first["type"], b"{}")
    await recorder(dead, "delivery limit reached")
    await recorder(dead, "delivery limit reached")  # the same share: closed once
    expired = await expire_unacknowledged(
        services.messages, services.audit, services.notifier, services.metrics,
        timedelta(seconds=0), clock.now + timedelta(seconds=1),
    )

    _, samples = await scrape(client)

    assert value(samples, "dipgw_dead_letters_total") == 1
    assert expired > 0
    assert value(samples, "dipgw_messages_expired_total") == len(second["to"]) + len(
        first["to"]) - 1


async def test_leader_roles_this_process_runs(client: TestClient[Any, Any]) -> None:
    _, samples = await scrape(client)

    # No MESH account configured: this process does not poll MESH acknowledgements.
    assert {role: value(samples, "dipgw_leader", role=role) for role in LEADER_ROLES} == {
        "audit-checkpointer": 1, "expiry": 1, "alert-escalation": 1,
        "mesh-acknowledgements": 0,
    }


async def test_openmetrics_when_asked(client: TestClient[Any, Any]) -> None:
    response = await client.get("/metrics", headers={"Accept": OPENMETRICS})

    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await response.text()).endswith("# EOF\n")


async def test_anyone_outside_the_metrics_networks_gets_not_found(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = make_settings(
        data_dir=tmp_path, metrics_networks=(ipaddress.ip_network("10.0.0.0/8"),)
    )
    client = await aiohttp_client(create_app(settings))

    response = await client.get("/metrics")

    assert response.status == 404
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert "dipgw_" not in await response.text()


async def test_a_client_forwarded_by_a_trusted_local_proxy_is_not_local(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = make_settings(
        data_dir=tmp_path, rate_trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),)
    )
    client = await aiohttp_client(create_app(settings))

    outside = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    inside = await client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})

    assert outside.status == 404
    assert inside.status == 200


def test_metrics_networks_setting() -> None:
    assert Settings.from_env({}).metrics_networks == (
        ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"),
    )
    assert Settings.from_env(
        {"DIPGW_METRICS_NETWORKS": "10.1.0.0/16, 192.0.2.7"}
    ).metrics_networks == (ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("192.0.2.7"))
    with pytest.raises(ConfigurationError, match="DIPGW_METRICS_NETWORKS"):
        Settings.from_env({"DIPGW_METRICS_NETWORKS": "10.0.0.0/33"})


def test_each_app_counts_in_its_own_registry() -> None:
    one, two = Metrics.create(), Metrics.create()
    one.accepted.labels(type="ra1_notice").inc()

    assert one.registry.get_sample_value(
        "dipgw_messages_accepted_total", {"type": "ra1_notice"}) == 1
    assert two.registry.get_sample_value(
        "dipgw_messages_accepted_total", {"type": "ra1_notice"}) == 0
