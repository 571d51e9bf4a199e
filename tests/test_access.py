"""Who may send what to whom, and who may read what: refusals are 403 problems that store
nothing; a recipient sees only its own share of a message, the sender sees all of it."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.client import GatewayClient
from gateway.config import Settings
from gateway.domain.model import Role
from tests.conftest import EXAMPLES, AgencyFactory, bearer, load, table_counts

RA1 = EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json"  # POL-SFK-IPS → CJIT-NFK
DISENGAGEMENT = EXAMPLES / "disengagement_alert" / "valid-statutory-failed-to-attend-initial.json"
CARAT_RELEASE = EXAMPLES / "carat_referral" / "valid-release-end-of-sentence-no-pickup.json"
CARAT_INTO_CUSTODY = EXAMPLES / "carat_referral" / "valid-remand-hmp-norwich-methadone.json"
COURT_THREE = EXAMPLES / "court_outcome" / "valid-custodial-sentence-crown-court.json"
DIR_TRANSFER = EXAMPLES / "dir_transfer" / "valid-enforcement-suffolk-to-norfolk.json"


def fresh(path: Path, **changes: Any) -> dict[str, Any]:
    document = load(path)
    document["message_id"] = str(uuid.uuid4())
    document.update(changes)
    return document


async def assert_forbidden(response: Any) -> dict[str, Any]:
    assert response.status == 403
    assert response.content_type == "application/problem+json"
    problem: dict[str, Any] = json.loads(await response.text())
    assert problem["type"] == "urn:dipgw:problem:forbidden"
    assert problem["title"] == "Not allowed"
    assert problem["status"] == 403
    assert isinstance(problem["detail"], str) and problem["detail"]
    return problem


async def submit_refused(
    client: TestClient[Any, Any],
    settings: Settings,
    org: str,
    document: Any,
    role: Role = Role.SYSTEM,
) -> dict[str, Any]:
    """POST as ``org``; expect 403 and no change at all to what is stored."""
    before = table_counts(settings)
    response = await client.post(
        "/v1/messages", json=document, headers=bearer(settings, org, role)
    )
    problem = await assert_forbidden(response)
    assert table_counts(settings) == before
    if isinstance(document, dict) and "message_id" in document:
        # Nothing under this id exists afterwards, even for the organisation that tried.
        lookup = await client.get(
            f"/v1/messages/{document['message_id']}", headers=bearer(settings, org)
        )
        assert lookup.status == 404
    return problem


async def wait_for_delivered(sender: GatewayClient, message_id: str, recipients: list[str]) -> None:
    for _ in range(200):
        status = await sender.status(message_id)
        delivered = {e.get("recipient") for e in status["history"] if e["status"] == "delivered"}
        if set(recipients) <= delivered:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{message_id} was not delivered to all of {recipients}")


# --- sending ------------------------------------------------------------------------------


async def test_sending_as_another_organisation_is_refused(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    document = fresh(RA1)
    assert document["from"] == "POL-SFK-IPS"
    problem = await submit_refused(client, settings, "CJIT-SFK", document)
    assert "POL-SFK-IPS" in problem["detail"] and "CJIT-SFK" in problem["detail"]


async def test_sending_as_another_organisation_is_refused_before_validation(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    """An impostor learns nothing about whether the document is otherwise valid."""
    document = fresh(RA1)
    del document["body"]
    document["to"] = ["CJIT-NOWHERE"]
    await submit_refused(client, settings, "CJIT-SFK", document)


async def test_a_kind_may_not_send_a_type_it_never_sends(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    document = fresh(DISENGAGEMENT, **{"from": "POL-SFK-IPS", "to": ["CJIT-SFK"]})
    problem = await submit_refused(client, settings, "POL-SFK-IPS", document)
    assert "disengagement_alert" in problem["detail"]


@pytest.mark.parametrize(
    "org,path",
    [
        ("CJIT-SFK", RA1),  # only police send RA1
        ("CARAT-NWI", DIR_TRANSFER),  # only CJITs transfer a DIR
        ("PRB-EOE", COURT_THREE),  # only courts send outcomes
        ("CRT-IPS-MC", DISENGAGEMENT),  # only CJITs alert on disengagement
    ],
    ids=["cjit-ra1", "carat-dir-transfer", "probation-court-outcome", "court-disengagement"],
)
async def test_other_kind_type_pairs_are_refused(
    org: str, path: Path, client: TestClient[Any, Any], settings: Settings
) -> None:
    await submit_refused(client, settings, org, fresh(path, **{"from": org}))


async def test_recipient_of_a_kind_that_may_not_receive_the_type_is_refused(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    # The named CJIT is there; probation may not receive an RA1 from the police.
    document = fresh(RA1, to=["CJIT-NFK", "PRB-EOE"])
    problem = await submit_refused(client, settings, "POL-SFK-IPS", document)
    assert "PRB-EOE" in problem["detail"]


async def test_ra1_only_to_probation_is_refused(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    document = fresh(RA1, to=["PRB-EOE"])
    document["body"]["initial_assessment"]["organisation"] = "PRB-EOE"
    before = table_counts(settings)
    response = await client.post(
        "/v1/messages", json=document, headers=bearer(settings, "POL-SFK-IPS")
    )
    # Whether the recipient's kind (403) or the document (422) is reported first,
    # the message is refused and nothing is stored.
    assert response.status in (403, 422)
    assert response.content_type == "application/problem+json"
    assert table_counts(settings) == before


async def test_one_forbidden_recipient_refuses_the_whole_message(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    # Courts may send outcomes to CJIT, probation and CARAT teams, never to the police.
    document = fresh(COURT_THREE, to=["CJIT-NFK", "CARAT-NWI", "PRB-EOE", "POL-NFK-NOR"])
    problem = await submit_refused(client, settings, "CRT-NOR-CC", document)
    assert "POL-NFK-NOR" in problem["detail"]


async def test_carat_referral_from_a_cjit_with_release_direction_is_refused(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    document = fresh(CARAT_RELEASE, **{"from": "CJIT-NFK", "to": ["CARAT-NWI"]})
    assert document["body"]["direction"] == "release"
    problem = await submit_refused(client, settings, "CJIT-NFK", document)
    assert "into_custody" in problem["detail"]


async def test_carat_referral_from_a_carat_team_into_custody_is_refused(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    document = fresh(CARAT_INTO_CUSTODY, **{"from": "CARAT-NWI", "to": ["CJIT-NFK"]})
    assert document["body"]["direction"] == "into_custody"
    problem = await submit_refused(client, settings, "CARAT-NWI", document)
    assert "release" in problem["detail"]


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.IG_LEAD], ids=lambda r: r.value)
async def test_oversight_roles_may_not_send(
    role: Role, client: TestClient[Any, Any], settings: Settings
) -> None:
    await submit_refused(client, settings, "POL-SFK-IPS", fresh(RA1), role)


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.IG_LEAD], ids=lambda r: r.value)
async def test_oversight_roles_may_not_send_even_a_non_object(
    role: Role, client: TestClient[Any, Any], settings: Settings
) -> None:
    await submit_refused(client, settings, "POL-SFK-IPS", ["not", "an", "envelope"], role)


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.IG_LEAD], ids=lambda r: r.value)
async def test_oversight_roles_may_not_use_the_policy_dry_run(
    role: Role, client: TestClient[Any, Any], settings: Settings
) -> None:
    response = await client.post(
        "/v1/policy/decide", json=fresh(RA1), headers=bearer(settings, "POL-SFK-IPS", role)
    )
    await assert_forbidden(response)


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.IG_LEAD], ids=lambda r: r.value)
@pytest.mark.parametrize("path", ["/v1/inbox", "/v1/inbox/stream"])
async def test_oversight_roles_may_not_read_an_inbox(
    role: Role, path: str, client: TestClient[Any, Any], settings: Settings
) -> None:
    response = await client.get(path, headers=bearer(settings, "CJIT-NFK", role))
    await assert_forbidden(response)


async def test_spoc_role_may_send(agency: AgencyFactory) -> None:
    answer = await agency("POL-SFK-IPS", Role.SPOC).send(fresh(RA1))
    assert answer.status == 202


# --- reading ------------------------------------------------------------------------------


@pytest.fixture
async def sent_to_three(agency: AgencyFactory) -> dict[str, Any]:
    """A court outcome from CRT-NOR-CC to CJIT-NFK, CARAT-NWI and PRB-EOE, delivered."""
    document = fresh(COURT_THREE)
    assert document["to"] == ["CJIT-NFK", "CARAT-NWI", "PRB-EOE"]
    sender = agency(document["from"])
    assert (await sender.send(document)).status == 202
    await wait_for_delivered(sender, document["message_id"], document["to"])
    return document


@pytest.mark.parametrize("outsider", ["CJIT-SFK", "POL-NFK-NOR", "CRT-IPS-MC"])
async def test_an_outsider_may_not_read_a_message(
    outsider: str,
    sent_to_three: dict[str, Any],
    client: TestClient[Any, Any],
    settings: Settings,
) -> None:
    message_id = sent_to_three["message_id"]
    response = await client.get(f"/v1/messages/{message_id}", headers=bearer(settings, outsider))
    problem = await assert_forbidden(response)
    assert "CJIT-NFK" not in json.dumps(problem)


async def test_an_outsider_may_not_read_a_message_by_its_upper_case_id(
    sent_to_three: dict[str, Any], client: TestClient[Any, Any], settings: Settings
) -> None:
    message_id = sent_to_three["message_id"].upper()
    response = await client.get(
        f"/v1/messages/{message_id}", headers=bearer(settings, "CJIT-SFK")
    )
    await assert_forbidden(response)


async def test_reading_another_organisations_inbox_is_refused(
    sent_to_three: dict[str, Any], client: TestClient[Any, Any], settings: Settings
) -> None:
    response = await client.get("/v1/inbox?org=CJIT-NFK", headers=bearer(settings, "CJIT-SFK"))
    problem = await assert_forbidden(response)
    assert "messages" not in problem
    stream = await client.get(
        "/v1/inbox/stream?org=CJIT-NFK", headers=bearer(settings, "CJIT-SFK")
    )
    await assert_forbidden(stream)


async def test_naming_ones_own_inbox_is_allowed(
    sent_to_three: dict[str, Any], client: TestClient[Any, Any], settings: Settings
) -> None:
    response = await client.get("/v1/inbox?org=CJIT-NFK", headers=bearer(settings, "CJIT-NFK"))
    assert response.status == 200
    body = await response.json()
    assert body["organisation"] == "CJIT-NFK"
    assert [m["message_id"] for m in body["messages"]] == [sent_to_three["message_id"]]


async def test_a_recipient_sees_only_its_own_share(
    sent_to_three: dict[str, Any], agency: AgencyFactory
) -> None:
    message_id = sent_to_three["message_id"]
    for code in sent_to_three["to"]:
        status = await agency(code).status(message_id)
        assert status["message_id"] == message_id
        assert status["from"] == sent_to_three["from"]
        assert status["recipients"] == [code]
        assert status["history"], "a recipient sees at least its delivery"
        assert {e.get("recipient") for e in status["history"]} <= {None, code}
        assert ("delivered", code) in [(e["status"], e.get("recipient")) for e in status["history"]]
        others = [c for c in sent_to_three["to"] if c != code]
        assert not any(other in json.dumps(status) for other in others)


async def test_a_recipients_acknowledgement_is_not_shown_to_other_recipients(
    sent_to_three: dict[str, Any], agency: AgencyFactory
) -> None:
    message_id = sent_to_three["message_id"]
    await agency("CJIT-NFK").acknowledge(message_id)
    carat = await agency("CARAT-NWI").status(message_id)
    assert "acknowledged" not in [e["status"] for e in carat["history"]]
    assert carat["status"] != "acknowledged"


async def test_the_sender_sees_every_recipient(
    sent_to_three: dict[str, Any], agency: AgencyFactory
) -> None:
    status = await agency(sent_to_three["from"]).status(sent_to_three["message_id"])
    assert status["recipients"] == sent_to_three["to"]
    delivered = {e.get("recipient") for e in status["history"] if e["status"] == "delivered"}
    assert delivered == set(sent_to_three["to"])


async def test_acknowledging_a_message_not_in_ones_inbox_is_not_found(
    sent_to_three: dict[str, Any], client: TestClient[Any, Any], settings: Settings
) -> None:
    for org, message_id in [
        ("CJIT-SFK", sent_to_three["message_id"]),  # real message, someone else's inbox
        ("CRT-NOR-CC", sent_to_three["message_id"]),  # the sender is not a recipient
        ("CJIT-NFK", str(uuid.uuid4())),  # no such message
    ]:
        before = table_counts(settings)
        response = await client.post(
            f"/v1/inbox/{message_id}/ack", headers=bearer(settings, org)
        )
        assert response.status == 404
        assert response.content_type == "application/problem+json"
        problem = json.loads(await response.text())
        assert problem["type"] == "urn:dipgw:problem:not-found"
        assert problem["status"] == 404
        assert problem["title"] and problem["detail"]
        assert table_counts(settings) == before


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.IG_LEAD], ids=lambda r: r.value)
async def test_oversight_roles_may_not_acknowledge(
    role: Role, sent_to_three: dict[str, Any], client: TestClient[Any, Any], settings: Settings
) -> None:
    before = table_counts(settings)
    response = await client.post(
        f"/v1/inbox/{sent_to_three['message_id']}/ack", headers=bearer(settings, "CJIT-NFK", role)
    )
    await assert_forbidden(response)
    assert table_counts(settings) == before
