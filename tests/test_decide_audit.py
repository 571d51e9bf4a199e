"""``POST /v1/policy/decide`` on a message without ``to`` is a consultation of the
person's DIP history, and is logged as one (DPA 2018 s.62(1)(b)).

Given only a PNC ID, a court can ask the gateway to "decide" a court outcome with no
recipients and learn from the answer which CJIT manages the person. Nothing is sent, so
without a consultation entry that read of DIP history would leave no trace.
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.client import GatewayProblem
from gateway.http.services import SERVICES
from tests.conftest import EXAMPLES, AgencyFactory, load

RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
OUTCOME = load(EXAMPLES / "court_outcome" / "valid-custodial-sentence-crown-court.json")


def court_outcome_about(pnc_id: str, example: dict[str, Any] = OUTCOME) -> dict[str, Any]:
    """A court outcome with no ``to``, naming someone else but carrying ``pnc_id``: the
    PNC ID alone links it to the person's history."""
    document = copy.deepcopy(example)
    document["message_id"] = str(uuid.uuid4())
    document["subject"] = {**document["subject"], "pnc_id": pnc_id}
    del document["to"]
    return document


async def resolution_consultations(client: TestClient[Any, Any]) -> list[dict[str, Any]]:
    entries = [
        json.loads(raw) for raw in await client.app[SERVICES].audit.entries(0, 1_000_000)
    ]
    return [
        e for e in entries
        if e["action"] == "consulted" and e["details"]["resource"] == "recipient_resolution"
    ]


async def test_deciding_a_court_outcome_resolved_by_pnc_is_logged_as_a_consultation(
    client: TestClient[Any, Any], agency: AgencyFactory
) -> None:
    await agency(RA1["from"]).send(RA1)
    outcome = court_outcome_about(RA1["subject"]["pnc_id"])
    assert outcome["subject"]["family_name"] != RA1["subject"]["family_name"]

    answer = await agency(outcome["from"]).decide(outcome)

    recipients = {r["code"]: r for r in answer.body["recipients"]}
    assert "managing the person" in recipients["CJIT-NFK"]["resolved_by"]
    [entry] = await resolution_consultations(client)
    assert outcome["from"] in entry["actor"]  # who asked
    assert entry["subject"].startswith("psn:")  # about whom, pseudonymised
    assert entry["details"]["type"] == "court_outcome"
    assert "managing the person" in entry["details"]["resolved"]["CJIT-NFK"]
    # Nothing was sent: the consultation is the only trace of the question.
    assert not [m for m in await agency("CJIT-NFK").inbox()
                if m["envelope"]["message_id"] == outcome["message_id"]]


async def test_a_resolution_that_finds_no_one_is_logged_too(
    client: TestClient[Any, Any], agency: AgencyFactory
) -> None:
    """"No recipient can be worked out" tells the caller the gateway knows no CJIT
    managing this PNC ID: that answer is a disclosure as well."""
    adjourned = load(EXAMPLES / "court_outcome" / "valid-adjournment-for-reports.json")
    outcome = court_outcome_about("2012/118822R", adjourned)

    with pytest.raises(GatewayProblem) as refused:
        await agency(outcome["from"]).decide(outcome)

    assert refused.value.status == 422
    [entry] = await resolution_consultations(client)
    assert outcome["from"] in entry["actor"]
    assert entry["details"]["refused"] == "invalid-message"


async def test_deciding_an_addressed_message_consults_no_history(
    client: TestClient[Any, Any], agency: AgencyFactory
) -> None:
    await agency(OUTCOME["from"]).decide({**OUTCOME, "message_id": str(uuid.uuid4())})
    assert await resolution_consultations(client) == []
