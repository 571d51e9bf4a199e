"""Consent register and policy editing through the HTTP API, on the real app."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.client import GatewayClient, GatewayProblem
from gateway.config import Settings
from gateway.domain.model import Role
from gateway.transport.base import TransportState
from gateway.transport.inprocess import InProcessTransport
from tests.backends import make_settings
from tests.conftest import EXAMPLES, ROOT, credentials, load
from tests.test_messages_end_to_end import wait_for_inbox

PROACTIVE_DIR = load(
    EXAMPLES / "dir_transfer" / "valid-proactive-norfolk-to-cambridgeshire-with-consent.json"
)
SUBJECT = PROACTIVE_DIR["subject"]
DEFAULT_POLICY = (ROOT / "policies" / "dip-default.yaml").read_text()


class HeldTransport(InProcessTransport):
    """The in-process transport, held back as a broker outage would: nothing is
    delivered until ``release``."""

    delivers_at_acceptance = False  # it stands in for a broker: the outbox path

    held = True

    @property
    def state(self) -> TransportState:
        return TransportState.DEGRADED if self.held else super().state


@pytest.fixture
async def held(
    aiohttp_client: Any, tmp_path: Path
) -> tuple[TestClient[Any, Any], Settings, HeldTransport]:
    settings = make_settings(data_dir=tmp_path, relay_interval_s=0.05)
    transport = HeldTransport()
    return await aiohttp_client(create_app(settings, transport=transport)), settings, transport


def as_org(
    test_client: TestClient[Any, Any], settings: Settings, org: str, role: Role = Role.SYSTEM,
) -> GatewayClient:
    """The organisation's system, or its demo person holding ``role``."""
    creds = credentials(settings, org, role)
    return GatewayClient(str(test_client.make_url("")), creds, session=test_client.session)


def consent_request(**overrides: Any) -> dict[str, Any]:
    return {
        "subject": SUBJECT,
        "form": "written",
        "provision": {"type": "permit", "actor_roles": ["cjit"], "purpose": ["case_transfer"]},
        "information_given": "Told that her DIR goes to Cambridgeshire CJIT for her appointment.",
        **overrides,
    }


async def post(client: GatewayClient, path: str, body: Any) -> Any:
    return (await client.request("POST", path, json_body=body)).body


async def test_withdrawal_stops_an_accepted_consent_based_message_not_yet_delivered(
    held: tuple[TestClient[Any, Any], Settings, HeldTransport],
) -> None:
    test_client, settings, transport = held
    sender = as_org(test_client, settings, "CJIT-NFK")
    recipient = as_org(test_client, settings, "CJIT-CAM")
    consent = await post(sender, "/v1/consents", consent_request())
    assert consent["resourceType"] == "Consent" and consent["status"] == "active"

    answer = await sender.send(PROACTIVE_DIR)
    assert answer.body["decision"]["consent"] == "required"
    assert answer.body["decision"]["consent_state"] == "written"

    withdrawn = await post(sender, f"/v1/consents/{consent['id']}/withdraw",
                           {"reason": "changed her mind"})
    assert withdrawn["stopped"] == [
        {"message_id": PROACTIVE_DIR["message_id"], "recipient": "CJIT-CAM"}
    ]
    transport.held = False
    await asyncio.sleep(0.5)

    assert await recipient.inbox(500) == []
    history = (await sender.status(PROACTIVE_DIR["message_id"]))["history"]
    assert [(e["status"], e.get("recipient")) for e in history] == [
        ("accepted", None), ("refused", "CJIT-CAM"),
    ]
    reports = [m for m in await sender.inbox(500) if m["type"] == "delivery_report"]
    assert reports[0]["envelope"]["body"]["reason"] == "refused"

    again = {**PROACTIVE_DIR, "message_id": str(uuid.uuid4())}
    with pytest.raises(GatewayProblem) as refused:
        await sender.send(again)
    assert refused.value.status == 403
    # The register's withdrawal beats the declaration of consent in the body.
    assert refused.value.problem["decision"]["denied_because"] == "consent_not_satisfied"
    assert refused.value.problem["decision"]["consent_state"] == "withdrawn"


async def test_expired_consent_is_not_consent(
    held: tuple[TestClient[Any, Any], Settings, HeldTransport],
) -> None:
    test_client, settings, _ = held
    sender = as_org(test_client, settings, "CJIT-NFK")
    past = datetime.now(UTC) - timedelta(days=30)
    await post(sender, "/v1/consents", consent_request(period={
        "start": (past - timedelta(days=30)).isoformat(), "end": past.isoformat(),
    }))

    with pytest.raises(GatewayProblem) as refused:
        await sender.send(PROACTIVE_DIR)

    assert refused.value.problem["decision"]["consent_state"] == "expired"


