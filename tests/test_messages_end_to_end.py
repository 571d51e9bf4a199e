"""Every example of every type, through the real app and the agency client library."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.client import GatewayClient, GatewayProblem
from gateway.pipeline.redaction import redact
from tests.conftest import EXAMPLES, AgencyFactory, example_files, load

VALID = example_files("valid*.json")
INVALID = example_files("invalid*.json")
REFUSED = example_files("refused*.json")


# Delivery is asynchronous (via the outbox): on a loaded machine, and on PostgreSQL with
# three test processes beside it, it has been seen to take over a second.
DELIVERY_WAIT_S = 15.0


async def wait_for_inbox(client: GatewayClient, message_id: str) -> list[Any]:
    """Inbox items with this id, once delivery has happened (or [] after
    ``DELIVERY_WAIT_S``)."""
    deadline = asyncio.get_running_loop().time() + DELIVERY_WAIT_S
    while True:
        found = [m for m in await client.inbox(500) if m["message_id"] == message_id]
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.02)


def test_every_type_has_several_examples() -> None:
    types = {p.parent.name for p in VALID}
    assert types == {
        "ra1_notice", "ra2_variation", "dir_transfer", "dir_acceptance",
        "carat_referral", "court_outcome", "disengagement_alert", "assessment_outcome",
        "proactive_referral", "conditional_caution_notice", "drr_progress", "drr_suitability",
        "gate_pickup", "compliance_report", "ppo_nomination", "treatment_referral",
        "treatment_progress", "drr_handover",
    }
    for kind in types:
        assert len([p for p in VALID if p.parent.name == kind]) >= 3
        assert len([p for p in INVALID if p.parent.name == kind]) >= 3


@pytest.mark.parametrize("path", VALID, ids=lambda p: f"{p.parent.name}/{p.name}")
async def test_valid_example_is_delivered_once_and_acknowledged(
    path: Path, agency: AgencyFactory
) -> None:
    document = load(path)
    sender = agency(document["from"])

    answer = await sender.send(document)

    assert answer.status == 202
    assert answer.body["status"] == "accepted"
    assert [r["code"] for r in answer.body["recipients"]] == document["to"]
    assert answer.body["decision"]["decision"] == "permit"
    message_id = document["message_id"]
    decisions = {r["code"]: r["decision"] for r in answer.body["recipients"]}
    for code in document["to"]:
        recipient = agency(code)
        items = await wait_for_inbox(recipient, message_id)
        assert len(items) == 1, f"{code} should see the message exactly once"
        # Each recipient sees exactly what its decision allows, nothing it redacts.
        assert items[0]["envelope"] == redact(document, decisions[code]["redactions"])
        assert items[0]["decision"] == decisions[code]
        assert items[0]["from"] == document["from"]
        first = await recipient.acknowledge(message_id)
        second = await recipient.acknowledge(message_id)
        assert first == second
        assert first["status"] == "acknowledged"
        assert message_id not in [m["message_id"] for m in await recipient.inbox(500)]

    status = await sender.status(message_id)
    assert status["status"] == "acknowledged"
    steps = [(e["status"], e.get("recipient")) for e in status["history"]]
    assert steps[0] == ("accepted", None)
    for code in document["to"]:
        delivered = steps.index(("delivered", code))
        acknowledged = steps.index(("acknowledged", code))
        assert 0 < delivered < acknowledged
        assert steps.count(("acknowledged", code)) == 1
    assert all(e["at"].endswith("Z") for e in status["history"])


@pytest.mark.parametrize("path", INVALID, ids=lambda p: f"{p.parent.name}/{p.name}")
async def test_invalid_example_lists_every_violation(path: Path, agency: AgencyFactory) -> None:
    document = load(path)
    expected = load(path.parent / "expected-errors.json")[path.name]

    with pytest.raises(GatewayProblem) as refused:
        await agency(document["from"]).send(document)

    assert refused.value.status == 422
    assert sorted(v["pointer"] for v in refused.value.violations) == sorted(expected)
    assert all(v["message"] for v in refused.value.violations)


async def test_ra1_must_go_to_the_cjit_that_runs_the_assessment(agency: AgencyFactory) -> None:
    document = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
    document["to"] = ["CJIT-SFK"]

    with pytest.raises(GatewayProblem) as refused:
        await agency(document["from"]).send(document)

    assert refused.value.status == 422
    assert [v["pointer"] for v in refused.value.violations] == [
        "/body/initial_assessment/organisation"
    ]


@pytest.mark.parametrize("path", REFUSED, ids=lambda p: f"{p.parent.name}/{p.name}")
async def test_refused_example_gets_403_with_the_decision(
    path: Path, agency: AgencyFactory
) -> None:
    document = load(path)
    sender = agency(document["from"])

    with pytest.raises(GatewayProblem) as refused:
        await sender.send(document)

    assert refused.value.status == 403
    assert refused.value.problem["status"] == 403  # RFC 9457: the HTTP status, a number
    assert refused.value.problem["message_status"] == "refused"
    assert refused.value.problem["decision"]["decision"] == "deny"
    assert refused.value.problem["decision"]["denied_because"]
    status = await sender.status(document["message_id"])
    assert status["status"] == "refused"
