"""``POST /v1/messages/batch``: each item answered exactly as ``POST /v1/messages`` would."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.client import GatewayProblem
from gateway.config import Settings
from gateway.domain.model import Role
from tests.conftest import EXAMPLES, AgencyFactory, bearer, load, table_counts
from tests.test_messages_end_to_end import wait_for_inbox

CAM = "CJIT-CAM"
VALID = load(EXAMPLES / "assessment_outcome" / "valid-drr-outcome-without-clinical-detail-"
                        "cambridgeshire.json")
ALSO_VALID = load(EXAMPLES / "disengagement_alert" / "valid-case-closed-persistent-non-"
                             "engagement.json")
INVALID = load(EXAMPLES / "assessment_outcome" / "invalid-several-violations.json")
REFUSED = load(EXAMPLES / "assessment_outcome" / "refused-not-on-drr-enforcement-failed-to-"
                          "engage-cambridgeshire.json")


def without_instance(problem: Any) -> dict[str, Any]:
    return {k: v for k, v in problem.items() if k != "instance"}


async def test_mixed_batch_answers_each_item_as_a_single_submission_would(
    agency: AgencyFactory,
) -> None:
    cjit = agency(CAM)
    replayed = copy.deepcopy(VALID)
    first = await cjit.send(replayed)
    conflict = copy.deepcopy(VALID)
    conflict["subject"]["given_name"] = "Someone-Else"
    fresh = copy.deepcopy(ALSO_VALID)

    results = await cjit.send_batch([fresh, INVALID, REFUSED, replayed, conflict])

    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert [r.status for r in results] == [202, 422, 403, 202, 409]
    assert [r.replayed for r in results] == [False, False, False, True, False]
    assert results[3].body == first.body
    assert results[2].body["decision"]["decision"] == "deny"
    assert results[1].body["errors"]
    assert results[1].body["instance"] == "/v1/messages/batch#/messages/1"
    # The same documents sent one by one get the same answers (the refused one is stored,
    # so it replays its refusal).
    for result, document in ((results[1], INVALID), (results[2], REFUSED),
                             (results[4], conflict)):
        with pytest.raises(GatewayProblem) as single:
            await cjit.send(document)
        assert single.value.status == result.status
        assert without_instance(single.value.problem) == without_instance(result.body)
    assert results[0].body == (await cjit.send(fresh)).body
    recipient = agency(fresh["to"][0])
    assert len(await wait_for_inbox(recipient, fresh["message_id"])) == 1


async def test_a_batch_of_new_messages_delivers_each_once(agency: AgencyFactory) -> None:
    court = agency("CRT-IPS-MC")
    template = load(EXAMPLES / "court_outcome" / "valid-community-order-with-drr.json")
    documents = [{**copy.deepcopy(template), "message_id": str(uuid.uuid4())}
                 for _ in range(50)]

    results = await court.send_batch(documents)

    assert {r.status for r in results} == {202}
    assert [r.body["message_id"] for r in results] == [d["message_id"] for d in documents]
    inbox = await wait_for_inbox(agency("PRB-EOE"), documents[-1]["message_id"])
    assert len(inbox) == 1
    again = await court.send_batch(documents)
    assert all(r.replayed for r in again)
    assert [r.body for r in again] == [r.body for r in results]


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        ([VALID], 422, "invalid-batch"),
        ({"messages": []}, 422, "invalid-batch"),
        ({"messages": VALID}, 422, "invalid-batch"),
        ({"envelopes": [VALID]}, 422, "invalid-batch"),
        ({"messages": [VALID] * 501}, 413, "payload-too-large"),
    ],
    ids=["array", "empty", "not-a-list", "wrong-member", "too-many"],
)
async def test_a_malformed_batch_is_refused_whole_and_stores_nothing(
    client: TestClient[Any, Any], settings: Settings, body: Any, status: int, slug: str
) -> None:
    before = table_counts(settings)

    response = await client.post(
        "/v1/messages/batch", json=body, headers=bearer(settings, CAM)
    )

    assert response.status == status
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["type"] == f"urn:dipgw:problem:{slug}"
    assert problem["detail"]
    assert table_counts(settings) == before


async def test_a_batch_needs_a_sending_role_and_a_token(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    unauthenticated = await client.post("/v1/messages/batch", json={"messages": [VALID]})
    auditor = await client.post(
        "/v1/messages/batch", json={"messages": [VALID]},
        headers=bearer(settings, CAM, role=Role.AUDITOR),
    )

    assert unauthenticated.status == 401
    assert auditor.status == 403