async def test_consents_are_listed_by_pnc_or_by_name_and_birth_date(
    held: tuple[TestClient[Any, Any], Settings, HeldTransport],
) -> None:
    test_client, settings, _ = held
    cjit = as_org(test_client, settings, "CJIT-NFK")
    await post(cjit, "/v1/consents", consent_request())
    by_pnc = await cjit.request("GET", "/v1/consents", params={"pnc_id": SUBJECT["pnc_id"]})
    by_name = await cjit.request("GET", "/v1/consents", params={
        "given_name": "GEMMA", "family_name": " baxter", "date_of_birth": SUBJECT["date_of_birth"],
    })
    assert len(by_pnc.body["consents"]) == len(by_name.body["consents"]) == 1

    police = as_org(test_client, settings, "POL-SFK-IPS")
    with pytest.raises(GatewayProblem) as refused:
        await police.request("GET", "/v1/consents", params={"pnc_id": SUBJECT["pnc_id"]})
    assert refused.value.status == 403
    with pytest.raises(GatewayProblem) as invalid:
        await post(cjit, "/v1/consents", consent_request(form="nodded"))
    assert invalid.value.status == 422
    assert [v["pointer"] for v in invalid.value.violations] == ["/form"]


async def test_two_ig_leads_are_needed_to_change_the_policy(
    held: tuple[TestClient[Any, Any], Settings, HeldTransport],
) -> None:
    test_client, settings, transport = held
    transport.held = False
    author = as_org(test_client, settings, "CJIT-SFK", Role.IG_LEAD)
    second = as_org(test_client, settings, "CJIT-NFK", Role.IG_LEAD)
    system = as_org(test_client, settings, "CJIT-SFK")
    before = (await author.request("GET", "/v1/policy")).body["version"]
    draft = DEFAULT_POLICY.replace("policy: dip-default", "policy: dip-revised", 1)

    with pytest.raises(GatewayProblem) as not_ig:
        await post(system, "/v1/policy/versions", {"text": draft})
    assert not_ig.value.status == 403

    proposed = await post(author, "/v1/policy/versions", {"text": draft})
    assert proposed["author"] == "cjit-sfk.ig-lead" and proposed["approved_by"] is None
    with pytest.raises(GatewayProblem) as own:
        await post(author, f"/v1/policy/versions/{proposed['version']}/approve", {})
    assert own.value.status == 403
    assert (await author.request("GET", "/v1/policy")).body["version"] == before

    approved = await post(second, f"/v1/policy/versions/{proposed['version']}/approve", {})
    assert approved["approved_by"] == "cjit-nfk.ig-lead"
    assert (await author.request("GET", "/v1/policy")).body["version"] == proposed["version"]

    ra1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
    answer = await as_org(test_client, settings, ra1["from"]).send(ra1)
    assert answer.body["decision"]["policy_version"] == proposed["version"]
    item = (await wait_for_inbox(as_org(test_client, settings, "CJIT-NFK"), ra1["message_id"]))[0]
    assert item["decision"]["policy_version"] == proposed["version"]


async def test_future_effective_time_is_honoured(
    held: tuple[TestClient[Any, Any], Settings, HeldTransport],
) -> None:
    test_client, settings, _ = held
    author = as_org(test_client, settings, "CJIT-SFK", Role.IG_LEAD)
    second = as_org(test_client, settings, "CJIT-NFK", Role.IG_LEAD)
    draft = DEFAULT_POLICY.replace("policy: dip-default", "policy: dip-next", 1)
    proposed = await post(author, "/v1/policy/versions", {"text": draft})
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    await post(second, f"/v1/policy/versions/{proposed['version']}/approve",
               {"effective_from": later})
    assert (await author.request("GET", "/v1/policy")).body["name"] == "dip-default"


async def test_diff_and_simulate_show_exactly_what_a_draft_changes(
    held: tuple[TestClient[Any, Any], Settings, HeldTransport],
) -> None:
    test_client, settings, transport = held
    transport.held = False
    ig = as_org(test_client, settings, "CJIT-SFK", Role.IG_LEAD)
    ra1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
    await as_org(test_client, settings, ra1["from"]).send(ra1)
    draft = DEFAULT_POLICY.replace("id: ra1-statutory\n    effect: permit",
                                   "id: ra1-statutory\n    effect: forbid", 1)
    assert draft != DEFAULT_POLICY

    changed = await post(ig, "/v1/policy/diff", {"after": {"text": draft}})
    assert changed["changed"] > 0
    assert {c["situation"]["type"] for c in changed["changes"]} == {"ra1_notice"}
    assert all(c["after"]["decision"] == "deny" for c in changed["changes"])

    simulated = await post(ig, "/v1/policy/simulate", {"text": draft})
    assert simulated["replayed"] >= 1
    assert [c["situation"]["message_id"] for c in simulated["changes"]] == [ra1["message_id"]]

    same = await post(ig, "/v1/policy/diff", {"after": {"text": DEFAULT_POLICY}})
    assert same["changed"] == 0


async def test_invalid_policy_is_refused_with_pointers(
    held: tuple[TestClient[Any, Any], Settings, HeldTransport],
) -> None:
    test_client, settings, _ = held
    ig = as_org(test_client, settings, "CJIT-SFK", Role.IG_LEAD)
    with pytest.raises(GatewayProblem) as invalid:
        await post(ig, "/v1/policy/validate", {"text": "policy: x\nrules:\n  - id: a\n"})
    assert invalid.value.status == 422
    assert invalid.value.violations


