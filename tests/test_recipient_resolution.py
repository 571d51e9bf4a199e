"""When ``to`` is omitted the gateway works out the recipients and records how."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.client import GatewayProblem
from gateway.pipeline.consent import SubjectKeys
from gateway.pipeline.resolution import Involvement, Known, managing_cjit, related_ids, resolve
from gateway.services.directory import DEMO_ORGANISATIONS
from tests.conftest import EXAMPLES, AgencyFactory, load
from tests.test_messages_end_to_end import wait_for_inbox


def example(kind: str, name: str) -> dict[str, Any]:
    return load(EXAMPLES / kind / name)


def codes(
    message_type: str, body: dict[str, Any], related: dict[str, str] | None = None
) -> list[str]:
    return [r.code for r in resolve(message_type, body, DEMO_ORGANISATIONS,
                                    Known(senders=related or {}))]


def test_ra1_goes_to_the_cjit_named_for_the_assessment_even_out_of_area() -> None:
    local = example("ra1_notice", "valid-local-trigger-offence-community-appointment.json")
    away = example("ra1_notice", "valid-out-of-area-norfolk-resident.json")
    assert codes("ra1_notice", local["body"]) == ["CJIT-SFK"]
    # Arrested in Suffolk, living in Norfolk: the Norfolk CJIT assesses (H 4.7.4).
    assert away["from"] == "POL-SFK-IPS"
    assert codes("ra1_notice", away["body"]) == ["CJIT-NFK"]


def test_ra2_goes_to_the_cjit_running_the_varied_appointment() -> None:
    for path in sorted((EXAMPLES / "ra2_variation").glob("valid*.json")):
        document = load(path)
        assert codes("ra2_variation", document["body"]) == [
            document["body"]["new_appointment"]["organisation"]
        ]


def test_dir_transfer_goes_to_the_cjit_of_residence() -> None:
    document = example("dir_transfer", "valid-enforcement-suffolk-to-norfolk.json")
    assert codes("dir_transfer", document["body"]) == [document["body"]["receiving_cjit"]]
    assert document["body"]["receiving_cjit"] != document["from"]


@pytest.mark.parametrize("name", [
    "valid-drr-written-consent-suffolk.json",
    "valid-drr-written-consent-proactive-norfolk.json",
    "valid-drr-outcome-without-clinical-detail-cambridgeshire.json",
])
def test_assessment_outcome_goes_to_the_probation_provider_supervising_the_drr(
    name: str,
) -> None:
    document = example("assessment_outcome", name)
    provider = document["body"]["drr"]["supervising_officer"]["organisation"]
    assert provider == "PRB-EOE"
    assert codes("assessment_outcome", document["body"]) == [provider]


def test_acceptance_goes_back_to_the_cjit_that_sent_the_dir() -> None:
    body = {"dir_transfer_message_id": "AAAA0000-0000-4000-8000-000000000001"}
    related = {"aaaa0000-0000-4000-8000-000000000001": "CJIT-CAM"}
    assert related_ids("dir_acceptance", body) == list(related)
    assert codes("dir_acceptance", body, related) == ["CJIT-CAM"]
    assert codes("dir_acceptance", body, {}) == []


def test_carat_referral_by_direction() -> None:
    assert codes("carat_referral", {"direction": "into_custody",
                                    "establishment": {"name": "HMP Norwich",
                                                      "prison_code": "NWI"}}) == ["CARAT-NWI"]
    assert codes("carat_referral", {"direction": "release",
                                    "community_appointment": {"organisation": "CJIT-SFK"}}) == [
        "CJIT-SFK"]
    assert codes("carat_referral", {"direction": "into_custody",
                                    "establishment": {"prison_code": "XYZ"}}) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"outcome": "custodial_sentence", "establishment": {"prison_code": "HPI"}},
         ["CARAT-HPI"]),
        ({"outcome": "remand_in_custody", "establishment": {"prison_code": "NWI"}},
         ["CARAT-NWI"]),
        ({"outcome": "community_order", "drr_attached": True, "probation_provider": "PRB-EOE"},
         ["PRB-EOE"]),
        ({"outcome": "fine"}, []),
    ],
)
def test_court_outcome_by_outcome(body: dict[str, Any], expected: list[str]) -> None:
    assert codes("court_outcome", body) == expected


def test_court_outcome_also_goes_to_the_cjit_managing_the_person() -> None:
    body = {"outcome": "custodial_sentence", "establishment": {"prison_code": "HPI"}}
    found = resolve("court_outcome", body, DEMO_ORGANISATIONS,
                    Known(senders={}, managing_cjit="CJIT-NFK"))
    assert [r.code for r in found] == ["CJIT-NFK", "CARAT-HPI"]
    assert "managing the person" in found[0].how
    # A managing "CJIT" that is not one in the directory is never used.
    assert [r.code for r in resolve("court_outcome", body, DEMO_ORGANISATIONS,
                                    Known(senders={}, managing_cjit="PRB-EOE"))] == ["CARAT-HPI"]


PERSON = SubjectKeys(pnc="2019/0012345X", name_dob="jane|smith|1990-01-01")
NAMESAKE = SubjectKeys(pnc="2001/0099999Z", name_dob="jane|smith|1990-01-01")


def involvement(message_type: str, sender: str, recipients: tuple[str, ...], day: int,
                keys: SubjectKeys = PERSON, direction: str | None = None) -> Involvement:
    return Involvement(message_type, sender, recipients,
                       datetime(2026, 11, day, tzinfo=UTC), keys, direction)


@pytest.mark.parametrize(("history", "expected"), [
    ([], None),
    ([involvement("ra1_notice", "POL-SFK-IPS", ("CJIT-SFK",), 1)], "CJIT-SFK"),
    # The DIR went to the CJIT of residence later: that CJIT manages now (IE4a).
    ([involvement("ra1_notice", "POL-SFK-IPS", ("CJIT-SFK",), 1),
      involvement("dir_transfer", "CJIT-SFK", ("CJIT-NFK",), 3)], "CJIT-NFK"),
    ([involvement("dir_acceptance", "CJIT-CAM", ("CJIT-SFK",), 5),
      involvement("ra1_notice", "POL-SFK-IPS", ("CJIT-SFK",), 1)], "CJIT-CAM"),
    # A namesake with another PNC ID is another person.
    ([involvement("ra1_notice", "POL-SFK-IPS", ("CJIT-SFK",), 1),
      involvement("ra1_notice", "POL-NFK-NOR", ("CJIT-NFK",), 2, keys=NAMESAKE)], "CJIT-SFK"),
    # Without a PNC ID on file, name and date of birth identify the person.
    ([involvement("ra1_notice", "POL-NFK-NOR", ("CJIT-NFK",), 2,
                  keys=SubjectKeys(None, PERSON.name_dob))], "CJIT-NFK"),
    ([involvement("carat_referral", "CARAT-NWI", ("CJIT-NFK",), 2, direction="release")],
     "CJIT-NFK"),
    # Messages that put no CJIT in charge are passed over.
    ([involvement("ra1_notice", "POL-SFK-IPS", ("CJIT-SFK",), 1),
      involvement("court_outcome", "CRT-IPS-MC", ("PRB-EOE",), 4)], "CJIT-SFK"),
    # Two CJITs named at once: the gateway does not guess.
    ([involvement("ra1_notice", "POL-SFK-IPS", ("CJIT-SFK", "CJIT-NFK"), 1)], None),
])
def test_the_cjit_managing_the_person(
    history: list[Involvement], expected: str | None
) -> None:
    assert managing_cjit(history, PERSON, DEMO_ORGANISATIONS) == expected


@given(st.lists(st.tuples(
    st.sampled_from(["ra1_notice", "dir_transfer", "dir_acceptance", "court_outcome",
                     "disengagement_alert", "carat_referral", "assessment_outcome"]),
    st.sampled_from([o.code for o in DEMO_ORGANISATIONS]),
    st.lists(st.sampled_from([o.code for o in DEMO_ORGANISATIONS]), min_size=1, max_size=3),
    st.integers(1, 28),
    st.sampled_from([PERSON, NAMESAKE]),
), max_size=8))
def test_the_managing_cjit_is_always_a_cjit_from_the_persons_own_history(
    items: list[tuple[str, str, list[str], int, SubjectKeys]],
) -> None:
    history = [involvement(t, s, tuple(r), d, keys=k) for t, s, r, d, k in items]
    found = managing_cjit(history, PERSON, DEMO_ORGANISATIONS)
    if found is not None:
        assert found.startswith("CJIT-")
        assert any(found in (i.sender, *i.recipients) for i in history if i.keys == PERSON)


def test_disengagement_goes_to_the_police_force_of_the_case() -> None:
    body = {"related_message_id": "bbbb0000-0000-4000-8000-000000000002"}
    assert codes("disengagement_alert", body,
                 {"bbbb0000-0000-4000-8000-000000000002": "POL-NFK-NOR"}) == ["POL-NFK-NOR"]
    # A related message from a CJIT is not a police force: nothing is guessed.
    assert codes("disengagement_alert", body,
                 {"bbbb0000-0000-4000-8000-000000000002": "CJIT-SFK"}) == []


async def test_omitted_to_is_resolved_recorded_and_delivered(agency: AgencyFactory) -> None:
    document = example("ra1_notice", "valid-out-of-area-norfolk-resident.json")
    del document["to"]

    answer = await agency(document["from"]).send(document)

    [recipient] = answer.body["recipients"]
    assert recipient["code"] == "CJIT-NFK"
    assert "initial assessment" in recipient["resolved_by"]
    again = await agency(document["from"]).send(copy.deepcopy(document))
    assert again.body == answer.body
    items = await wait_for_inbox(agency("CJIT-NFK"), document["message_id"])
    assert items[0]["envelope"]["to"] == ["CJIT-NFK"]


async def test_alert_is_resolved_through_the_ra1_it_follows(agency: AgencyFactory) -> None:
    ra1 = example("ra1_notice", "valid-out-of-area-norfolk-resident.json")
    await agency(ra1["from"]).send(ra1)
    alert = example("disengagement_alert", "valid-statutory-failed-to-attend-initial.json")
    alert = {**alert, "message_id": str(uuid.uuid4()), "from": "CJIT-NFK"}
    del alert["to"]
    alert["body"] = {**alert["body"], "related_message_id": ra1["message_id"]}

    answer = await agency("CJIT-NFK").send(alert)

    assert [r["code"] for r in answer.body["recipients"]] == [ra1["from"]]


async def test_court_outcome_reaches_the_cjit_the_gateway_knows_manages_the_person(
    agency: AgencyFactory,
) -> None:
    ra1 = example("ra1_notice", "valid-out-of-area-norfolk-resident.json")
    await agency(ra1["from"]).send(ra1)
    outcome = example("court_outcome", "valid-custodial-sentence-crown-court.json")
    outcome = {**outcome, "message_id": str(uuid.uuid4()), "subject": ra1["subject"]}
    del outcome["to"]

    answer = await agency(outcome["from"]).send(outcome)

    recipients = {r["code"]: r for r in answer.body["recipients"]}
    assert "CJIT-NFK" in recipients
    assert "managing the person" in recipients["CJIT-NFK"]["resolved_by"]
    assert any(code.startswith("CARAT-") for code in recipients)
    assert await wait_for_inbox(agency("CJIT-NFK"), outcome["message_id"])


async def test_unresolvable_message_must_be_addressed(agency: AgencyFactory) -> None:
    document = example("court_outcome", "valid-adjournment-for-reports.json")
    del document["to"]
    with pytest.raises(GatewayProblem) as refused:
        await agency(document["from"]).send(document)
    assert refused.value.status == 422
    assert [v["pointer"] for v in refused.value.violations] == ["/to"]
